/**
 * Real arbeider processes for the benchmarks, started the way users start
 * them: `bun webhook.ts` (ready once `/healthz` answers 200) and `bun
 * worker.ts` per node on its own clone (ready once it logs that it consumes,
 * and counted once the webhook lists it online: a deployment expects only
 * the nodes the webhook knows are there), plus the origin repository and the
 * clones they work on, and the Codeship notification a CI sends.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import amqp from "amqplib";
import { declareExchanges } from "../shared/topology.ts";
import { cloneNode, git, waitUntil } from "../testkit/kit.ts";
import { BUN, freePort, startInBatches, type Harness, type Proc } from "./harness.ts";
import type { Tap } from "./tap.ts";

export const API_KEY = "bench-api-key-0123456789";
export const CODESHIP_PROJECT = "412345";
/** What a worker logs once its consumer is registered. */
export const CONSUMING = '"msg":"consuming"';

export type DeployRequest = { command: string; target?: string; args?: Record<string, string>; strategy?: string };

export interface Webhook {
  proc: Proc;
  url: string;
  /** POST /api/deployments; resolves with the deployment id. */
  deploy(request: DeployRequest): Promise<string>;
  /** Deploys `request` and resolves with the ms from the POST until `n` nodes' `succeeded` reached `tap`. */
  roundTrip(tap: Tap, request: DeployRequest, n: number, timeoutMs: number): Promise<number>;
  /** Resolves once `GET /api/nodes` lists at least `n` nodes online. */
  online(n: number, timeoutMs?: number): Promise<void>;
}

/** With BENCH_PROFILE=DIR, every webhook writes a CPU profile (Markdown) into DIR when it stops. */
const profile = () => (process.env.BENCH_PROFILE ? ["--cpu-prof-md", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []);

/** `bun webhook.ts` for `fleet` (with `env` added), ready to take requests. */
export async function startWebhook(h: Harness, fleet: string, env: Record<string, string> = {}): Promise<Webhook> {
  const port = await freePort();
  const proc = h.spawn(["bun", ...profile(), "webhook.ts"], {
    ARBEIDER_FLEET: fleet,
    PORT: String(port),
    HOST: "127.0.0.1",
    ARBEIDER_SIGNING_KEY_FILE: h.keys.signingFile,
    ARBEIDER_API_KEY: API_KEY,
    ARBEIDER_BRANCHES: "master",
    CODESHIP_PROJECT_ID: CODESHIP_PROJECT,
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  const alive = () => {
    if (proc.child.exitCode !== null) throw new Error(`the webhook exited with ${proc.child.exitCode}:\n${proc.tail()}`);
  };
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json", ...init.headers } });
  await waitUntil(() => (alive(), fetch(`${url}/healthz`).then((r) => r.ok, () => false)), "the webhook's /healthz to answer 200", 30_000, 20);
  const webhook: Webhook = {
    proc,
    url,
    async roundTrip(tap, request, n, timeoutMs) {
      const t0 = performance.now();
      const deployment = await webhook.deploy(request);
      const at = await tap.tally.wait(deployment, n, timeoutMs);
      tap.tally.drop(deployment);
      return at - t0;
    },
    async deploy(request) {
      const response = await api("/api/deployments", { method: "POST", body: JSON.stringify(request) });
      const body = (await response.json()) as { deployment?: string; error?: string };
      if (response.status !== 202 || !body.deployment) throw new Error(`POST /api/deployments answered ${response.status}: ${JSON.stringify(body)}; nodes: ${await (await api("/api/nodes")).text()}`);
      return body.deployment;
    },
    async online(n, timeoutMs = 120_000) {
      const count = async () => {
        alive();
        const body = (await (await api("/api/nodes")).json()) as { nodes: { online: boolean }[] };
        return body.nodes.filter((node) => node.online).length >= n;
      };
      await waitUntil(count, `${n} nodes online at the webhook`, timeoutMs, 50);
    },
  };
  return webhook;
}

export interface Repos {
  origin: string;
  /** Commits a change on master and pushes it; returns the sha. */
  commit(files: Record<string, string>): string;
  /** A new clone of origin on master at `dir/<name>`. */
  clone(name: string): string;
}

const IDENTITY = ["-c", "user.name=arbeider bench", "-c", "user.email=bench@arbeider.invalid"];

/** An origin repository whose master has a trivial update.sh, in `dir`. */
export function makeRepos(dir: string): Repos {
  const origin = join(dir, "origin.git");
  const author = join(dir, "author");
  mkdirSync(author, { recursive: true });
  git(dir, "init", "--quiet", "--bare", "--initial-branch=master", origin);
  git(author, "init", "--quiet", "--initial-branch=master");
  git(author, "remote", "add", "origin", origin);
  const commit = (files: Record<string, string>) => {
    for (const [name, content] of Object.entries(files)) writeFileSync(join(author, name), content, { mode: name.endsWith(".sh") ? 0o755 : 0o644 });
    git(author, "add", "-A");
    git(author, ...IDENTITY, "commit", "--quiet", "-m", `bench: ${Object.keys(files).join(", ")}`);
    git(author, "push", "--quiet", "origin", "master");
    return git(author, "rev-parse", "HEAD");
  };
  commit({ "update.sh": "#!/bin/sh\nexit 0\n" });
  return { origin, commit, clone: (name) => cloneNode(origin, join(dir, name)) };
}

/** Fleets whose exchanges this run declared. */
const declared = new Set<string>();

/**
 * `bun worker.ts` (or `argv`) as `node` on `repo`; resolves once it consumes.
 * The fleet's exchanges are declared first, as a webhook would (a worker declares only its queue).
 */
export async function startWorker(h: Harness, fleet: string, node: string, repo: string, argv = ["bun", "worker.ts"]): Promise<Proc> {
  if (!declared.has(`${h.broker.amqpUrl} ${fleet}`)) {
    const connection = await amqp.connect(h.broker.amqpUrl);
    await declareExchanges(await connection.createConfirmChannel(), fleet);
    await connection.close();
    declared.add(`${h.broker.amqpUrl} ${fleet}`);
  }
  const proc = h.spawn(argv, {
    ARBEIDER_FLEET: fleet,
    ARBEIDER_NODE_ID: node,
    ARBEIDER_REPO_DIR: repo,
    ARBEIDER_VERIFY_KEY_FILE: h.keys.verifyFile,
  });
  await proc.waitForLine(CONSUMING, 60_000);
  return proc;
}

/**
 * Workers `node-<from>` .. `node-<to - 1>`, each on a new clone, started 8 at a time. `niced`
 * runs them at the lowest priority but one, as if they were other machines: the webhook
 * then waits for no node's CPU (what it waits for on its own is what is measured).
 */
export function startWorkers(h: Harness, fleet: string, repos: Repos, from: number, to: number, options: { niced?: boolean } = {}): Promise<Proc[]> {
  const argv = options.niced ? ["nice", "-n", "15", BUN, "worker.ts"] : undefined;
  return startInBatches(from, to, 8, (i) => startWorker(h, fleet, `node-${i}`, repos.clone(`node-${i}`), argv));
}

/** A Codeship build notification as Codeship sends it; `{{n}}` is the build id. */
export const codeship = (status: string, branch = "master", commit = "39cf93573039b61c6177ef04beaa5faf0a3fdfd7") =>
  JSON.stringify({
    build: {
      build_url: "https://app.codeship.com/projects/412345/builds/{{n}}",
      commit_url: `https://github.com/acme/shop/commit/${commit}`,
      project_id: Number(CODESHIP_PROJECT),
      build_id: "{{n}}",
      status,
      project_full_name: "acme/shop",
      project_name: "acme/shop",
      commit_id: commit,
      short_commit_id: commit.slice(0, 5),
      message: "Add coupon validation to checkout",
      committer: "mlindqvist",
      branch,
    },
  }).replace('"{{n}}"', "{{n}}");
