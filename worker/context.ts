/**
 * What every command handler is given and what it gives back, and the one way
 * handlers start a child (git, the update script, a hook, a health check): in
 * the checkout, without the broker password in its environment, under the
 * command's one deadline, its output in the command's tail, and its process
 * group handed to `onSpawn` the moment it runs, so a worker restarted after a
 * crash can end it.
 */
import type { Command } from "../shared/protocol.ts";
import type { GitOptions } from "./git.ts";
import { childEnv, run, type RunResult, type Tail } from "./run.ts";
import type { Settings } from "./settings.ts";
import type { Finish, Position, State } from "./state.ts";

export interface CommandContext {
  settings: Settings;
  state: Readonly<State>;
  tail: Tail;
  /** Epoch ms by which the command must be done (ARBEIDER_TIMEOUT): git and scripts share it. */
  deadline: number;
  /** Where the checkout was when the command started (for a command interrupted by a crash: before its first run). */
  from: Position | undefined;
  /** Told the process group of every child as it starts. */
  onSpawn: (pgid: number) => void;
}

/** What one command handler reports; throwing means failed, with the message as the reason. */
export interface Result {
  failed?: boolean;
  reason?: string;
  /** Where the handler left the checkout, when it knows; otherwise it is read again. */
  at?: Position;
  /** What the outcome records for later commands. */
  remember?: Pick<Finish, "lastUpdateIssuedAt" | "previous">;
}

/** The options for git calls made on behalf of the command. */
export function gitOptions(ctx: CommandContext): GitOptions {
  return { deadline: ctx.deadline, tail: ctx.tail, onSpawn: ctx.onSpawn };
}

/** The contract's environment for scripts a command runs (`previous` only for the update script). */
export function commandEnv(command: Command, ctx: CommandContext, to?: Position, previous?: string): Record<string, string> {
  const env: Record<string, string> = { ARBEIDER_DEPLOYMENT: command.deployment, ARBEIDER_NODE_ID: ctx.settings.env.ARBEIDER_NODE_ID };
  if (!to) return env;
  return { ...env, ARBEIDER_BRANCH: to.branch ?? "", ARBEIDER_COMMIT: to.sha, ARBEIDER_PREVIOUS_COMMIT: previous ?? "" };
}

/** Runs the executable `path` in the checkout for the command, with `env` added; never rejects. */
export function runChild(ctx: CommandContext, path: string, env: Record<string, string>, deadline = ctx.deadline): Promise<RunResult> {
  return run([path], { cwd: ctx.settings.repo, deadline, tail: ctx.tail, onSpawn: ctx.onSpawn, env: childEnv(env) });
}

export const short = (sha: string) => sha.slice(0, 12);
