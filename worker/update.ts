/**
 * The commands that move the checkout: `update` (fetch a branch, check it out
 * at a commit on that branch, run the update script, wait for the health
 * check) and `rollback` (check an earlier commit of the node's branch, or the
 * one recorded before its last update, out again and do the same). With
 * ARBEIDER_ALLOWED_SIGNERS no commit is checked out without a trusted
 * signature. A checkout that fails is undone before the command reports
 * failure; with ARBEIDER_ROLLBACK_ON_FAILURE a failing update script or health
 * check brings back the commit the update started from and runs again there.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "../shared/protocol.ts";
import { commandEnv, gitOptions, runChild, short, type CommandContext, type Result } from "./context.ts";
import { checkoutAt, fetchBranch, isAncestor, refTip, resolveCommit, signatureProblem } from "./git.ts";
import { untilHealthy } from "./health.ts";
import { describeEnd } from "./run.ts";
import type { Position } from "./state.ts";

type Update = Extract<Command, { command: "update" }>;
type Rollback = Extract<Command, { command: "rollback" }>;

/** Checks `to` out (signature first, when signers are configured); if the checkout fails, puts `from` back and rethrows. */
async function moveTo(ctx: CommandContext, to: Position, from: Position | undefined): Promise<void> {
  const { repo, allowedSigners } = ctx.settings;
  const problem = allowedSigners && (await signatureProblem(repo, to.sha, allowedSigners, gitOptions(ctx)));
  if (problem) throw new Error(`unsigned commit: ${short(to.sha)} has no signature that ARBEIDER_ALLOWED_SIGNERS accepts (${problem})`);
  try {
    await checkoutAt(repo, to.branch, to.sha, gitOptions(ctx));
  } catch (error) {
    if (from) await checkoutAt(repo, from.branch, from.sha, { deadline: Date.now() + 60_000, onSpawn: ctx.onSpawn }).catch(() => {});
    throw error;
  }
}

/** Runs the update script at `to`, then waits for the health check; returns why either failed, or undefined. */
async function settle(ctx: CommandContext, command: Command, to: Position, previous: string | undefined): Promise<string | undefined> {
  const { repo, updateScript, env } = ctx.settings;
  const script = updateScript ?? (existsSync(join(repo, "update.sh")) ? join(repo, "update.sh") : undefined);
  if (script) {
    const result = await runChild(ctx, script, commandEnv(command, ctx, to, previous));
    if (result.code !== 0 || result.timedOut) return `update script ${describeEnd(result, env.ARBEIDER_TIMEOUT * 1000)}`;
  }
  return untilHealthy(ctx.settings, ctx.tail, ctx.onSpawn);
}

export async function update(command: Update, ctx: CommandContext): Promise<Result> {
  const { branch, commit } = command.args;
  const { repo } = ctx.settings;
  const from = ctx.from;
  const tip = await fetchBranch(repo, branch, gitOptions(ctx));
  const sha = commit && commit !== tip ? await resolveCommit(repo, commit, gitOptions(ctx)) : tip;
  if (!sha) throw new Error(`commit ${commit} is not on branch ${branch} of origin (unknown commit)`);
  if (sha !== tip && !(await isAncestor(repo, sha, tip, gitOptions(ctx)))) throw new Error(`commit ${commit} is not on branch ${branch} of origin`);

  const to = { branch, sha };
  await moveTo(ctx, to, from);
  // Where a later `rollback` goes: the commit this update started from, once the checkout has left it.
  const previous = from && from.sha !== sha ? from : undefined;
  const failure = await settle(ctx, command, to, from?.sha);
  if (!failure) return { at: to, remember: { lastUpdateIssuedAt: command.issuedAt, previous } };
  if (!ctx.settings.env.ARBEIDER_ROLLBACK_ON_FAILURE || !previous) return { failed: true, reason: failure, at: to, remember: { previous } };
  const back = await rollBackAfterFailure(ctx, command, previous, to);
  return { failed: true, reason: `${failure}; ${back.what}`, at: back.at, remember: back.at === to ? { previous } : {} };
}

/** Puts `before` back and settles there, with a fresh time budget; says what happened and where the checkout is. */
async function rollBackAfterFailure(ctx: CommandContext, command: Update, before: Position, failed: Position) {
  ctx.tail.note(`[arbeider] update failed; rolling back to ${before.sha}`);
  const again = { ...ctx, deadline: Date.now() + ctx.settings.env.ARBEIDER_TIMEOUT * 1000 };
  try {
    await moveTo(again, before, failed);
  } catch (error) {
    return { at: failed, what: `rollback to ${short(before.sha)} failed: ${(error as Error).message}` };
  }
  const failure = await settle(again, command, before, failed.sha);
  const what = failure ? `rolled back to ${short(before.sha)}, where the ${failure.replace(/^unhealthy:/, "check is unhealthy too:")}` : `rolled back to ${short(before.sha)} and re-ran the update script`;
  return { at: before, what };
}

/**
 * Where a rollback to `sha` may go: the commit recorded before the last update that moved the checkout
 * (on the branch recorded with it), or a commit of the branch the node is on (its own history or
 * origin's as last fetched). A commit known only from another branch is refused.
 */
async function rollbackTarget(ctx: CommandContext, sha: string): Promise<Position> {
  const recorded = ctx.state.previous;
  const branch = ctx.from?.branch;
  if (recorded?.sha === sha) return { sha, branch: recorded.branch ?? branch };
  if (branch && ctx.from) {
    if (await isAncestor(ctx.settings.repo, sha, ctx.from.sha, gitOptions(ctx))) return { sha, branch };
    const fetched = await refTip(ctx.settings.repo, `refs/remotes/origin/${branch}`, gitOptions(ctx));
    if (fetched && (await isAncestor(ctx.settings.repo, sha, fetched, gitOptions(ctx)))) return { sha, branch };
  }
  const where = branch ? `on branch ${branch}, the branch this node is on` : "on a branch (this node is on none)";
  throw new Error(`commit ${short(sha)} is not ${where}, nor the commit recorded before its last update`);
}

export async function rollback(command: Rollback, ctx: CommandContext): Promise<Result> {
  const wanted = command.args.commit ?? ctx.state.previous?.sha;
  if (!wanted) throw new Error("nothing to roll back to: no update that moved this checkout is recorded");
  const sha = await resolveCommit(ctx.settings.repo, wanted, gitOptions(ctx));
  if (!sha) throw new Error(`commit ${wanted} is unknown on this node`);
  const to = await rollbackTarget(ctx, sha);
  await moveTo(ctx, to, ctx.from);
  const failure = await settle(ctx, command, to, ctx.from?.sha);
  return failure ? { failed: true, reason: failure, at: to } : { at: to };
}
