/**
 * `deploy.ts update` without `--commit` pins the branch's tip as origin has
 * it now, so every node deploys the same commit even if the branch moves
 * while the rollout runs: `git ls-remote origin refs/heads/<branch>` in the
 * current directory, started with an argument list (no shell), no prompt.
 */
import { execFile } from "node:child_process";
import { UsageError } from "./args.ts";

/** The commit `refs/heads/<branch>` points at on origin; a UsageError (exit 2) saying why when it cannot tell. */
export function branchTip(branch: string, cwd: string): Promise<string> {
  const ref = `refs/heads/${branch}`;
  const argv = ["ls-remote", "--end-of-options", "origin", ref];
  return new Promise((resolve, reject) => {
    execFile("git", argv, { cwd, timeout: 30_000, env: { ...process.env, GIT_TERMINAL_PROMPT: "0" } }, (error, stdout, stderr) => {
      const hint = `give --commit, or run deploy.ts in a checkout whose origin has ${branch}`;
      if (error) {
        const why = String(stderr).trim().split("\n").at(-1) || error.message;
        return reject(new UsageError(`cannot resolve the tip of ${branch}: git ${argv.join(" ")} in ${cwd} failed: ${why} (${hint})`));
      }
      const line = String(stdout).split("\n").find((l) => l.endsWith(`\t${ref}`));
      const sha = line?.split("\t")[0];
      if (!sha || !/^[0-9a-f]{40}$/.test(sha)) return reject(new UsageError(`origin has no branch ${branch} (git ls-remote origin ${ref} in ${cwd}); ${hint}`));
      resolve(sha);
    });
  });
}
