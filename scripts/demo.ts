/**
 * `make demo`: a whole deployment on one machine, start to finish. It makes
 * keys, an origin repository and three node checkouts under `.demo/`, starts
 * `bun webhook.ts` and three `bun worker.ts` in a fleet of its own, plays a
 * Codeship build as Codeship does (initiated, testing, success), waits for
 * the deployment through the API and prints each node's outcome and the
 * commit each checkout is now at. Then it stops everything it started and
 * removes its fleet from the broker, also on an error or Ctrl-C.
 *
 *   bun scripts/demo.ts        (needs RabbitMQ at AMQP_URL; `make demo` starts one)
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { connectBroker, type ConfirmChannel } from "../shared/broker.ts";
import type { Deployment } from "../shared/served.ts";
import { createLogger } from "../shared/log.ts";
import { names } from "../shared/protocol.ts";
import { writeKeys } from "./keygen.ts";

const ROOT = resolve(import.meta.dir, "..");
const DEMO = join(ROOT, ".demo");
const AMQP_URL = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const NODES = ["node-1", "node-2", "node-3"];
const PROJECT_ID = "100001";
const UPDATE_SH = `#!/bin/sh
# Runs on each node after its checkout is at the new commit.
echo "node $ARBEIDER_NODE_ID: now at $ARBEIDER_COMMIT (was $ARBEIDER_PREVIOUS_COMMIT)"
`;
// The workers' ARBEIDER_HEALTH_CMD: the app is healthy unless its VERSION says it is broken.
const HEALTH_SH = `#!/bin/sh
! grep -q broken VERSION
`;
const ROLLOUT = "waves=1/100%";

/** A started process: its output goes to `.demo/logs/<name>.log` and is kept for waiting on. */
interface Child {
  name: string;
  child: ChildProcess;
  output: () => string;
}

const children: Child[] = [];
const say = (line = "") => console.log(line);

/** Runs git with an argument list; returns trimmed stdout or throws with stderr. */
function git(cwd: string, ...args: string[]): string {
  const result = spawnSync("git", ["-c", "user.name=arbeider demo", "-c", "user.email=demo@arbeider.invalid", ...args], { cwd, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`git ${args.join(" ")} failed in ${cwd}: ${result.stderr.trim()}`);
  return result.stdout.trim();
}

/** The origin, an author's work tree with update.sh committed, and one clone per node. */
function makeRepos(): { author: string; checkouts: Record<string, string> } {
  const origin = join(DEMO, "origin.git");
  const author = join(DEMO, "author");
  git(DEMO, "init", "--quiet", "--bare", "--initial-branch=master", origin);
  git(DEMO, "clone", "--quiet", origin, author);
  git(author, "checkout", "--quiet", "-B", "master");
  writeFileSync(join(author, "update.sh"), UPDATE_SH, { mode: 0o755 });
  writeFileSync(join(author, "health.sh"), HEALTH_SH, { mode: 0o755 });
  writeFileSync(join(author, "VERSION"), "1\n");
  git(author, "add", "-A");
  git(author, "commit", "--quiet", "-m", "Release 1");
  git(author, "push", "--quiet", "origin", "master");
  const checkouts = Object.fromEntries(NODES.map((node) => [node, join(DEMO, node)]));
  for (const dir of Object.values(checkouts)) git(DEMO, "clone", "--quiet", "--branch", "master", origin, dir);
  return { author, checkouts };
}

function start(name: string, script: string, env: Record<string, string>): Child {
  const log = join(DEMO, "logs", `${name}.log`);
  const child = spawn(process.execPath, [script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/", AMQP_URL, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  const keep = (chunk: Buffer) => {
    text += chunk;
    appendFileSync(log, chunk);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const started = { name, child, output: () => text };
  children.push(started);
  return started;
}

/** Polls `probe` every 50 ms until it returns a value, or throws saying what did not happen. */
async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const exited = children.find((c) => c.child.exitCode !== null);
    if (exited) throw new Error(`${exited.name} exited with ${exited.child.exitCode} (see .demo/logs/${exited.name}.log)`);
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Stops every started process: SIGTERM, then SIGKILL after 5 s. */
async function stopChildren(): Promise<void> {
  await Promise.all(
    children.map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }),
  );
}

/** Deletes the demo fleet's node queues, history stream and exchanges. */
async function removeFleet(fleet: string): Promise<void> {
  const n = names(fleet);
  let done!: () => void;
  const removed = new Promise<void>((resolve) => (done = resolve));
  const broker = connectBroker({
    urls: [AMQP_URL],
    log: createLogger("error"),
    name: `arbeider demo cleanup ${fleet}`,
    setup: async (channel: ConfirmChannel) => {
      for (const node of NODES) await channel.deleteQueue(n.nodeQueue(node));
      await channel.deleteQueue(n.history);
      await channel.deleteQueue(n.heartbeats);
      await channel.deleteQueue(n.dead);
      await channel.deleteExchange(n.dead);
      await channel.deleteQueue(n.driver);
      await channel.deleteExchange(n.commands);
      await channel.deleteExchange(n.events);
      done();
    },
  });
  await Promise.race([removed, new Promise((resolve) => setTimeout(resolve, 10_000))]);
  await broker.close();
}

/** Posts one Codeship notification, as Codeship does, and prints the answer. */
async function codeship(url: string, apiKey: string, build: number, status: string, commit: string, message: string): Promise<Response> {
  const body = {
    build: {
      build_url: `https://app.codeship.com/projects/${PROJECT_ID}/builds/${build}`,
      project_id: Number(PROJECT_ID),
      build_id: build,
      status,
      project_name: "demo/shop",
      commit_id: commit,
      short_commit_id: commit.slice(0, 5),
      message,
      committer: "demo",
      branch: "master",
    },
  };
  const res = await fetch(`${url}/hooks/codeship?api_key=${apiKey}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  say(`  Codeship ${status.padEnd(9)} -> ${res.status} ${await res.clone().text()}`);
  return res;
}

function printOutcome(deployment: Deployment, checkouts: Record<string, string>): void {
  say(`  deployment ${deployment.id}: ${deployment.state}${deployment.reason ? ` (${deployment.reason})` : ""}`);
  for (const [i, wave] of (deployment.waves ?? []).entries()) say(`    wave ${i + 1}: ${wave.nodes.join(", ")}: ${wave.state}`);
  const rows = [["node", "state", "before", "after", "rolled back to"]];
  for (const node of NODES) {
    const r = deployment.nodes[node];
    const back = deployment.rollback?.nodes[node];
    rows.push([node, r?.state ?? "never ran", r?.commitBefore?.slice(0, 7) ?? "-", r?.commitAfter?.slice(0, 7) ?? "-", back ? `${back.commit.slice(0, 7)} (${back.state})` : "-"]);
  }
  say();
  for (const row of rows) say(`  ${row.map((cell, i) => cell.padEnd([8, 11, 9, 9, 0][i])).join("")}`);
  const reason = NODES.map((node) => deployment.nodes[node]?.reason).find(Boolean);
  if (reason) say(`  why: ${reason}`);
  say();
  say("  checkout        commit");
  for (const [node, dir] of Object.entries(checkouts)) say(`  .demo/${node.padEnd(9)}${git(dir, "rev-parse", "--short=7", "HEAD")} (${git(dir, "rev-parse", "--abbrev-ref", "HEAD")}) ${git(dir, "show", "-s", "--format=%s", "HEAD")}`);
  say();
}

/** The demo itself; throws on any failure, leaving the cleanup to the caller. */
async function demo(fleet: string): Promise<boolean> {
  rmSync(DEMO, { recursive: true, force: true });
  mkdirSync(join(DEMO, "logs"), { recursive: true });
  const keys = writeKeys(join(DEMO, "keys"));
  const apiKey = randomBytes(24).toString("hex");
  const { author, checkouts } = makeRepos();
  say(`arbeider demo: fleet ${fleet}; keys, an origin and ${NODES.length} checkouts in .demo/`);

  const webhook = start("webhook", "webhook.ts", {
    ARBEIDER_FLEET: fleet,
    ARBEIDER_SIGNING_KEY_FILE: keys.signing,
    ARBEIDER_API_KEY: apiKey,
    CODESHIP_PROJECT_ID: PROJECT_ID,
    ARBEIDER_BRANCHES: `master=all;${ROLLOUT}`,
    HOST: "127.0.0.1",
    PORT: "0",
  });
  for (const node of NODES) {
    start(node, "worker.ts", {
      ARBEIDER_FLEET: fleet,
      ARBEIDER_NODE_ID: node,
      // The canary gets each release first.
      ARBEIDER_GROUPS: node === NODES[0] ? "canary,web" : "web",
      ARBEIDER_REPO_DIR: checkouts[node],
      ARBEIDER_VERIFY_KEY_FILE: keys.verify,
      ARBEIDER_HEARTBEAT_SECONDS: "1",
      ARBEIDER_HEALTH_CMD: "health.sh",
      ARBEIDER_HEALTH_TIMEOUT: "3",
      ARBEIDER_HEALTH_INTERVAL: "1",
    });
  }
  const port = await waitFor("the webhook to listen", () => /"msg":"listening".*?"port":(\d+)/.exec(webhook.output())?.[1]);
  const url = `http://127.0.0.1:${port}`;
  const api = async <T>(path: string): Promise<T> => (await fetch(`${url}${path}`, { headers: { Authorization: `Bearer ${apiKey}` } })).json() as Promise<T>;
  await waitFor("the webhook to reach the broker", async () => ((await fetch(`${url}/healthz`)).ok ? true : undefined));
  await waitFor("three workers online", async () => {
    const { nodes } = await api<{ nodes: { online: boolean }[] }>("/api/nodes");
    return nodes.filter((n) => n.online).length === NODES.length ? true : undefined;
  });
  say(`  webhook at ${url}; ${NODES.join(", ")} online`);

  say(`  master rolls out with ${ROLLOUT}: ${NODES[0]} (group canary) first, then the rest; health check: health.sh`);

  const release = async (version: string, message: string, expected: string) => {
    writeFileSync(join(author, "VERSION"), `${version}\n`);
    git(author, "commit", "--quiet", "-am", message);
    git(author, "push", "--quiet", "origin", "master");
    const commit = git(author, "rev-parse", "HEAD");
    say();
    say(`  pushed ${commit.slice(0, 7)} "${message}" to master; the CI builds it:`);
    const build = 1000 + Math.floor(Math.random() * 9000);
    for (const status of ["initiated", "testing", "success"]) await codeship(url, apiKey, build, status, commit, message);
    const deployment = await waitFor(`the rollout of "${message}" to finish`, async () => {
      const d = await api<Deployment>(`/api/deployments/codeship-${build}`);
      return d.finishedAt ? d : undefined;
    }, 45_000);
    printOutcome(deployment, checkouts);
    return deployment.state === expected;
  };
  const first = await release("2", "Release 2", "succeeded");
  const second = await release("3 (broken)", "Release 3, whose health check fails", "rolled_back");
  return first && second;
}

async function main(): Promise<void> {
  const fleet = `demo-${randomBytes(4).toString("hex")}`;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await stopChildren();
      await removeFleet(fleet).catch((error) => say(`could not remove fleet ${fleet}: ${(error as Error).message}`));
      say(`stopped the webhook and ${NODES.length} workers; removed fleet ${fleet} (logs in .demo/logs/)`);
    })());
  let interrupted = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      interrupted = true;
      say(`interrupted (${signal}); stopping`);
      void cleanup().then(() => process.exit(130));
    });
  }
  let ok = false;
  try {
    ok = await demo(fleet);
  } catch (error) {
    if (!interrupted) console.error(`demo failed: ${(error as Error).message}`);
  }
  await cleanup();
  process.exit(ok ? 0 : 1);
}

if (import.meta.main) await main();
