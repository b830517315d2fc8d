/**
 * Rollouts end to end: `bun webhook.ts` and ten `bun worker.ts` on real
 * checkouts of one origin, in a fleet of their own, each with a health URL
 * served by a small HTTP server of the test. Waves go out in order and stop
 * at a failure, exactly the nodes a rollout changed are rolled back to the
 * commit each had (their update.sh run there), max_failures and approval
 * gates hold, and abort ends a rollout. Every update.sh run is counted from
 * the markers the script writes, so "ran nothing" and "ran once" are facts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { head, waitUntil } from "./helpers.ts";
import { rollOut, settled, useStack, type Stack } from "./stack.ts";
import type { Nodes } from "./worker-fixture.ts";

const NODES = Array.from({ length: 10 }, (_, i) => ({ id: `n${String(i + 1).padStart(2, "0")}` }));

/** The fleet's checkouts and markers, known once its workers start. */
let fleet: Nodes | undefined;

/** Each node's health URL: 503 while its checkout is at the commit in `markers/<node>.unhealthy-at`, else 200. */
const health = Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  fetch(request) {
    const node = new URL(request.url).pathname.split("/").pop()!;
    const file = fleet?.marker(`${node}.unhealthy-at`);
    const sick = !!file && existsSync(file) && readFileSync(file, "utf8") === head(fleet!.repos[node]);
    return new Response(sick ? "sick\n" : "ok\n", { status: sick ? 503 : 200 });
  },
});
afterAll(() => health.stop(true));

const stack = useStack(NODES, "ro", {
  workerEnv: (node, nodes) => {
    fleet = nodes;
    return { ARBEIDER_HEALTH_URL: `http://127.0.0.1:${health.port}/health/${node}`, ARBEIDER_HEALTH_TIMEOUT: "2", ARBEIDER_HEALTH_INTERVAL: "1" };
  },
});

/** The update.sh runs on `node` at `commit`. */
const runsAt = (s: Stack, node: string, commit: string) => s.runs(node).filter((line) => line.includes(`commit=${commit} `));

describe("rollouts in waves", () => {
  test("waves=1,30%,100% over ten nodes: the third fails its health check, the rollout aborts in wave 2, exactly the nodes it changed go back", async () => {
    const s = stack();
    const before = Object.fromEntries(NODES.map(({ id }) => [id, head(s.repos[id])]));
    const commit = s.origin.commit("master", { VERSION: "ten\n" }, "release for ten");
    writeFileSync(s.marker("n03.unhealthy-at"), commit);
    const id = await rollOut(s, commit, "waves=1,30%,100%");
    const d = await settled(s, id, ["rolled_back", "failed", "succeeded"]);
    expect(d.state).toBe("rolled_back");
    expect(d.waves!.map((w) => [w.nodes.join(" "), w.state])).toEqual([
      ["n01", "succeeded"],
      ["n02 n03", "failed"],
      ["n04 n05 n06 n07 n08 n09 n10", "pending"],
    ]);
    expect(d.nodes.n03).toMatchObject({ state: "failed" });
    expect(d.nodes.n03.reason).toStartWith("unhealthy:");
    expect(d.reason).toContain("n03 failed");
    expect(Object.keys(d.rollback!.nodes).sort()).toEqual(["n01", "n02", "n03"]);
    for (const node of ["n01", "n02", "n03"]) {
      expect(head(s.repos[node])).toBe(before[node]);
      expect(runsAt(s, node, commit)).toHaveLength(1);
      // The rollback ran update.sh at the commit the node had before.
      expect(runsAt(s, node, before[node])).toHaveLength(1);
      expect(d.rollback!.nodes[node]).toMatchObject({ state: "succeeded", commit: before[node] });
    }
    for (const { id: node } of NODES.slice(3)) {
      expect(s.runs(node)).toEqual([]);
      expect(head(s.repos[node])).toBe(before[node]);
    }
    expect(d.finishedAt).toBeDefined();
  }, 90_000);

  test("a node that is unhealthy now is fixed by a good release: its heartbeat from before the update does not fail the rollout", async () => {
    const s = stack();
    writeFileSync(s.marker("n04.unhealthy-at"), head(s.repos.n04));
    await waitUntil(async () => (await s.api<{ nodes: { node: string; healthy?: boolean }[] }>("/api/nodes")).nodes.find((n) => n.node === "n04")?.healthy === false, "n04 unhealthy", 20_000, 100);
    const fix = s.origin.commit("master", { VERSION: "the fix\n" }, "the fix");
    const d = await settled(s, await rollOut(s, fix, ""), ["succeeded", "failed", "rolled_back"]);
    expect(d.state).toBe("succeeded");
    expect(head(s.repos.n04)).toBe(fix);
  }, 60_000);

  test("max_failures=1 tolerates one failed node and not two", async () => {
    const s = stack();
    const one = s.origin.commit("master", { VERSION: "tolerated\n" }, "one fails");
    writeFileSync(s.marker("n05.fail-at"), one);
    const tolerated = await settled(s, await rollOut(s, one, "max_failures=1"), ["succeeded", "failed", "rolled_back"]);
    expect(tolerated.state).toBe("succeeded");
    expect(tolerated.counts).toMatchObject({ succeeded: 9, failed: 1 });

    const two = s.origin.commit("master", { VERSION: "too many\n" }, "two fail");
    writeFileSync(s.marker("n05.fail-at"), two);
    writeFileSync(s.marker("n06.fail-at"), two);
    const aborted = await settled(s, await rollOut(s, two, "max_failures=1"), ["succeeded", "failed", "rolled_back"]);
    expect(aborted.state).toBe("rolled_back");
    expect(aborted.reason).toContain("2 nodes failed, 1 tolerated");
    for (const { id: node } of NODES) expect(head(s.repos[node])).toBe(one);
  }, 90_000);

  test("an approval gate holds the rollout after its wave until approved; abort ends one and rolls its wave back", async () => {
    const s = stack();
    const commit = s.origin.commit("master", { VERSION: "gated\n" }, "gated");
    const id = await rollOut(s, commit, "waves=1 approve=1");
    const paused = await settled(s, id, ["paused"]);
    expect(paused.pausedAfter).toBe(1);
    expect(paused.waves!.map((w) => w.state)).toEqual(["succeeded", "pending"]);
    // Holding: the second wave's nodes ran nothing while it is paused.
    for (const { id: node } of NODES.slice(1)) expect(runsAt(s, node, commit)).toEqual([]);
    const post = (path: string) => fetch(`${s.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" }, body: "{}" });
    expect((await post(`/api/deployments/${id}/abort`)).status).toBe(200);
    const rolledBack = await settled(s, id, ["rolled_back", "failed"]);
    expect(rolledBack.state).toBe("rolled_back");
    expect(rolledBack.reason).toContain("aborted by the operator");
    expect((await post(`/api/deployments/${id}/abort`)).status).toBe(409);
    expect((await post(`/api/deployments/${id}/approve`)).status).toBe(409);
    for (const { id: node } of NODES.slice(1)) expect(runsAt(s, node, commit)).toEqual([]);

    const next = s.origin.commit("master", { VERSION: "approved\n" }, "approved");
    const approvedId = await rollOut(s, next, "waves=1 approve=1");
    await settled(s, approvedId, ["paused"]);
    expect((await post(`/api/deployments/${approvedId}/approve`)).status).toBe(200);
    const done = await settled(s, approvedId, ["succeeded", "failed", "rolled_back"]);
    expect(done.state).toBe("succeeded");
    for (const { id: node } of NODES) expect(runsAt(s, node, next)).toHaveLength(1);
  }, 90_000);
});
