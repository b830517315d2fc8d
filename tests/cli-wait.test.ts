/**
 * `bun scripts/deploy.ts` as operators run it, against a real `bun
 * webhook.ts` and two real `bun worker.ts` processes (cli-a in group
 * canary, so it is the first wave): `--wait` over a rollout of two waves, a
 * failing node's output tail, approve and abort of a paused rollout, Ctrl-C
 * while waiting, `update` without `--commit` in a checkout with an origin,
 * and the `status` and `nodes` tables. With stdout a pipe, progress is plain
 * appended lines.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import type { Deployment } from "../shared/served.ts";
import { ROOT, git, head, removeDirs, tempDir, waitUntil } from "./helpers.ts";
import { useStack, type Stack } from "./stack.ts";

const stack = useStack([{ id: "cli-a", groups: ["canary"] }, { id: "cli-b" }], "cli");

/** The CLI started in `cwd` (as an operator in a checkout would), stdout a pipe. */
function cliIn(s: Stack, cwd: string, ...args: string[]) {
  const child = Bun.spawn([process.execPath, join(ROOT, "scripts/deploy.ts"), ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ARBEIDER_URL: s.url, ARBEIDER_API_KEY: s.apiKey },
    stdout: "pipe",
    stderr: "pipe",
  });
  let stdout = "";
  const reading = (async () => {
    for await (const chunk of child.stdout) stdout += new TextDecoder().decode(chunk);
  })();
  const done = Promise.all([child.exited, reading, new Response(child.stderr).text()]).then(([code, , stderr]) => ({ code, stdout, stderr }));
  return { child, done, stdout: () => stdout };
}

const deploymentOf = (s: Stack, id: string) => s.api<Deployment>(`/api/deployments/${id}`);
const waitState = (s: Stack, id: string, state: string) =>
  waitUntil(async () => (await deploymentOf(s, id)).state === state, `${id} ${state}`, 20_000);
const lastLine = (text: string) => text.trimEnd().split("\n").at(-1);

test("update --wait follows a rollout of two waves on a pipe and exits 0 when the server says succeeded", async () => {
  const s = stack();
  const commit = s.origin.commit("master", { "feature.txt": "1\n" }, "feature");
  const { code, stdout, stderr } = await s.cli("update", "--branch", "master", "--commit", commit, "--waves", "1,100%", "--wait", "--timeout", "30");
  expect(stderr).toBe("");
  expect(code).toBe(0);
  expect(stdout).not.toContain("\x1b[");
  expect(stdout.split("\n")[0]).toMatch(new RegExp(`^api-\\S+  update master@${commit.slice(0, 7)} → all`));
  expect(stdout).toContain("  wave 1/2 · 1 of 2 nodes · ");
  expect(stdout).toContain("  wave 2/2 · 2 of 2 nodes · succeeded");
  // The canary is in wave 1: its line comes before cli-b's.
  expect(stdout.indexOf("✔ cli-a")).toBeLessThan(stdout.indexOf("✔ cli-b"));
  for (const node of ["cli-a", "cli-b"]) {
    expect(stdout).toMatch(new RegExp(`✔ ${node} +succeeded +\\w{7} → ${commit.slice(0, 7)}`));
    expect(head(s.repos[node])).toBe(commit);
  }
  expect(lastLine(stdout)).toBe("ok: 2 of 2 nodes succeeded");
});

test("a failing node: --wait exits 1, prints the tail of its output after the table, and the rollout is rolled back", async () => {
  const s = stack();
  const good = head(s.repos["cli-b"]);
  const broken = s.origin.commit("master", { broken: "yes\n" }, "a broken build");
  // The next tests deploy master's tip: it is made good again whatever happens here.
  const run = s.cli("update", "--branch", "master", "--commit", broken, "--target", "node:cli-b", "--wait", "--timeout", "30").finally(() => {
    git(s.origin.work, "rm", "--quiet", "broken");
    s.origin.commit("master", {}, "fix the build");
  });
  const { code, stdout } = await run;
  expect(code).toBe(1);
  expect(stdout).toMatch(/✘ cli-b +failed .*update script exited with status 3/);
  expect(stdout).not.toContain("cli-a");
  expect(stdout).toContain("rollback succeeded");
  expect(stdout).toContain("\noutput of cli-b (last 1 line):\n  boom: this build is broken\n");
  expect(lastLine(stdout)).toBe("FAILED: rolled back: 1 node failed, 0 tolerated (max_failures): cli-b failed");
  expect(head(s.repos["cli-b"])).toBe(good);
  // Rolled back by its rollout, cli-b runs the commit it should, and its last outcome (the rollback) succeeded.
  await waitUntil(async () => /\ncli-b +- +(\w{7}) +\1 +\1 +- +on latest/.test((await s.cli("nodes")).stdout), "cli-b on latest in deploy.ts nodes", 10_000);
});

test("approve lets a paused rollout go on; abort stops one; each refuses what does not apply", async () => {
  const s = stack();
  const commit = s.origin.commit("master", { "gated.txt": "1\n" }, "gated");
  const created = await s.cli("update", "--branch", "master", "--commit", commit, "--waves", "1,100%", "--approve", "1");
  expect(created.code).toBe(0);
  const id = created.stdout.trim();
  await waitState(s, id, "paused");
  const status = await s.cli("status", id);
  expect(status.stdout).toContain(`paused after wave 1: approve with deploy.ts approve ${id}`);
  expect(status.stdout).toContain("  wave 1/2 · 1 of 2 nodes · paused");
  const approved = await s.cli("approve", id);
  expect(approved).toMatchObject({ code: 0, stdout: `${id} approved after wave 1: the next wave starts\n` });
  const followed = await s.cli("status", id, "--wait", "--timeout", "30");
  expect(followed.code).toBe(0);
  expect(head(s.repos["cli-b"])).toBe(commit);
  const again = await s.cli("approve", id);
  expect(again.code).toBe(1);
  expect(again.stderr).toContain(`409 deployment ${id} is succeeded, not paused`);

  const next = s.origin.commit("master", { "gated.txt": "2\n" }, "gated again");
  const second = (await s.cli("update", "--branch", "master", "--commit", next, "--waves", "1,100%", "--approve", "1")).stdout.trim();
  await waitState(s, second, "paused");
  expect(await s.cli("abort", second)).toMatchObject({ code: 0, stdout: `${second} aborted: no further wave; its on_failure applies\n` });
  const ended = await s.cli("status", second, "--wait", "--timeout", "30");
  expect(ended.code).toBe(1);
  expect(lastLine(ended.stdout)).toBe("FAILED: rolled back: aborted by the operator (api)");
  expect(head(s.repos["cli-a"])).toBe(commit);
  expect(head(s.repos["cli-b"])).toBe(commit);
  expect((await s.cli("abort", second)).code).toBe(1);
});

test("Ctrl-C during --wait says the deployment goes on, how to follow it, and exits 130", async () => {
  const s = stack();
  const commit = s.origin.commit("master", { "waiting.txt": "1\n" }, "waiting");
  const run = cliIn(s, ROOT, "update", "--branch", "master", "--commit", commit, "--waves", "1,100%", "--approve", "1", "--wait");
  await waitUntil(() => run.stdout().includes("paused after wave 1"), "the CLI showing the pause", 20_000);
  run.child.kill("SIGINT");
  const { code, stdout } = await run.done;
  expect(code).toBe(130);
  const id = stdout.split("  ")[0];
  expect(stdout).toContain(`interrupted: deployment ${id} goes on; follow it again with \`bun scripts/deploy.ts status ${id} --wait\``);
  expect((await deploymentOf(s, id)).state).toBe("paused");
  expect((await s.cli("approve", id)).code).toBe(0);
  await waitState(s, id, "succeeded");
});

test("update without --commit pins the tip of the branch on origin, resolved in the current checkout", async () => {
  const s = stack();
  const checkout = tempDir();
  const elsewhere = tempDir();
  try {
    git(checkout, "clone", "--quiet", s.origin.origin, ".");
    const tip = s.origin.commit("master", { "tip.txt": "1\n" }, "the tip");
    const { code, stdout } = await cliIn(s, checkout, "update", "--branch", "master", "--wait", "--timeout", "30").done;
    expect(code).toBe(0);
    const id = stdout.split("  ")[0];
    expect((await deploymentOf(s, id)).args).toEqual({ branch: "master", commit: tip });
    expect(stdout.split("\n")[0]).toContain(`update master@${tip.slice(0, 7)}`);
    const nowhere = await cliIn(s, elsewhere, "update", "--branch", "master").done;
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toContain("cannot resolve the tip of master");
    const missing = await cliIn(s, checkout, "update", "--branch", "no-such-branch").done;
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("origin has no branch no-such-branch");
  } finally {
    removeDirs(checkout, elsewhere);
  }
});

test("status and nodes print tables: true durations, each node's commits and condition; an unknown deployment exits 1", async () => {
  const s = stack();
  const nodes = await s.cli("nodes");
  expect(nodes.code).toBe(0);
  expect(nodes.stdout).toMatch(/^NODE +GROUPS +DESIRED +COMMIT +LAST GOOD +DRIFT +STATE +BUSY +LAST SEEN\ncli-a +canary +(\w{7}) +\1 +\1 +- +on latest +no /);
  expect(nodes.stdout).toMatch(/\ncli-b +- +(\w{7}) +\1 +\1 +- +on latest/);
  const status = await s.cli("status");
  expect(status.code).toBe(0);
  expect(status.stdout).toMatch(/^ID +WHAT +STATE +NODES +CREATED +DURATION\napi-\S+ +update master@\w{7} → all +succeeded +2\/2 +\d+s ago +[\d.]+m?s\n/);
  const missing = await s.cli("status", "api-nope");
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain('no deployment "api-nope"');
});
