/**
 * What every measurement of `scripts/bench.ts` stands on: a RabbitMQ virtual
 * host of its own per run (so deleting it removes every queue, exchange and
 * stream the run declared, and `close_all_connections --vhost` reaches only
 * the run's connections), a temporary folder, a key pair, and real child
 * processes whose log lines are watched as they arrive (no polling, so a
 * "consuming" line is timed to the millisecond). `cleanup` stops every
 * process and deletes the vhost and folder; it also runs on Ctrl-C.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, makeKeys, rabbitmqctl, ROOT, waitUntil } from "../testkit/kit.ts";

export { freePort, rabbitmqctl };

export { ROOT };
export const BUN = process.execPath;
const BASE_URL = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const VHOST_PREFIX = "arbeider-bench-";

/** A child process whose output is scanned line by line as it arrives. */
export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Milliseconds (performance.now) when it was spawned. */
  readonly spawnedAt: number;
  readonly exited: Promise<number | string>;
  /** Resolves with performance.now() at which the first line containing `text` arrived (before or after the call). */
  waitForLine(text: string, timeoutMs?: number): Promise<number>;
  /** Calls `onLine` for each later line. */
  onLine(listener: (line: string, at: number) => void): void;
  /** The last lines of output, for error messages. */
  tail(): string;
  stop(graceMs?: number): Promise<void>;
}

/** The broker a run's processes use. */
export interface BrokerHandle {
  readonly amqpUrl: string;
  /** A private broker is this run's alone, so its CPU is counted with arbeider's; the shared one serves others too. */
  readonly kind: "private" | "shared";
  /** The processes whose CPU is the broker's: none for the shared broker. */
  readonly pids: readonly number[];
  /** Closes every client connection of the run, as a broker restart would. */
  closeAllConnections(): void;
}

export interface Harness {
  readonly quick: boolean;
  readonly vhost: string;
  /** The run's vhost on the shared broker at first; `useBroker` moves the run to another one. */
  readonly broker: BrokerHandle;
  useBroker(broker: BrokerHandle): void;
  /** The run's temporary folder. */
  readonly dir: string;
  readonly keys: { signingFile: string; verifyFile: string };
  /** A fresh fleet name. */
  fleet(prefix: string): string;
  /** Starts `argv` in the repository (a leading "bun" is this bun) with `env` and the broker's AMQP_URL; `quiet` discards stdout. */
  spawn(argv: string[], env?: Record<string, string>, options?: { quiet?: boolean; keep?: boolean }): Proc;
  /** Stops every process still running but those spawned to `keep` (all at once, TERM then KILL); cleanup stops those too. */
  stopAll(): Promise<void>;
  /** Runs `fn` at cleanup, before the processes are stopped. */
  onCleanup(fn: () => Promise<void>): void;
  cleanup(): Promise<void>;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`. */
export function waitForPort(port: number, timeoutMs = 15_000): Promise<unknown> {
  const open = () =>
    new Promise<boolean>((done) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        done(true);
      });
      socket.once("error", () => done(false));
    });
  return waitUntil(open, `a listener on port ${port}`, timeoutMs, 20);
}

/** Deletes vhosts left by bench runs whose process is gone (a run killed with SIGKILL cannot clean up). */
function deleteStaleVhosts(): void {
  for (const vhost of rabbitmqctl("list_vhosts", "name").split("\n").map((s) => s.trim())) {
    const pid = Number(vhost.startsWith(VHOST_PREFIX) ? vhost.slice(VHOST_PREFIX.length).split("-")[0] : NaN);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch {
      rabbitmqctl("delete_vhost", vhost);
    }
  }
}

export function createHarness(options: { quick: boolean }): Harness {
  deleteStaleVhosts();
  const vhost = `${VHOST_PREFIX}${process.pid}-${randomUUID().slice(0, 6)}`;
  rabbitmqctl("add_vhost", vhost);
  const url = new URL(BASE_URL);
  rabbitmqctl("set_permissions", "-p", vhost, decodeURIComponent(url.username || "guest"), ".*", ".*", ".*");
  url.pathname = `/${encodeURIComponent(vhost)}`;
  const amqpUrl = url.toString();
  const dir = mkdtempSync(join(tmpdir(), "arbeider-bench-"));
  const keys = makeKeys(join(dir, "keys"));
  const running = new Set<Proc>();
  const kept = new Set<Proc>();
  const cleanups: (() => Promise<void>)[] = [];
  let cleaned = false;
  let broker: BrokerHandle = {
    amqpUrl,
    kind: "shared",
    pids: [],
    closeAllConnections: () => void rabbitmqctl("close_all_connections", "--vhost", vhost, "arbeider bench: simulated broker restart"),
  };

  const harness: Harness = {
    quick: options.quick,
    vhost,
    get broker() {
      return broker;
    },
    useBroker: (other) => void (broker = other),
    dir,
    keys: { signingFile: keys.signingFile, verifyFile: keys.verifyFile },
    fleet: (prefix) => `${prefix}-${randomUUID().slice(0, 8)}`,
    spawn(argv, env = {}, options = {}) {
      const proc = spawnProc(argv, { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", AMQP_URL: broker.amqpUrl, ...env }, options.quiet ?? false);
      running.add(proc);
      if (options.keep) kept.add(proc);
      void proc.exited.then(() => running.delete(proc));
      return proc;
    },
    async stopAll() {
      await Promise.all([...running].filter((proc) => cleaned || !kept.has(proc)).map((proc) => proc.stop()));
    },
    onCleanup: (fn) => void cleanups.push(fn),
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      for (const fn of cleanups.reverse()) await fn().catch((error) => console.error(`bench: cleanup: ${error}`));
      await harness.stopAll();
      try {
        rabbitmqctl("delete_vhost", vhost);
      } catch (error) {
        console.error(`bench: could not delete vhost ${vhost}: ${(error as Error).message}`);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return harness;
}

/** Spawns `argv` (a leading "bun" means this very bun) in ROOT with exactly `env`. */
function spawnProc(argv: string[], env: Record<string, string>, quiet: boolean): Proc {
  const spawnedAt = performance.now();
  const child = spawn(argv[0] === "bun" ? BUN : argv[0]!, argv.slice(1), { cwd: ROOT, env, stdio: ["ignore", quiet ? "ignore" : "pipe", "pipe"] });
  const seen: { line: string; at: number }[] = [];
  const listeners = new Set<(line: string, at: number) => void>();
  const exited = new Promise<number | string>((done) => child.on("exit", (code, signal) => done(code ?? signal ?? -1)));
  const read = (stream: NodeJS.ReadableStream) => {
    let partial = "";
    stream.on("data", (chunk: Buffer) => {
      const at = performance.now();
      const lines = (partial + chunk.toString()).split("\n");
      partial = lines.pop()!;
      for (const line of lines) {
        if (seen.length >= 200) seen.shift();
        seen.push({ line, at });
        for (const listener of listeners) listener(line, at);
      }
    });
  };
  if (child.stdout) read(child.stdout);
  read(child.stderr!);
  const tail = () => seen.slice(-20).map((s) => s.line).join("\n");
  return {
    child,
    pid: child.pid ?? -1,
    spawnedAt,
    exited,
    onLine: (listener) => void listeners.add(listener),
    tail,
    waitForLine(text, timeoutMs = 30_000) {
      const earlier = seen.find((s) => s.line.includes(text));
      if (earlier) return Promise.resolve(earlier.at);
      return new Promise((done, fail) => {
        const timer = setTimeout(() => finish(new Error(`no "${text}" from ${argv.join(" ")} within ${timeoutMs} ms:\n${tail()}`)), timeoutMs);
        const listener = (line: string, at: number) => line.includes(text) && finish(undefined, at);
        const finish = (error?: Error, at = 0) => {
          clearTimeout(timer);
          listeners.delete(listener);
          if (error) fail(error);
          else done(at);
        };
        listeners.add(listener);
        void exited.then((code) => finish(new Error(`${argv.join(" ")} exited with ${code} before "${text}":\n${tail()}`)));
      });
    },
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs `start(i)` for i in [from, to) with at most `parallel` at a time. */
export async function startInBatches<T>(from: number, to: number, parallel: number, start: (i: number) => Promise<T>): Promise<T[]> {
  const started: T[] = [];
  for (let i = from; i < to; i += parallel) {
    const batch = Array.from({ length: Math.min(parallel, to - i) }, (_, k) => start(i + k));
    started.push(...(await Promise.all(batch)));
  }
  return started;
}

/** Resident set size of a process in KiB, from /proc. */
export function rssKiB(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]);
}
