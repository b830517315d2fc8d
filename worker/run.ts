/**
 * Starts the processes a command needs (git, the update script, hooks, health
 * checks) from argument lists, never through a shell. Each runs in a process
 * group of its own, told to the caller the moment it runs, so a timeout or a
 * restarted worker can end it together with everything it started; what it
 * writes is kept as a bounded tail for the command's outcome event. Under
 * Bun, processes start through Bun.spawn; under Deno, through node:child_process.
 *
 * Not zx, though zx quotes well: a zx template always runs in a shell (bash:
 * its quoting is bash's), and the contract is that no value from a message
 * reaches one; its timeout kills the processes it finds with `ps`, not the
 * group; it keeps every byte of output (three times); and it waits for pipes a
 * daemon started by update.sh may hold open for ever. Undoing each of those
 * around it would leave this runner with a shell added.
 */
import { spawn } from "node:child_process";
import { killGroup } from "./proc.ts";

export const OUTPUT_LIMIT = 4096;

/** The last `limit` bytes written to it, decoded without a broken first character. */
export interface Tail {
  push(chunk: Uint8Array): void;
  /** Adds a line of the worker's own, e.g. what it did between two processes. */
  note(line: string): void;
  text(): string;
}

export function createTail(limit = OUTPUT_LIMIT): Tail {
  let kept = Buffer.alloc(0);
  const push = (chunk: Uint8Array) => {
    kept = Buffer.concat([kept, chunk]);
    if (kept.length > limit) kept = kept.subarray(kept.length - limit);
  };
  return {
    push,
    note: (line) => push(Buffer.from(`${line}\n`)),
    text() {
      let start = 0;
      // Skip UTF-8 continuation bytes (10xxxxxx) left over from a cut character.
      while (start < kept.length && start < 3 && (kept[start] & 0xc0) === 0x80) start++;
      return kept.subarray(start).toString("utf8");
    },
  };
}

export interface RunOptions {
  cwd: string;
  env?: Record<string, string | undefined>;
  /** Epoch ms after which the process group is killed. */
  deadline: number;
  /** Receives stdout and stderr as they come. */
  tail?: Tail;
  /** Called with the process group id once the process started. */
  onSpawn?: (pgid: number) => void;
  /** How long SIGTERM gets before SIGKILL. */
  graceMs?: number;
}

export interface RunResult {
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Set when the process could not be started at all (ENOENT, EACCES). */
  error?: string;
  stdout: string;
  stderr: string;
}

const CAPTURE_LIMIT = 1 << 20;

/** The environment of scripts and hooks: the worker's own without the broker URL (it holds a password), plus `extra`. */
export function childEnv(extra: Record<string, string>): Record<string, string | undefined> {
  const { AMQP_URL: _secret, ...env } = process.env;
  return { ...env, ...extra };
}

/** Runs `argv` to its end (or its deadline) in a new process group. Never rejects. */
export function run(argv: readonly string[], options: RunOptions): Promise<RunResult> {
  // Bun's own spawn costs the worker less than half the CPU of its node:child_process (0.2 ms against 0.5 ms
  // a process: a deploy starts four); Deno has only the latter.
  return typeof Bun === "undefined" ? runNode(argv, options) : runBun(argv, options);
}

/** Output kept from one process: every chunk into the tail, the first CAPTURE_LIMIT characters of each stream. */
function capture(tail: Tail | undefined) {
  const captured = { stdout: "", stderr: "" };
  const collect = (which: "stdout" | "stderr") => (chunk: Uint8Array) => {
    tail?.push(chunk);
    if (captured[which].length < CAPTURE_LIMIT) captured[which] += Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString("utf8");
  };
  return { captured, collect };
}

/** Kills the process group at `deadline`; `timedOut` says whether it did. */
function deadlineFor(pid: number | undefined, options: RunOptions) {
  const state = { timedOut: false, timer: undefined as ReturnType<typeof setTimeout> | undefined };
  state.timer = setTimeout(() => {
    state.timedOut = true;
    if (pid) void killGroup(pid, options.graceMs ?? 5000);
  }, Math.max(0, options.deadline - Date.now()));
  return state;
}

/** Output still in the pipes arrives after the exit; a daemon the process left behind may hold them open for ever. */
const DRAIN_MS = 250;

async function runBun(argv: readonly string[], options: RunOptions): Promise<RunResult> {
  let child: Bun.Subprocess<"ignore", "pipe", "pipe">;
  try {
    const env = Object.fromEntries(Object.entries(options.env ?? process.env).filter((entry): entry is [string, string] => entry[1] !== undefined));
    child = Bun.spawn([...argv], { cwd: options.cwd, env, detached: true, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    // Bun adds the code at the end of the message, where node:child_process does not.
    return { code: null, signal: null, timedOut: false, error: code ? message.replace(new RegExp(` ${code}$`), "") : message, stdout: "", stderr: "" };
  }
  // Told at once: the process already runs, and a worker killed now must know which group to end on restart.
  options.onSpawn?.(child.pid);
  const limit = deadlineFor(child.pid, options);
  const { captured, collect } = capture(options.tail);
  const drain = (stream: ReadableStream<Uint8Array>, into: (chunk: Uint8Array) => void) => {
    const reader = stream.getReader();
    const ended = (async () => {
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) into(chunk.value);
    })().catch(() => {});
    return { ended, cancel: () => reader.cancel().catch(() => {}) };
  };
  const streams = [drain(child.stdout, collect("stdout")), drain(child.stderr, collect("stderr"))];
  await child.exited;
  let late: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([Promise.all(streams.map((s) => s.ended)), new Promise((resolve) => (late = setTimeout(resolve, DRAIN_MS)))]);
  clearTimeout(late);
  for (const s of streams) void s.cancel();
  clearTimeout(limit.timer);
  const signal = child.signalCode === null ? null : String(child.signalCode);
  return { code: signal ? null : child.exitCode, signal, timedOut: limit.timedOut, ...captured };
}

function runNode(argv: readonly string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true, // setsid(): a process group of its own
      stdio: ["ignore", "pipe", "pipe"],
    });
    const { captured, collect } = capture(options.tail);
    child.stdout!.on("data", collect("stdout"));
    child.stderr!.on("data", collect("stderr"));
    const limit = deadlineFor(child.pid, options);
    const finish = (result: Omit<RunResult, "timedOut" | "stdout" | "stderr">) => {
      clearTimeout(limit.timer);
      resolve({ ...result, timedOut: limit.timedOut, ...captured });
    };

    child.once("error", (error) => finish({ code: null, signal: null, error: error.message }));
    child.once("exit", (code, signal) => {
      const drained = setTimeout(() => {
        child.stdout!.destroy();
        child.stderr!.destroy();
      }, DRAIN_MS);
      child.once("close", () => {
        clearTimeout(drained);
        finish({ code, signal });
      });
    });
    // Told at once, not on the 'spawn' event: the process already runs, and a worker killed before
    // that event was handled would restart without knowing which process group to end.
    if (child.pid !== undefined) options.onSpawn?.(child.pid);
  });
}

/** A one-line account of how a run ended, for failure reasons: `exited with status 3`. */
export function describeEnd(result: RunResult, timeoutMs: number): string {
  if (result.error) return `could not be started: ${result.error}`;
  if (result.timedOut) return `timed out after ${Math.round(timeoutMs / 1000)} s; its process group was killed`;
  if (result.signal) return `was killed by ${result.signal}`;
  return `exited with status ${result.code}`;
}
