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
import { commandEnv, runChild, type CommandContext, type Result } from "./context.ts";
import { position } from "./git.ts";
import { createTail, describeEnd } from "./run.ts";
import type { Settings } from "./settings.ts";
import type { Position, State } from "./state.ts";
import { rollback, update } from "./update.ts";

export interface Outcome extends Omit<Result, "at"> {
  state: "succeeded" | "failed";
  commitBefore?: string;
  commitAfter?: string;
  branch?: string;
  /** Where the checkout is after the command. */
  at?: Position;
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
  return { at: ctx.from };
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
  const result = await runChild(ctx, hookPath(ctx.settings.hooksDir, name), commandEnv(command, ctx));
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
      return { at: ctx.from };
  }
}

/**
 * Runs `command` to its end and describes the outcome. Never rejects. `from` is
 * where the checkout was when the command started; HEAD is read again only
 * when the handler cannot say where it left it (a hook, a thrown error).
 */
export async function execute(
  command: Command,
  options: { settings: Settings; state: Readonly<State>; from: Position | undefined; onSpawn: (pgid: number) => void },
): Promise<Outcome> {
  const started = Date.now();
  const ctx: CommandContext = { ...options, tail: createTail(), deadline: started + options.settings.env.ARBEIDER_TIMEOUT * 1000 };
  let result: Result;
  try {
    result = await dispatch(command, ctx);
  } catch (error) {
    result = { failed: true, reason: (error as Error).message };
  }
  const { at: known, ...rest } = result;
  const at = known ?? (await position(options.settings.repo));
  return {
    ...rest,
    state: result.failed ? "failed" : "succeeded",
    commitBefore: options.from?.sha,
    commitAfter: at?.sha,
    branch: at?.branch,
    at,
    durationMs: Date.now() - started,
    output: ctx.tail.text(),
  };
}
