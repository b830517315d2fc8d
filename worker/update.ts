/**
 * The commands that move the checkout: `update` (fetch a branch, check it out
 * at a commit on that branch, run the update script) and `rollback` (check an
 * earlier commit out again, run the update script). A checkout that fails is
 * undone before the command reports failure; with ARBEIDER_ROLLBACK_ON_FAILURE
 * a failing update script brings the previous commit back and runs again.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "../shared/protocol.ts";
import { checkoutAt, currentBranch, fetchBranch, headCommit, isAncestor, resolveCommit } from "./git.ts";
import { childEnv, describeEnd, run } from "./run.ts";
import type { CommandContext, Result } from "./commands.ts";

type Update = Extract<Command, { command: "update" }>;
type Rollback = Extract<Command, { command: "rollback" }>;

interface Position {
  branch: string | undefined;
  sha: string;
}

/** Runs the update script for `to`; returns why it failed, or undefined when it succeeded or there is none. */
async function runUpdateScript(ctx: CommandContext, command: Command, to: Position, previous: string | undefined): Promise<string | undefined> {
  const { repo, updateScript, env } = ctx.settings;
  const script = updateScript ?? (existsSync(join(repo, "update.sh")) ? join(repo, "update.sh") : undefined);
  if (!script) return undefined;
  const result = await run([script], {
    cwd: repo,
    deadline: ctx.deadline,
    tail: ctx.tail,
    onSpawn: ctx.onSpawn,
    env: childEnv({
      ARBEIDER_DEPLOYMENT: command.deployment,
      ARBEIDER_NODE_ID: env.ARBEIDER_NODE_ID,
      ARBEIDER_BRANCH: to.branch ?? "",
      ARBEIDER_COMMIT: to.sha,
      ARBEIDER_PREVIOUS_COMMIT: previous ?? "",
    }),
  });
  if (result.code === 0 && !result.timedOut) return undefined;
  return `update script ${describeEnd(result, env.ARBEIDER_TIMEOUT * 1000)}`;
}

/** Checks `to` out; if that fails, puts the checkout back at `from` and rethrows. */
async function switchTo(ctx: CommandContext, to: Position, from: Position | undefined): Promise<void> {
  const options = { deadline: ctx.deadline, tail: ctx.tail };
  try {
    await checkoutAt(ctx.settings.repo, to.branch, to.sha, options);
  } catch (error) {
    if (from) await checkoutAt(ctx.settings.repo, from.branch, from.sha, { deadline: Date.now() + 60_000 }).catch(() => {});
    throw error;
  }
}

/** Where the checkout is now, or undefined in a repository without commits. */
async function position(repo: string): Promise<Position | undefined> {
  const sha = await headCommit(repo);
  return sha ? { branch: await currentBranch(repo), sha } : undefined;
}

const short = (sha: string) => sha.slice(0, 12);

export async function update(command: Update, ctx: CommandContext): Promise<Result> {
  const { branch, commit } = command.args;
  const repo = ctx.settings.repo;
  const before = await position(repo);
  const tip = await fetchBranch(repo, branch, { deadline: ctx.deadline, tail: ctx.tail });
  const sha = commit && commit !== tip ? await resolveCommit(repo, commit) : tip;
  if (!sha) throw new Error(`commit ${commit} is not on branch ${branch} of origin (unknown commit)`);
  if (sha !== tip && !(await isAncestor(repo, sha, tip))) throw new Error(`commit ${commit} is not on branch ${branch} of origin`);

  const to = { branch, sha };
  await switchTo(ctx, to, before);
  const failure = await runUpdateScript(ctx, command, to, before?.sha);
  if (!failure) {
    const moved = before && before.sha !== sha;
    return { branch, remember: { lastUpdateIssuedAt: command.issuedAt, ...(moved ? { previousCommit: before.sha } : {}) } };
  }
  if (!ctx.settings.env.ARBEIDER_ROLLBACK_ON_FAILURE || !before) return { failed: true, reason: failure, branch };
  return { failed: true, reason: `${failure}; ${await rollBackAfterFailure(ctx, command, before, sha)}`, branch: before.branch };
}

/** Puts `before` back and re-runs the update script there, with a fresh time budget; says what happened. */
async function rollBackAfterFailure(ctx: CommandContext, command: Update, before: Position, failed: string): Promise<string> {
  ctx.tail.note(`[arbeider] update script failed; rolling back to ${before.sha}`);
  const again = { ...ctx, deadline: Date.now() + ctx.settings.env.ARBEIDER_TIMEOUT * 1000 };
  try {
    await checkoutAt(ctx.settings.repo, before.branch, before.sha, { deadline: again.deadline, tail: ctx.tail });
  } catch (error) {
    return `rollback to ${short(before.sha)} failed: ${(error as Error).message}`;
  }
  const failure = await runUpdateScript(again, command, before, failed);
  return failure ? `rolled back to ${short(before.sha)}, where the ${failure}` : `rolled back to ${short(before.sha)} and re-ran the update script`;
}

export async function rollback(command: Rollback, ctx: CommandContext): Promise<Result> {
  const repo = ctx.settings.repo;
  const wanted = command.args.commit ?? ctx.state.previousCommit;
  if (!wanted) throw new Error("nothing to roll back to: no successful update that moved this checkout is recorded");
  const sha = await resolveCommit(repo, wanted);
  if (!sha) throw new Error(`commit ${wanted} is unknown on this node`);
  const before = await position(repo);
  const to = { branch: before?.branch, sha };
  await switchTo(ctx, to, before);
  const failure = await runUpdateScript(ctx, command, to, before?.sha);
  return failure ? { failed: true, reason: failure, branch: to.branch } : { branch: to.branch };
}
