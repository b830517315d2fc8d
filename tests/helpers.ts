/**
 * Test fixtures made of real parts: a fleet of its own on the local broker,
 * Ed25519 keys, an origin git repository with clones, signed commands, a tap
 * on the events exchange, and `bun worker.ts` / `bun webhook.ts` processes
 * started the way users start them. Everything a fixture creates is removed
 * by its `cleanup`.
 */
import amqp, { type Channel, type ChannelModel } from "amqplib";
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { signBody, type SigningKey } from "../shared/signing.ts";
import { eventKey, names, routingKey, type Command, type Event } from "../shared/protocol.ts";
import { git, ROOT, waitUntil } from "../testkit/kit.ts";

export { cloneNode, freePort, git, makeKeys, rabbitmqctl, ROOT, waitUntil } from "../testkit/kit.ts";

export const AMQP_URL = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const BUN = process.execPath;

/** A fresh temporary folder, removed by `cleanup`. */
export function tempDir(prefix = "arbeider-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

// ---------------------------------------------------------------- git

const IDENTITY = ["-c", "user.name=arbeider test", "-c", "user.email=test@arbeider.invalid"];

/** A bare origin repository with a first commit on `master`, and a work tree to make more commits from. */
export function makeOrigin(dir: string) {
  const origin = join(dir, "origin.git");
  const work = join(dir, "author");
  git(dir, "init", "--quiet", "--bare", "--initial-branch=master", origin);
  git(dir, "clone", "--quiet", origin, work);
  git(work, "checkout", "--quiet", "-b", "master");
  /** Commits `files` on `branch` (created from master if new) and pushes; returns the sha. */
  const commit = (branch: string, files: Record<string, string>, message = "change"): string => {
    const branches = git(work, "branch", "--list", branch);
    if (git(work, "symbolic-ref", "--short", "HEAD") !== branch) {
      git(work, "checkout", "--quiet", ...(branches ? [branch] : ["-b", branch, "master"]));
    }
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(join(work, name, ".."), { recursive: true });
      writeFileSync(join(work, name), content, { mode: name.endsWith(".sh") ? 0o755 : 0o644 });
    }
    git(work, "add", "-A");
    git(work, ...IDENTITY, "commit", "--quiet", "-m", message);
    git(work, "push", "--quiet", "origin", branch);
    return git(work, "rev-parse", "HEAD");
  };
  const first = commit("master", { "README": "first\n" }, "first");
  return { origin, work, commit, first };
}

export const head = (repo: string) => git(repo, "rev-parse", "HEAD");
export const currentBranch = (repo: string) => git(repo, "rev-parse", "--abbrev-ref", "HEAD");
export const isClean = (repo: string) => git(repo, "status", "--porcelain", "--untracked-files=no") === "";

// ---------------------------------------------------------------- keys and commands

/** A command body as the webhook builds it, with `overrides` applied. */
export function command(fleet: string, action: Pick<Command, "command" | "args"> & Partial<Command>): Command {
  const now = Date.now();
  const id = action.id ?? randomUUID();
  return {
    v: 1,
    id,
    deployment: `test-${id.slice(0, 8)}`,
    fleet,
    target: "all",
    issuedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + 3600_000).toISOString(),
    source: { provider: "api" },
    ...action,
  } as Command;
}

/** Body bytes and the signature header value, exactly as the webhook publishes them. */
export function sign(body: unknown, key: SigningKey): { bytes: Uint8Array; signature: string } {
  const bytes = new TextEncoder().encode(typeof body === "string" ? body : JSON.stringify(body));
  return { bytes, signature: signBody(bytes, key) };
}

// ---------------------------------------------------------------- broker

/** A test's own fleet: a raw amqplib connection for publishing and inspecting, and an event tap. */
export async function openFleet(prefix = "t", url = AMQP_URL, fleet = `${prefix}-${randomUUID().slice(0, 8)}`) {
  const n = names(fleet);
  const connection: ChannelModel = await amqp.connect(url);
  // A broker that goes away (a test may stop it) must not crash the test run.
  connection.on("error", () => {});
  const channel: Channel = await connection.createConfirmChannel();
  await channel.assertExchange(n.commands, "topic", { durable: true });
  await channel.assertExchange(n.events, "topic", { durable: true });
  const events: Event[] = [];
  const heartbeats: Record<string, unknown>[] = [];
  const tap = await channel.assertQueue("", { exclusive: true, autoDelete: true });
  await channel.bindQueue(tap.queue, n.events, "#");
  await channel.consume(
    tap.queue,
    (msg) => {
      if (!msg) return;
      const body = JSON.parse(msg.content.toString());
      (msg.fields.routingKey.startsWith("heartbeat.") ? heartbeats : events).push(body);
    },
    { noAck: true },
  );
  const nodes = new Set<string>();

  return {
    fleet,
    names: n,
    channel,
    events,
    heartbeats,
    /** Remembers a node so cleanup deletes its queue. */
    track(node: string) {
      nodes.add(node);
    },
    /** Publishes raw bytes to the commands exchange, with a signature header unless `signature` is null. */
    async publishRaw(bytes: Uint8Array, key: string, signature: string | null, messageId: string = randomUUID()) {
      (channel as unknown as { publish: Function }).publish(n.commands, key, Buffer.from(bytes), {
        persistent: true,
        contentType: "application/json",
        messageId,
        headers: signature === null ? {} : { "x-arbeider-signature": signature },
      });
      await (channel as unknown as { waitForConfirms(): Promise<void> }).waitForConfirms();
    },
    /** Signs and publishes a command to its target's routing key (or `key`). */
    async publish(cmd: Command, signingKey: SigningKey, key = routingKey(cmd.target)) {
      const { bytes, signature } = sign(cmd, signingKey);
      await this.publishRaw(bytes, key, signature, cmd.id);
      return cmd;
    },
    /** Events of one deployment so far. */
    of(deployment: string, node?: string) {
      return events.filter((e) => e.deployment === deployment && (node === undefined || e.node === node));
    },
    /** Waits for an event matching `match`. */
    waitEvent(match: (e: Event) => boolean, what: string, timeoutMs = 20_000) {
      return waitUntil(() => events.find(match), what, timeoutMs);
    },
    /** Waits for `state` from `node` on `deployment`. */
    waitState(deployment: string, node: string, states: Event["state"][], timeoutMs = 20_000) {
      return this.waitEvent(
        (e) => e.deployment === deployment && e.node === node && states.includes(e.state),
        `${states.join("/")} from ${node} on ${deployment}`,
        timeoutMs,
      );
    },
    async cleanup() {
      const side = await connection.createChannel();
      side.on("error", () => {});
      for (const node of nodes) await side.deleteQueue(n.nodeQueue(node)).catch(() => {});
      await side.deleteQueue(n.history).catch(() => {});
      await side.deleteQueue(n.heartbeats).catch(() => {});
      await side.deleteQueue(n.dead).catch(() => {});
      await side.deleteExchange(n.dead).catch(() => {});
      await side.deleteQueue(n.driver).catch(() => {});
      await side.deleteExchange(n.commands).catch(() => {});
      await side.deleteExchange(n.events).catch(() => {});
      await connection.close().catch(() => {});
    },
  };
}
export type Fleet = Awaited<ReturnType<typeof openFleet>>;
export { eventKey };

// ---------------------------------------------------------------- processes

export interface Proc {
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit status. */
  stop(graceMs?: number): Promise<number | string>;
  /** Waits until a log line contains `text`. */
  waitForLog(text: string, timeoutMs?: number): Promise<void>;
}

const running = new Set<Proc>();

/**
 * Where every process a test starts writes its output as well, one file per
 * process (tests/output/<fleet>/<name>-<pid>.log): what to read when a test
 * failed in CI.
 */
function logFileOf(argv: string[], env: Record<string, string>, pid: number | undefined): string {
  const dir = join(ROOT, "tests", "output", env.ARBEIDER_FLEET ?? "no-fleet");
  mkdirSync(dir, { recursive: true });
  const name = env.ARBEIDER_NODE_ID ?? (argv.find((a) => a.endsWith(".ts") || a.endsWith(".js")) ?? argv[0]).split("/").pop();
  return join(dir, `${name}-${pid ?? "x"}.log`);
}

/** Starts `bun <script>` (or another runtime's argv) in ROOT with `env` added to a clean environment. */
export function startProcess(argv: string[], env: Record<string, string>, cwd = ROOT): Proc {
  const child = spawn(argv[0] === "bun" ? BUN : argv[0], argv.slice(1), {
    cwd,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", AMQP_URL, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  const log = createWriteStream(logFileOf(argv, env, child.pid), { flags: "a" });
  const keep = (chunk: Buffer) => {
    text += chunk;
    log.write(chunk);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  child.once("close", () => log.end());
  const exited = new Promise<number | string>((done) => child.on("exit", (code, signal) => done(code ?? signal ?? -1)));
  const proc: Proc = {
    child,
    output: () => text,
    exited,
    async stop(graceMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        await exited;
        clearTimeout(timer);
      }
      running.delete(proc);
      return exited;
    },
    waitForLog(fragment, timeoutMs = 15_000) {
      return waitUntil(() => text.includes(fragment), `"${fragment}" in the output of ${argv.join(" ")}`, timeoutMs).then(() => {});
    },
  };
  running.add(proc);
  void exited.then(() => running.delete(proc));
  return proc;
}

/** Kills every process a test started and left running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((proc) => proc.stop(2000)));
}

/** `bun worker.ts` for `node` on `repo`, connected once it logs that it consumes. */
export async function startWorker(env: Record<string, string>, runtime: string[] = ["bun", "worker.ts"]): Promise<Proc> {
  const proc = startProcess(runtime, { LOG_LEVEL: "debug", ...env });
  await Promise.race([
    proc.waitForLog('"msg":"consuming"', 30_000),
    proc.exited.then((code) => {
      throw new Error(`worker exited with ${code} before consuming:\n${proc.output()}`);
    }),
  ]);
  return proc;
}

/** Removes folders made by `tempDir`. */
export function removeDirs(...dirs: string[]): void {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}
