/**
 * Signed commits only: with ARBEIDER_ALLOWED_SIGNERS a worker checks a commit
 * out only if `git verify-commit` accepts its SSH signature with that file.
 * Keys are made by `ssh-keygen` at test time; commits are signed by git.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { currentBranch, git, head, isClean, stopAll } from "./helpers.ts";
import { withNodes, type Nodes } from "./worker-fixture.ts";

setDefaultTimeout(60_000);
afterAll(stopAll);

function sshKey(dir: string, name: string): string {
  const file = join(dir, name);
  const made = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file], { encoding: "utf8" });
  if (made.status !== 0) throw new Error(`ssh-keygen failed: ${made.stderr}`);
  return file;
}

/** Commits a change on master of origin, signed with the SSH key `key` (or not signed), and pushes it. */
function commit(t: Nodes, content: string, key?: string): string {
  const work = t.origin.work;
  writeFileSync(join(work, "app.txt"), `${content}\n`);
  git(work, "add", "-A");
  const signing = key ? ["-c", "gpg.format=ssh", "-c", `user.signingkey=${key}`] : [];
  git(work, "-c", "user.name=dev", "-c", "user.email=dev@example.com", ...signing, "commit", "--quiet", ...(key ? ["-S"] : []), "-m", content);
  git(work, "push", "--quiet", "origin", "master");
  return git(work, "rev-parse", "HEAD");
}

test("with ARBEIDER_ALLOWED_SIGNERS a commit signed by a listed key deploys; an unsigned one and one signed by another key do not", () =>
  withNodes([{ id: "n1" }], async (t) => {
    const keys = join(t.dir, "ssh");
    mkdirSync(keys);
    const trusted = sshKey(keys, "trusted");
    const stranger = sshKey(keys, "stranger");
    const allowed = join(keys, "allowed_signers");
    writeFileSync(allowed, `dev@example.com ${readFileSync(`${trusted}.pub`, "utf8")}`);
    await t.start("n1", { ARBEIDER_ALLOWED_SIGNERS: allowed });

    const signed = commit(t, "signed", trusted);
    expect(await t.outcome(await t.send({ command: "update", args: { branch: "master", commit: signed } }), "n1")).toMatchObject({ state: "succeeded", commitAfter: signed });

    const cases: [string, string, string][] = [
      ["unsigned", commit(t, "unsigned"), "it has no signature"],
      ["signed by a key not in the file", commit(t, "stranger", stranger), "git verify-commit: No principal matched."],
    ];
    for (const [name, sha, why] of cases) {
      const failed = await t.outcome(await t.send({ command: "update", args: { branch: "master", commit: sha } }), "n1");
      expect([name, failed.state, failed.commitAfter]).toEqual([name, "failed", signed]);
      expect(failed.reason).toBe(`unsigned commit: ${sha.slice(0, 12)} has no signature that ARBEIDER_ALLOWED_SIGNERS accepts (${why})`);
      expect([head(t.repos.n1), currentBranch(t.repos.n1), isClean(t.repos.n1)]).toEqual([signed, "master", true]);
    }
    expect(t.runs("n1")).toHaveLength(1);
  }),
);
