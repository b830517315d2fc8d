/**
 * `bun scripts/deploy.ts ... --wait` against a real `bun webhook.ts` and two
 * real `bun worker.ts` processes: the exit status follows what the nodes did,
 * and with stdout a pipe the progress is plain appended lines.
 */
import { expect, test } from "bun:test";
import { head } from "./helpers.ts";
import { useStack } from "./stack.ts";

const stack = useStack([{ id: "cli-a" }, { id: "cli-b" }], "cli");

test("update --wait on a pipe prints plain lines per node and exits 0 when every node succeeded", async () => {
  const s = stack();
  const commit = s.origin.commit("master", { "feature.txt": "1\n" }, "feature");
  const { code, stdout, stderr } = await s.cli("update", "--branch", "master", "--commit", commit, "--wait", "--timeout", "30");
  expect(stderr).toBe("");
  expect(code).toBe(0);
  expect(stdout).not.toContain("\x1b[");
  expect(stdout.split("\n")[0]).toMatch(new RegExp(`^api-\\S+  update master@${commit.slice(0, 7)} → all`));
  for (const node of ["cli-a", "cli-b"]) {
    expect(stdout).toMatch(new RegExp(`✔ ${node} +succeeded +\\w{7} → ${commit.slice(0, 7)}`));
    expect(head(s.repos[node])).toBe(commit);
  }
  expect(stdout.trimEnd().split("\n").at(-1)).toBe("ok: 2 of 2 nodes succeeded");
});

test("update --wait exits 1 and names the node and reason when a node fails", async () => {
  const s = stack();
  const broken = s.origin.commit("master", { broken: "yes\n" }, "a broken build");
  const { code, stdout } = await s.cli("update", "--branch", "master", "--target", "node:cli-b", "--wait", "--timeout", "30");
  expect(code).toBe(1);
  expect(stdout).toMatch(/✘ cli-b +failed .*update/);
  expect(stdout).not.toContain("cli-a");
  expect(stdout.trimEnd().split("\n").at(-1)).toBe("FAILED: cli-b failed");
  expect(head(s.repos["cli-a"])).not.toBe(broken);
});

test("status and nodes print tables; an unknown deployment exits 1", async () => {
  const s = stack();
  const nodes = await s.cli("nodes");
  expect(nodes.code).toBe(0);
  expect(nodes.stdout).toMatch(/^NODE +GROUPS +BRANCH +COMMIT +BUSY +ONLINE +LAST SEEN\ncli-a +- +master +\w{7} +(no|yes) +yes/);
  const status = await s.cli("status");
  expect(status.code).toBe(0);
  expect(status.stdout).toMatch(/^ID +WHAT +STATE +NODES +CREATED\napi-\S+ +update master → node:cli-b +failed +0\/1/);
  const missing = await s.cli("status", "api-nope");
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain('no deployment "api-nope"');
});
