/**
 * The git operations of a node's checkout, each one `git` process started
 * with an argument list. Branch names and commits reach here only after the
 * protocol schema checked them (no leading dash, hex only), and every value
 * sits behind `--` or inside a full refspec, so none can be read as an option.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { childEnv, run, type Tail } from "./run.ts";
import type { Position } from "./state.ts";

/** A git command that failed: which one, and git's own words. */
export class GitError extends Error {}

export interface GitOptions {
  deadline?: number;
  tail?: Tail;
  /** Told each git process's group as it starts, so a worker restarted after a crash can end it. */
  onSpawn?: (pgid: number) => void;
}

const GIT_ENV = { GIT_TERMINAL_PROMPT: "0", GIT_ASKPASS: "true", LC_ALL: "C" };
const DEFAULT_MS = 60_000;

async function exec(repo: string, args: string[], options: GitOptions) {
  return run(["git", ...args], {
    cwd: repo,
    // Like the update script, git (and the repository's own hooks) never sees the broker password.
    env: childEnv(GIT_ENV),
    deadline: options.deadline ?? Date.now() + DEFAULT_MS,
    tail: options.tail,
    onSpawn: options.onSpawn,
  });
}

/** Runs git in `repo` and returns its trimmed stdout, or throws a GitError. */
export async function git(repo: string, args: string[], options: GitOptions = {}): Promise<string> {
  const result = await exec(repo, args, options);
  if (result.code === 0) return result.stdout.trim();
  const why = result.timedOut ? "timed out" : result.error ?? (result.stderr.trim().split("\n").pop() || `exit ${result.code}`);
  throw new GitError(`git ${args[0]} failed: ${why}`);
}

const plainLayouts = new Map<string, boolean>();

/**
 * Whether the checkout keeps its refs as files in its own .git (looked at once per checkout):
 * linked worktrees and the reftable format keep them elsewhere, and git itself answers for those.
 */
function plainLayout(gitDir: string): boolean {
  let plain = plainLayouts.get(gitDir);
  if (plain === undefined) plainLayouts.set(gitDir, (plain = !existsSync(join(gitDir, "commondir")) && !existsSync(join(gitDir, "reftable"))));
  return plain;
}

/** HEAD read from the files git keeps it in (no process started), or undefined when the layout is unusual. */
function readHeadFiles(repo: string): { sha?: string; branch?: string } | undefined {
  const gitDir = join(repo, ".git");
  try {
    if (!plainLayout(gitDir)) return undefined;
    const head = readFileSync(join(gitDir, "HEAD"), "utf8").trim();
    if (/^[0-9a-f]{40}$/.test(head)) return { sha: head };
    const match = /^ref: refs\/heads\/(.+)$/.exec(head);
    if (!match) return undefined;
    const branch = match[1];
    const sha = readRefFile(gitDir, `refs/heads/${branch}`);
    // No readable 40-hex ref (an unborn branch, an unusual layout): ask git rather than guess.
    return sha && /^[0-9a-f]{40}$/.test(sha) ? { sha, branch } : undefined;
  } catch {
    return undefined;
  }
}

function readRefFile(gitDir: string, ref: string): string | undefined {
  try {
    return readFileSync(join(gitDir, ref), "utf8").trim();
  } catch {
    try {
      const line = readFileSync(join(gitDir, "packed-refs"), "utf8").split("\n").find((l) => l.endsWith(` ${ref}`));
      return line?.slice(0, 40);
    } catch {
      return undefined;
    }
  }
}

/** The full sha a revision names as a commit, or undefined. */
export async function resolveCommit(repo: string, rev: string, options: GitOptions = {}): Promise<string | undefined> {
  const result = await exec(repo, ["rev-parse", "--verify", "--quiet", "--end-of-options", `${rev}^{commit}`], options);
  return result.code === 0 ? result.stdout.trim() : undefined;
}

/** Where HEAD is (one read of the files git keeps it in, when it can), or undefined in a repository without commits. */
export async function position(repo: string, options: GitOptions = {}): Promise<Position | undefined> {
  const fast = readHeadFiles(repo);
  if (fast) return { sha: fast.sha!, branch: fast.branch };
  const sha = await resolveCommit(repo, "HEAD", options);
  if (!sha) return undefined;
  const branch = await exec(repo, ["symbolic-ref", "--quiet", "--short", "HEAD"], options);
  return { sha, branch: branch.code === 0 ? branch.stdout.trim() : undefined };
}

/** Whether tracked files differ from HEAD; undefined when git cannot tell. Takes no lock, so it never disturbs a checkout. */
export async function hasLocalChanges(repo: string, options: GitOptions = {}): Promise<boolean | undefined> {
  const result = await exec(repo, ["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"], options);
  return result.code === 0 ? result.stdout.trim() !== "" : undefined;
}

/** Fetches one branch of origin into refs/remotes/origin/<branch> and returns its tip. */
export async function fetchBranch(repo: string, branch: string, options: GitOptions): Promise<string> {
  const remoteRef = `refs/remotes/origin/${branch}`;
  await git(repo, ["fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "origin", "--", `+refs/heads/${branch}:${remoteRef}`], options);
  const tip = await refTip(repo, remoteRef, options);
  if (!tip) throw new GitError(`branch ${branch} has no commit on origin`);
  return tip;
}

/** The commit a full ref name points at, read from its file when it can be, or undefined. */
export async function refTip(repo: string, ref: string, options: GitOptions = {}): Promise<string | undefined> {
  const fast = plainLayout(join(repo, ".git")) ? readRefFile(join(repo, ".git"), ref) : undefined;
  return fast && /^[0-9a-f]{40}$/.test(fast) ? fast : resolveCommit(repo, ref, options);
}

/**
 * Why `sha` may not be checked out under the allowed-signers file `signers`, or undefined when
 * `git verify-commit` accepts its SSH signature. The settings are given for this one call (-c), and only
 * a principal the file lists is trusted: a good signature by any other key is not enough.
 */
export async function signatureProblem(repo: string, sha: string, signers: string, options: GitOptions): Promise<string | undefined> {
  const config = ["gpg.format=ssh", `gpg.ssh.allowedSignersFile=${signers}`, "gpg.minTrustLevel=fully"].flatMap((c) => ["-c", c]);
  const result = await exec(repo, [...config, "verify-commit", sha], options);
  if (result.code === 0 && !result.timedOut) return undefined;
  const said = result.error ?? result.stderr.trim().split("\n").pop();
  return said ? `git verify-commit: ${said}` : "it has no signature";
}

/** Whether `commit` is `tip` or one of its ancestors. */
export async function isAncestor(repo: string, commit: string, tip: string, options: GitOptions = {}): Promise<boolean> {
  const result = await exec(repo, ["merge-base", "--is-ancestor", commit, tip], options);
  if (result.code === 0 || result.code === 1) return result.code === 0;
  throw new GitError(`git merge-base failed: ${result.stderr.trim() || result.error || `exit ${result.code}`}`);
}

/**
 * Puts the checkout on `branch` (or detached when there is none) at `sha`,
 * discarding changes to tracked files, and confirms HEAD is there.
 * Untracked files (logs, local configuration) are left alone.
 */
export async function checkoutAt(repo: string, branch: string | undefined, sha: string, options: GitOptions): Promise<void> {
  const where = branch ? ["-B", branch, sha] : ["--detach", sha];
  await git(repo, ["checkout", "--quiet", "--force", ...where, "--"], options);
  const now = await position(repo, options);
  if (now?.sha !== sha || now.branch !== branch) {
    throw new GitError(`checkout ended at ${now?.sha ?? "nothing"} on ${now?.branch ?? "no branch"}, not at ${sha} on ${branch ?? "no branch"}`);
  }
}
