/**
 * What a worker keeps straight across a crash and downtime: the commit an
 * update started from survives a SIGKILL in its middle (for a later rollback
 * and for ARBEIDER_ROLLBACK_ON_FAILURE), a rollback goes only to a commit of
 * the node's branch or to the recorded one, a git fetch left running by a
 * killed worker is ended, and a node back from downtime runs only the newest
 * of its queued updates. Real processes, the real broker, real checkouts.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { currentBranch, git, head, isClean, stopAll } from "./helpers.ts";
import { crashAndRestart, startGatedUpdate, waitForPid, withNodes, type Nodes } from "./worker-fixture.ts";

setDefaultTimeout(60_000);
afterAll(stopAll);

/** Updates `node` to a new commit on master and waits for its success; returns the commit. */
async function updatedTo(t: Nodes, node: string, content: string): Promise<string> {
  const sha = t.origin.commit("master", { "app.txt": `${content}\n` }, content);
  expect(await t.outcome(await t.send({ command: "update", args: { branch: "master", commit: sha } }), node)).toMatchObject({ state: "succeeded" });
  return sha;
}

/** SIGKILLs the worker of `node` while update.sh waits at the gate, restarts it, and lets the redelivered update go on. */
async function crashMidUpdate(t: Nodes, node: string, files: Record<string, string>, env: Record<string, string> = {}) {
  const update = await startGatedUpdate(t, node, files);
  await crashAndRestart(t, node, update.pid, env);
  update.open();
  return update;
}

test.concurrent("after a SIGKILL mid-update and a restart, the update reports where it started, and a later rollback goes back there", () =>
  withNodes([{ id: "n1" }], async (t) => {
    await t.start("n1");
    const v2 = await updatedTo(t, "n1", "v2");
    const { cmd, gated } = await crashMidUpdate(t, "n1", {});
    expect(await t.fleet.waitState(cmd.deployment, "n1", ["succeeded"])).toMatchObject({ commitBefore: v2, commitAfter: gated });
    expect(t.runs("n1").at(-1)).toContain(`commit=${gated} previous=${v2}`);

    const back = await t.send({ command: "rollback", args: {} });
    expect(await t.outcome(back, "n1")).toMatchObject({ state: "succeeded", commitBefore: gated, commitAfter: v2 });
    expect([head(t.repos.n1), currentBranch(t.repos.n1), isClean(t.repos.n1)]).toEqual([v2, "master", true]);
  }),
);

test.concurrent("with rollback on failure, a failing update interrupted by a SIGKILL rolls back to the commit before it, not to itself", () =>
  withNodes([{ id: "n1" }], async (t) => {
    const careful = { ARBEIDER_ROLLBACK_ON_FAILURE: "true" };
    await t.start("n1", careful);
    const v2 = await updatedTo(t, "n1", "v2");
    const { cmd, gated } = await crashMidUpdate(t, "n1", { broken: "1" }, careful);
    const failed = await t.fleet.waitState(cmd.deployment, "n1", ["failed"]);
    expect(failed).toMatchObject({ commitBefore: v2, commitAfter: v2 });
    expect(failed.reason).toBe(`update script exited with status 3; rolled back to ${v2.slice(0, 12)} and re-ran the update script`);
    expect([head(t.repos.n1), currentBranch(t.repos.n1), isClean(t.repos.n1)]).toEqual([v2, "master", true]);
    expect(t.runs("n1").at(-1)).toContain(`commit=${v2} previous=${gated}`);
  }),
);

test.concurrent("after a SIGKILL mid-update with a newer update queued behind it, the newer one runs from the commit before the interrupted one", () =>
  withNodes([{ id: "n1" }], async (t) => {
    await t.start("n1");
    const v2 = await updatedTo(t, "n1", "v2");
    const interrupted = await startGatedUpdate(t, "n1");
    const v4 = t.origin.commit("master", { "app.txt": "v4\n" }, "v4");
    const newer = await t.send({ command: "update", args: { branch: "master", commit: v4 } });
    await crashAndRestart(t, "n1", interrupted.pid);
    interrupted.open();
    expect(await t.outcome(newer, "n1")).toMatchObject({ state: "succeeded", commitBefore: v2, commitAfter: v4 });
    const skipped = await t.fleet.waitState(interrupted.cmd.deployment, "n1", ["succeeded", "skipped"]);
    expect([skipped.state, skipped.reason?.split(" ")[0]]).toEqual(["skipped", "superseded:"]);
    expect(t.runs("n1").at(-1)).toContain(`commit=${v4} previous=${v2}`);
    expect(await t.outcome(await t.send({ command: "rollback", args: {} }), "n1")).toMatchObject({ state: "succeeded", commitAfter: v2 });
  }),
);

test.concurrent("rollback takes a commit of the node's branch or the recorded one (on its own branch), and refuses one only on a feature branch", () =>
  withNodes([{ id: "n1" }], async (t) => {
    await t.start("n1");
    const feature = t.origin.commit("feature", { "feature.txt": "x\n" }, "only on feature");
    // The node learns the feature commit, then goes back to master and on to v2.
    expect(await t.outcome(await t.send({ command: "update", args: { branch: "feature" } }), "n1")).toMatchObject({ commitAfter: feature });
    expect(await t.outcome(await t.send({ command: "update", args: { branch: "master", commit: t.base } }), "n1")).toMatchObject({ commitAfter: t.base });
    const v2 = await updatedTo(t, "n1", "v2");
    const runs = t.runs("n1").length;

    const refused = await t.outcome(await t.send({ command: "rollback", args: { commit: feature } }), "n1");
    expect(refused).toMatchObject({ state: "failed", commitBefore: v2, commitAfter: v2 });
    expect(refused.reason).toBe(`commit ${feature.slice(0, 12)} is not on branch master, the branch this node is on, nor the commit recorded before its last update`);
    expect([head(t.repos.n1), currentBranch(t.repos.n1), isClean(t.repos.n1), t.runs("n1").length]).toEqual([v2, "master", true, runs]);

    // From the feature branch, the recorded commit before that update is on master: the rollback returns there.
    expect(await t.outcome(await t.send({ command: "update", args: { branch: "feature" } }), "n1")).toMatchObject({ commitAfter: feature });
    const back = await t.outcome(await t.send({ command: "rollback", args: { commit: v2.slice(0, 10) } }), "n1");
    expect(back).toMatchObject({ state: "succeeded", commitAfter: v2, branch: "master" });
    expect([head(t.repos.n1), currentBranch(t.repos.n1)]).toEqual([v2, "master"]);
    const named = await t.outcome(await t.send({ command: "rollback", args: { commit: t.base } }), "n1");
    expect(named).toMatchObject({ state: "succeeded", commitAfter: t.base, branch: "master" });
  }),
);

test.concurrent("a git fetch left running by a SIGKILLed worker is ended when the worker restarts", () =>
  withNodes([{ id: "n1" }], async (t) => {
    // origin's upload-pack waits for the gate, so the fetch hangs until the test opens it.
    const slow = join(t.dir, "slow-upload-pack");
    writeFileSync(slow, `#!/bin/sh\necho $$ > "$MARKER_DIR/n1.fetch.pid"\nwhile [ ! -f "$MARKER_DIR/open" ] && [ -d "$MARKER_DIR" ]; do sleep 0.05; done\nexec git-upload-pack "$@"\n`);
    chmodSync(slow, 0o755);
    git(t.repos.n1, "config", "remote.origin.uploadpack", slow);
    await t.start("n1");
    const v2 = t.origin.commit("master", { "app.txt": "v2\n" }, "v2");
    const cmd = await t.send({ command: "update", args: { branch: "master", commit: v2 } });
    await crashAndRestart(t, "n1", await waitForPid(t, "n1.fetch.pid", "git fetch to reach origin"));
    writeFileSync(t.marker("open"), "");
    expect(await t.fleet.waitState(cmd.deployment, "n1", ["succeeded"])).toMatchObject({ commitAfter: v2 });
    expect(t.runs("n1")).toHaveLength(1);
  }),
);

test.concurrent("a node back from downtime with three updates queued runs only the newest; the others are skipped as superseded", () =>
  withNodes([{ id: "n1" }], async (t) => {
    expect(await (await t.start("n1")).stop()).toBe(0);
    const now = Date.now();
    const updates = [];
    for (const [i, content] of ["v2", "v3", "v4"].entries()) {
      const sha = t.origin.commit("master", { "app.txt": `${content}\n` }, content);
      const issuedAt = new Date(now - 3000 + i * 1000).toISOString();
      updates.push({ sha, cmd: await t.send({ command: "update", args: { branch: "master", commit: sha }, issuedAt }) });
    }
    await t.start("n1");
    const [older, old, newest] = updates;
    expect(await t.outcome(newest!.cmd, "n1")).toMatchObject({ state: "succeeded", commitBefore: t.base, commitAfter: newest!.sha });
    for (const { cmd } of [older!, old!]) {
      const skipped = await t.outcome(cmd, "n1");
      expect(skipped.state).toBe("skipped");
      expect(skipped.reason).toStartWith("superseded: update ");
      expect(t.fleet.of(cmd.deployment, "n1")).toHaveLength(1);
    }
    expect(t.runs("n1")).toHaveLength(1);
    expect(t.runs("n1")[0]).toContain(`commit=${newest!.sha}`);
  }),
);
