/**
 * What a worker does with each command it accepts: real `bun worker.ts`
 * processes on real git checkouts, commands signed and published the way the
 * webhook does, outcomes read from the fleet's events exchange.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, existsSync, readFileSync, symlinkSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { currentBranch, head, isClean, makeKeys, startProcess, stopAll } from "./helpers.ts";
import { alive, statesOf, waitUntil, withNodes } from "./worker-fixture.ts";

setDefaultTimeout(60_000);
afterAll(stopAll);

describe("update", () => {
  test.concurrent("an update to all puts three nodes on the branch at the commit and runs update.sh with the contract's environment", () =>
    withNodes([{ id: "n1" }, { id: "n2" }, { id: "n3" }], async (t) => {
      await Promise.all(["n1", "n2", "n3"].map((node) => t.start(node)));
      const sha = t.origin.commit("release", { "app.txt": "v2\n" }, "release v2");
      const cmd = await t.send({ command: "update", args: { branch: "release", commit: sha } });
      for (const node of ["n1", "n2", "n3"]) {
        const outcome = await t.outcome(cmd, node);
        expect(outcome).toMatchObject({ state: "succeeded", commitBefore: t.base, commitAfter: sha, command: cmd.id });
        expect(outcome.output).toContain(`updated to ${sha}`);
        expect(outcome.durationMs).toBeGreaterThanOrEqual(0);
        expect(statesOf(t.fleet, cmd.deployment, node)).toEqual(["received", "started", "succeeded"]);
        const repo = t.repos[node];
        expect([head(repo), currentBranch(repo), isClean(repo)]).toEqual([sha, "release", true]);
        expect(t.runs(node)).toEqual([
          `run deployment=${cmd.deployment} node=${node} branch=release commit=${sha} previous=${t.base} pwd=${repo}`,
        ]);
        expect(readFileSync(t.marker(`${node}.amqp`), "utf8")).toBe("broker url: not given\n");
      }
    }),
  );

  test.concurrent("group: and node: targets reach only the nodes they name", () =>
    withNodes([{ id: "a", groups: ["web"] }, { id: "b", groups: ["web", "eu"] }, { id: "c", groups: ["db"] }], async (t) => {
      await Promise.all(["a", "b", "c"].map((node) => t.start(node)));
      const v2 = t.origin.commit("master", { "app.txt": "v2\n" }, "v2");
      const web = await t.send({ command: "update", target: "group:web", args: { branch: "master", commit: v2 } });
      // Sent only once a has run the first: queued behind it, the newer update would supersede it (backlog read-ahead).
      await t.outcome(web, "a");
      const v3 = t.origin.commit("master", { "app.txt": "v3\n" }, "v3");
      const justA = await t.send({ command: "update", target: "node:a", args: { branch: "master", commit: v3 } });
      // A node's queue is first in, first out: once its later ping is answered, it has seen everything before.
      const fence = await t.send({ command: "ping", args: {} });
      for (const node of ["a", "b", "c"]) expect(await t.outcome(fence, node)).toMatchObject({ state: "succeeded" });

      expect(await t.outcome(web, "a")).toMatchObject({ state: "succeeded", commitAfter: v2 });
      expect(await t.outcome(web, "b")).toMatchObject({ state: "succeeded", commitAfter: v2 });
      expect(await t.outcome(justA, "a")).toMatchObject({ state: "succeeded", commitAfter: v3 });
      expect(t.fleet.of(web.deployment, "c")).toEqual([]);
      expect(t.fleet.of(justA.deployment, "b")).toEqual([]);
      expect(t.fleet.of(justA.deployment, "c")).toEqual([]);
      expect([head(t.repos.a), head(t.repos.b), head(t.repos.c)]).toEqual([v3, v2, t.base]);
      expect([t.runs("a").length, t.runs("b").length, t.runs("c").length]).toEqual([2, 1, 0]);
    }),
  );

  test.concurrent("an update without a commit goes to the branch tip, discarding local changes to tracked files", () =>
    withNodes([{ id: "n1" }], async (t) => {
      await t.start("n1");
      writeFileSync(join(t.repos.n1, "README"), "edited on the node\n");
      const tip = t.origin.commit("master", { "app.txt": "tip\n" }, "tip");
      const cmd = await t.send({ command: "update", args: { branch: "master" } });
      expect(await t.outcome(cmd, "n1")).toMatchObject({ state: "succeeded", commitAfter: tip });
      expect([head(t.repos.n1), currentBranch(t.repos.n1), isClean(t.repos.n1)]).toEqual([tip, "master", true]);
    }),
  );

  test.concurrent("an unknown commit or a commit not on the branch fails and leaves the checkout as it was", () =>
    withNodes([{ id: "n1" }], async (t) => {
      await t.start("n1");
      const other = t.origin.commit("other", { "other.txt": "x\n" }, "on another branch");
      // The node learns `other` first, so the second command names a commit it knows, just not on master.
      const fetchOther = await t.send({ command: "update", args: { branch: "other" } });
      expect(await t.outcome(fetchOther, "n1")).toMatchObject({ state: "succeeded", commitAfter: other });
      const back = await t.send({ command: "update", args: { branch: "master", commit: t.base } });
      expect(await t.outcome(back, "n1")).toMatchObject({ state: "succeeded", commitAfter: t.base });
      const runsBefore = t.runs("n1").length;

      const unknown = await t.send({ command: "update", args: { branch: "master", commit: "0123456789abcdef0123456789abcdef01234567" } });
      expect(await t.outcome(unknown, "n1")).toMatchObject({ state: "failed", commitBefore: t.base, commitAfter: t.base });
      expect(t.fleet.of(unknown.deployment, "n1").at(-1)!.reason).toContain("unknown commit");
      const offBranch = await t.send({ command: "update", args: { branch: "master", commit: other } });
      const failed = await t.outcome(offBranch, "n1");
      expect(failed).toMatchObject({ state: "failed", commitAfter: t.base, reason: `commit ${other} is not on branch master of origin` });
      expect([head(t.repos.n1), currentBranch(t.repos.n1), isClean(t.repos.n1)]).toEqual([t.base, "master", true]);
      expect(t.runs("n1").length).toBe(runsBefore);
    }),
  );

  test.concurrent("a failing update.sh is reported with its output; with rollback on failure the previous commit comes back", () =>
    withNodes([{ id: "plain" }, { id: "careful" }], async (t) => {
      await Promise.all([t.start("plain"), t.start("careful", { ARBEIDER_ROLLBACK_ON_FAILURE: "true" })]);
      const broken = t.origin.commit("master", { broken: "1" }, "broken build");
      const cmd = await t.send({ command: "update", args: { branch: "master", commit: broken } });

      const plain = await t.outcome(cmd, "plain");
      expect(plain).toMatchObject({ state: "failed", reason: "update script exited with status 3", commitAfter: broken });
      expect(plain.output).toContain("boom: this build is broken");
      expect(head(t.repos.plain)).toBe(broken);

      const careful = await t.outcome(cmd, "careful");
      expect(careful).toMatchObject({ state: "failed", commitBefore: t.base, commitAfter: t.base });
      expect(careful.reason).toBe(`update script exited with status 3; rolled back to ${t.base.slice(0, 12)} and re-ran the update script`);
      expect(careful.output).toContain("boom: this build is broken");
      expect([head(t.repos.careful), currentBranch(t.repos.careful), isClean(t.repos.careful)]).toEqual([t.base, "master", true]);
      expect(t.runs("careful").map((line) => line.match(/ commit=(\w+)/)![1])).toEqual([broken, t.base]);
    }),
  );

  test.concurrent("a hanging update.sh is killed at ARBEIDER_TIMEOUT with its whole process group and reported failed", () =>
    withNodes([{ id: "n1" }], async (t) => {
      await t.start("n1", { ARBEIDER_TIMEOUT: "2" });
      const hang = t.origin.commit("master", { hang: "1" }, "hangs");
      const cmd = await t.send({ command: "update", args: { branch: "master", commit: hang } });
      const outcome = await t.outcome(cmd, "n1");
      expect(outcome).toMatchObject({ state: "failed", reason: "update script timed out after 2 s; its process group was killed" });
      expect(outcome.durationMs).toBeGreaterThanOrEqual(2000);
      const pids = ["script", "child"].map((name) => Number(readFileSync(t.marker(`n1.${name}.pid`), "utf8")));
      await waitUntil(() => pids.every((pid) => !alive(pid)), "the script and its child to be gone", 10_000);
    }),
  );
});

describe("rollback, signal, hook, ping", () => {
  test.concurrent("rollback returns to the commit before the last update, or to a named commit, and runs update.sh", () =>
    withNodes([{ id: "n1" }], async (t) => {
      await t.start("n1");
      const v2 = t.origin.commit("master", { "app.txt": "v2\n" }, "v2");
      const v3 = t.origin.commit("master", { "app.txt": "v3\n" }, "v3");
      expect(await t.outcome(await t.send({ command: "update", args: { branch: "master", commit: v2 } }), "n1")).toMatchObject({ state: "succeeded" });
      expect(await t.outcome(await t.send({ command: "update", args: { branch: "master", commit: v3 } }), "n1")).toMatchObject({ state: "succeeded" });

      const back = await t.send({ command: "rollback", args: {} });
      expect(await t.outcome(back, "n1")).toMatchObject({ state: "succeeded", commitBefore: v3, commitAfter: v2 });
      expect([head(t.repos.n1), currentBranch(t.repos.n1), isClean(t.repos.n1)]).toEqual([v2, "master", true]);
      expect(t.runs("n1").at(-1)).toContain(`branch=master commit=${v2} previous=${v3}`);

      const named = await t.send({ command: "rollback", args: { commit: t.base.slice(0, 10) } });
      expect(await t.outcome(named, "n1")).toMatchObject({ state: "succeeded", commitAfter: t.base });
      expect(head(t.repos.n1)).toBe(t.base);
    }),
  );

  test.concurrent("signal sends the named signal to the process in the service's pidfile", () =>
    withNodes([{ id: "n1" }], async (t) => {
      const pidfile = t.marker("web.pid");
      const got = t.marker("web.got");
      const service = startProcess(
        ["sh", "-c", `trap 'echo HUP > "$0"; exit 0' HUP; echo $$ > "$1"; while :; do sleep 0.05; done`, got, pidfile],
        {},
      );
      await waitUntil(() => existsSync(pidfile) && readFileSync(pidfile, "utf8").trim(), "the service's pidfile");
      await t.start("n1", { ARBEIDER_SERVICES: `web=${pidfile}` });
      const cmd = await t.send({ command: "signal", args: { service: "web", signal: "HUP" } });
      expect(await t.outcome(cmd, "n1")).toMatchObject({ state: "succeeded" });
      expect(await service.exited).toBe(0);
      expect(readFileSync(got, "utf8")).toBe("HUP\n");

      const unknown = await t.send({ command: "signal", args: { service: "db", signal: "HUP" } });
      expect(await t.outcome(unknown, "n1")).toMatchObject({ state: "failed", reason: "service db is not in ARBEIDER_SERVICES on this node" });
      const inherited = await t.send({ command: "signal", args: { service: "constructor", signal: "HUP" } });
      expect(await t.outcome(inherited, "n1")).toMatchObject({ state: "failed", reason: "service constructor is not in ARBEIDER_SERVICES on this node" });
    }),
  );

  test.concurrent("hook runs an executable of the hooks folder; names leading elsewhere are refused", () =>
    withNodes([{ id: "n1" }], async (t) => {
      const hooks = join(t.dir, "hooks");
      mkdirSync(hooks);
      writeFileSync(join(hooks, "warm-cache"), `#!/bin/sh\necho "warmed $ARBEIDER_DEPLOYMENT" > "$MARKER_DIR/hook.ran"\necho hook says hi\n`);
      chmodSync(join(hooks, "warm-cache"), 0o755);
      writeFileSync(join(t.dir, "outside"), `#!/bin/sh\ntouch "$MARKER_DIR/outside.ran"\n`);
      chmodSync(join(t.dir, "outside"), 0o755);
      symlinkSync(join(t.dir, "outside"), join(hooks, "escape"));
      await t.start("n1", { ARBEIDER_HOOKS_DIR: hooks });

      const ok = await t.send({ command: "hook", args: { name: "warm-cache" } });
      expect(await t.outcome(ok, "n1")).toMatchObject({ state: "succeeded", output: "hook says hi\n" });
      expect(readFileSync(t.marker("hook.ran"), "utf8")).toBe(`warmed ${ok.deployment}\n`);

      const escape = await t.send({ command: "hook", args: { name: "escape" } });
      expect(await t.outcome(escape, "n1")).toMatchObject({ state: "failed", reason: `hook escape leads outside ${hooks}` });
      const missing = await t.send({ command: "hook", args: { name: "nope" } });
      expect(await t.outcome(missing, "n1")).toMatchObject({ state: "failed", reason: `hook nope does not exist in ${hooks}` });
      for (const name of ["../outside", "a b", "warm-cache;id"]) {
        const bad = await t.send({ command: "hook", args: { name } });
        const refused = await t.outcome(bad, "n1");
        expect(refused.state).toBe("rejected");
        expect(refused.reason).toStartWith("schema: args.name:");
      }
      expect(existsSync(t.marker("outside.ran"))).toBe(false);
    }),
  );

  test.concurrent("ping answers with the node's commit and branch and runs nothing; any of several verify keys is accepted", () =>
    withNodes([{ id: "n1" }], async (t) => {
      const retired = makeKeys(join(t.dir, "retired-keys"));
      await t.start("n1", { ARBEIDER_VERIFY_KEY_FILE: `${retired.verifyFile},${t.keys.verifyFile}` });
      const cmd = await t.send({ command: "ping", args: {} });
      expect(await t.outcome(cmd, "n1")).toMatchObject({ state: "succeeded", commitAfter: t.base, branch: "master" });
      expect(t.runs("n1")).toEqual([]);
    }),
  );
});
