/**
 * The few real parts that both the tests (tests/helpers.ts) and the
 * benchmarks (bench/) stand on: waiting on a condition with a deadline, git
 * with an argument list, a node's clone, a fresh key pair, a free port, and
 * `rabbitmqctl`.
 * Nothing here knows about a test runner, so `bun scripts/bench.ts` can use it
 * without importing a test file.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { writeKeys } from "../scripts/keygen.ts";
import { parseSigningKey, type SigningKey } from "../shared/signing.ts";

export const ROOT = resolve(import.meta.dir, "..");

/** Waits for `probe` to return a truthy value, polling every `everyMs`, or throws after `timeoutMs`. */
export async function waitUntil<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 15_000, everyMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(everyMs);
  }
}

/** A TCP port nothing listens on at 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Runs git with an argument list in `cwd`; returns trimmed stdout or throws with stderr. */
export function git(cwd: string, ...args: string[]): string {
  const result = spawnSync("git", args, { cwd, encoding: "utf8", env: { ...process.env, GIT_TERMINAL_PROMPT: "0" } });
  if (result.status !== 0) throw new Error(`git ${args.join(" ")} failed in ${cwd}: ${result.stderr}`);
  return result.stdout.trim();
}

/** A node's checkout: a clone of `origin` on master. */
export function cloneNode(origin: string, dir: string): string {
  git(resolve(dir, ".."), "clone", "--quiet", "--branch", "master", origin, dir);
  return dir;
}

/** A fresh Ed25519 key pair in `dir`, as `bun scripts/keygen.ts` writes it. */
export function makeKeys(dir: string): { signingFile: string; verifyFile: string; key: SigningKey } {
  const { signing, verify } = writeKeys(dir);
  return { signingFile: signing, verifyFile: verify, key: parseSigningKey(readFileSync(signing, "utf8")) };
}

/**
 * The node `rabbitmqctl` must name to reach the broker of AMQP_URL: on a machine
 * without a broker, `make` starts a private one for that port (scripts/rabbitmq.sh:
 * node `arbeider-<port>@localhost`, its pid in .rabbitmq/<port>/pid); otherwise
 * rabbitmqctl's default node is the broker, and none is named.
 */
export function brokerNode(url = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672"): string | undefined {
  const port = new URL(url.split(",")[0]!).port || "5672";
  let pid: number;
  try {
    pid = Number(readFileSync(join(ROOT, ".rabbitmq", port, "pid"), "utf8").trim());
  } catch {
    return undefined; // make started no broker for that port
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it runs, as the rabbitmq user; otherwise that broker has stopped.
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return undefined;
  }
  return `arbeider-${port}@localhost`;
}

/** `rabbitmqctl` with arguments (on the broker of AMQP_URL, unless they name a node); returns stdout. */
export function rabbitmqctl(...args: string[]): string {
  const node = args.includes("-n") ? undefined : brokerNode();
  const argv = ["-q", ...(node ? ["-n", node] : []), ...args];
  const result = spawnSync("rabbitmqctl", argv, { encoding: "utf8", env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` } });
  if (result.status !== 0) throw new Error(`rabbitmqctl ${args.join(" ")} failed: ${result.stderr}`);
  return result.stdout;
}
