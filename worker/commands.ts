/**
 * Executes one verified command and describes its outcome: `update` and
 * `rollback` (in update.ts), `signal`, `hook` and `ping`. Whatever a command
 * throws becomes a `failed` outcome with the error's message as the reason;
 * the commit before and after, the duration and the output tail are measured
 * here, the same way for every command.
 */
import { accessSync, constants, readFileSync, realpathSync, statSync } from "node:fs";
import { join, sep } from "node:path";
import type { Command } from "../shared/protocol.ts";
import { currentBranch, headCommit } from "./git.ts";
import { childEnv, createTail, describeEnd, run, type Tail } from "./run.ts";
import type { Settings } from "./settings.ts";
import type { State } from "./state.ts";
import { rollback, update } from "./update.ts";

export interface CommandContext {
  settings: Settings;
  state: State;
  tail: Tail;
  /** Epoch ms by which the command must be done (ARBEIDER_TIMEOUT). */
  deadline: number;
  /** Told the process group of each long-running child (update script, hook). */
  onSpawn: (pgid: number) => void;
}

/** What one command handler reports; throwing means failed, with the message as the reason. */
export interface Result {
  failed?: boolean;
  reason?: string;
  branch?: string;
  /** State to record with the outcome. */
  remember?: Partial<Pick<State, "lastUpdateIssuedAt" | "previousCommit">>;
}

export interface Outcome extends Result {
  state: "succeeded" | "failed";
  commitBefore?: string;
  commitAfter?: string;
  durationMs: number;
  output: string;
}

function signal(command: Extract<Command, { command: "signal" }>, ctx: CommandContext): Result {
  const { service, signal } = command.args;
  const services = ctx.settings.env.ARBEIDER_SERVICES;
  const pidfile = Object.hasOwn(services, service) ? services[service] : undefined;
  if (!pidfile) throw new Error(`service ${service} is not in ARBEIDER_SERVICES on this node`);
  let text: string;
  try {
    text = readFileSync(pidfile, "utf8").trim();
  } catch (error) {
    throw new Error(`cannot read pidfile ${pidfile} of service ${service}: ${(error as Error).message}`);
  }
  // A positive pid only: 0 or a negative number would signal whole process groups.
  if (!/^[1-9]\d{0,9}$/.test(text)) throw new Error(`pidfile ${pidfile} of service ${service} holds no process id`);
  try {
    process.kill(Number(text), `SIG${signal}`);
  } catch (error) {
    throw new Error(`cannot send SIG${signal} to pid ${text} of service ${service}: ${(error as NodeJS.ErrnoException).code}`);
  }
  ctx.tail.note(`sent SIG${signal} to pid ${text} (service ${service})`);
  return {};
}

/** The hook's real path: an executable file inside the hooks folder, even after following links. */
function hookPath(dir: string | undefined, name: string): string {
  if (!dir) throw new Error("this node has no ARBEIDER_HOOKS_DIR");
  let real: string;
  try {
    real = realpathSync(join(dir, name));
  } catch {
    throw new Error(`hook ${name} does not exist in ${dir}`);
  }
  if (!real.startsWith(dir + sep)) throw new Error(`hook ${name} leads outside ${dir}`);
  try {
    if (!statSync(real).isFile()) throw new Error("not a file");
    accessSync(real, constants.X_OK);
  } catch {
    throw new Error(`hook ${name} is not an executable file`);
  }
  return real;
}

async function hook(command: Extract<Command, { command: "hook" }>, ctx: CommandContext): Promise<Result> {
  const { name } = command.args;
  const result = await run([hookPath(ctx.settings.hooksDir, name)], {
    cwd: ctx.settings.repo,
    deadline: ctx.deadline,
    tail: ctx.tail,
    onSpawn: ctx.onSpawn,
    env: childEnv({ ARBEIDER_DEPLOYMENT: command.deployment, ARBEIDER_NODE_ID: ctx.settings.env.ARBEIDER_NODE_ID }),
  });
  if (result.code === 0 && !result.timedOut) return {};
  throw new Error(`hook ${name} ${describeEnd(result, ctx.settings.env.ARBEIDER_TIMEOUT * 1000)}`);
}

function dispatch(command: Command, ctx: CommandContext): Result | Promise<Result> {
  switch (command.command) {
    case "update":
      return update(command, ctx);
    case "rollback":
      return rollback(command, ctx);
    case "signal":
      return signal(command, ctx);
    case "hook":
      return hook(command, ctx);
    case "ping":
      return currentBranch(ctx.settings.repo).then((branch) => ({ branch }));
  }
}

/** Runs `command` to its end and describes the outcome. Never rejects. */
export async function execute(
  command: Command,
  options: { settings: Settings; state: State; onSpawn: (pgid: number) => void },
): Promise<Outcome> {
  const started = Date.now();
  const repo = options.settings.repo;
  const ctx: CommandContext = { ...options, tail: createTail(), deadline: started + options.settings.env.ARBEIDER_TIMEOUT * 1000 };
  const commitBefore = await headCommit(repo);
  let result: Result;
  try {
    result = await dispatch(command, ctx);
  } catch (error) {
    result = { failed: true, reason: (error as Error).message };
  }
  return {
    ...result,
    state: result.failed ? "failed" : "succeeded",
    commitBefore,
    commitAfter: await headCommit(repo),
    durationMs: Date.now() - started,
    output: ctx.tail.text(),
  };
}
