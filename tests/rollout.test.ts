/**
 * The rollout driver's rules (shared/rollout.ts) and each node's truth
 * (shared/fleet.ts) as pure tables: records folded from events and decisions,
 * then what the driver does next, what the rollout is served as, where each
 * node should be and what it needs to catch up.
 */
import { describe, expect, test } from "bun:test";
import { applyDecision, applyEvent, createRecord, type DeploymentRecord } from "../shared/deployments.ts";
import { sweep } from "../shared/sweep.ts";
import { catchUp, desiredOf, driftOf, onLatest } from "../shared/fleet.ts";
import type { Command, Event } from "../shared/protocol.ts";
import { commandId, commandKind, type Decision } from "../shared/records.ts";
import { nextStep, presenceStep, resend, superseded } from "../shared/rollout.ts";
import { mergeSnapshot, present, snapshot, type Deployment } from "../shared/served.ts";
import { mergeStrategies, parseStrategy, planWaves } from "../shared/strategy.ts";

const T0 = Date.parse("2026-01-01T10:00:00.000Z");
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const OLD = "1".repeat(40);
const NEW = "2".repeat(40);

function rollout(id: string, nodes: string[], strategy: string, issuedAt = 0, target = "all"): DeploymentRecord {
  const spec: Command = {
    v: 1, id, deployment: id, fleet: "f", target, command: "update", args: { branch: "master", commit: NEW },
    issuedAt: at(issuedAt), expiresAt: at(issuedAt + 3600), source: { provider: "api" },
  };
  const s = mergeStrategies(parseStrategy(strategy));
  const record = createRecord(id);
  applyEvent(record, { v: 1, deployment: id, command: id, state: "created", at: at(issuedAt), spec, expected: [...nodes].sort(), strategy: s, waves: planWaves(s, nodes) });
  return record;
}

const decision = (record: DeploymentRecord, d: Record<string, unknown>, s: number) =>
  applyDecision(record, { v: 1, deployment: record.id, at: at(s), ...d } as Decision);

function report(record: DeploymentRecord, node: string, state: Event["state"], s: number, extra: Partial<Event> = {}) {
  applyEvent(record, { v: 1, deployment: record.id, command: commandId("update", record.id, node), node, state, at: at(s), ...extra });
}
const moved = { commitBefore: OLD, commitAfter: NEW };

const stepOf = (record: DeploymentRecord, s: number) => {
  const step = nextStep(record, T0 + s * 1000);
  return step.do === "decide" ? { decision: step.decision.decision, nodes: step.send.map((x) => `${x.kind}:${x.node}${x.commit ? `@${x.commit.slice(0, 3)}` : ""}`) } : step;
};

describe("the driver's next step", () => {
  test("waves=1,30%,100% over ten nodes: one, then two more, then the other seven", () => {
    const nodes = Array.from({ length: 10 }, (_, i) => `n${i}`);
    const r = rollout("d", nodes, "waves=1,30%,100%");
    expect(stepOf(r, 1)).toEqual({ decision: "wave", nodes: ["update:n0"] });
    decision(r, { decision: "wave", wave: 1 }, 1);
    expect(stepOf(r, 2)).toEqual({ do: "none" });
    report(r, "n0", "succeeded", 3, moved);
    expect(stepOf(r, 3)).toEqual({ decision: "wave", nodes: ["update:n1", "update:n2"] });
    decision(r, { decision: "wave", wave: 2 }, 3);
    report(r, "n1", "succeeded", 4, moved);
    report(r, "n2", "failed", 5, { ...moved, reason: "unhealthy: health check failed" });
    // The third node failed with max_failures=0: its wave failed (already before the abort is recorded)...
    expect(present(r, T0 + 5000)!.waves!.map((w) => w.state)).toEqual(["succeeded", "failed", "pending"]);
    // ...the rollout aborts, then rolls back exactly the nodes it changed.
    expect(stepOf(r, 5)).toMatchObject({ decision: "abort" });
    decision(r, { decision: "abort", reason: "1 node failed" }, 5);
    expect(stepOf(r, 6)).toEqual({ decision: "rollback", nodes: ["rollback:n0@111", "rollback:n1@111", "rollback:n2@111"] });
    decision(r, { decision: "rollback", nodes: { n0: OLD, n1: OLD, n2: OLD } }, 6);
    expect(stepOf(r, 7)).toEqual({ do: "none" });
    for (const node of ["n0", "n1", "n2"]) {
      applyEvent(r, { v: 1, deployment: "d", command: commandId("rollback", "d", node), node, state: "succeeded", at: at(8), commitBefore: NEW, commitAfter: OLD });
    }
    const served = present(r, T0 + 9000)!;
    expect(served.state).toBe("rolled_back");
    expect(served.waves!.map((w) => w.state)).toEqual(["succeeded", "failed", "pending"]);
    expect(Object.keys(served.rollback!.nodes)).toEqual(["n0", "n1", "n2"]);
    expect(served.finishedAt).toBe(at(8));
  });

  test("max_failures=1 tolerates one failure and not two", () => {
    const r = rollout("d", ["a", "b", "c"], "max_failures=1");
    decision(r, { decision: "wave", wave: 1 }, 1);
    report(r, "a", "failed", 2);
    expect(stepOf(r, 2)).toEqual({ do: "none" });
    report(r, "b", "succeeded", 3, moved);
    report(r, "c", "succeeded", 3, moved);
    expect(present(r, T0 + 4000)!.state).toBe("succeeded");
    const two = rollout("e", ["a", "b", "c"], "max_failures=1");
    decision(two, { decision: "wave", wave: 1 }, 1);
    report(two, "a", "failed", 2);
    report(two, "b", "rejected", 2);
    expect(stepOf(two, 3)).toMatchObject({ decision: "abort" });
  });

  test("a failure on the last node of the last wave is not a success", () => {
    const r = rollout("d", ["a", "b"], "waves=1");
    decision(r, { decision: "wave", wave: 1 }, 1);
    report(r, "a", "succeeded", 2, moved);
    decision(r, { decision: "wave", wave: 2 }, 2);
    report(r, "b", "failed", 3);
    expect(present(r, T0 + 3000)!.state).toBe("running");
    expect(stepOf(r, 3)).toMatchObject({ decision: "abort" });
  });

  test("bake: the next wave waits until the finished one stayed healthy that long", () => {
    const r = rollout("d", ["a", "b"], "waves=1 bake=30");
    decision(r, { decision: "wave", wave: 1 }, 0);
    report(r, "a", "succeeded", 10, moved);
    expect(stepOf(r, 11)).toEqual({ do: "wait", until: T0 + 40_000 });
    expect(present(r, T0 + 11_000)!.waves![0].state).toBe("baking");
    expect(stepOf(r, 40)).toMatchObject({ decision: "wave" });
  });

  test("approve: pause after the wave until approved", () => {
    const r = rollout("d", ["a", "b"], "waves=1 approve=1");
    decision(r, { decision: "wave", wave: 1 }, 0);
    report(r, "a", "succeeded", 1, moved);
    expect(stepOf(r, 2)).toEqual({ decision: "pause", nodes: [] });
    decision(r, { decision: "pause", wave: 1 }, 2);
    expect(present(r, T0 + 3000)!.state).toBe("paused");
    expect(stepOf(r, 3)).toEqual({ do: "none" });
    decision(r, { decision: "approve", wave: 1 }, 4);
    expect(present(r, T0 + 4000)!.state).toBe("running");
    expect(stepOf(r, 4)).toEqual({ decision: "wave", nodes: ["update:b"] });
  });

  test("on_failure=halt stops where it is and rolls nothing back", () => {
    const r = rollout("d", ["a", "b"], "on_failure=halt");
    decision(r, { decision: "wave", wave: 1 }, 0);
    report(r, "a", "failed", 1, moved);
    decision(r, { decision: "abort", reason: "1 failed" }, 1);
    report(r, "b", "succeeded", 2, moved);
    expect(stepOf(r, 3)).toEqual({ do: "none" });
    expect(present(r, T0 + 3000)!.state).toBe("failed");
  });

  test("an abort while a node still runs rolls it back once it has finished", () => {
    const r = rollout("d", ["a", "b"], "");
    decision(r, { decision: "wave", wave: 1 }, 0);
    report(r, "a", "succeeded", 1, moved);
    report(r, "b", "started", 1);
    decision(r, { decision: "abort", reason: "by the operator" }, 2);
    expect(stepOf(r, 2)).toEqual({ decision: "rollback", nodes: ["rollback:a@111"] });
    decision(r, { decision: "rollback", nodes: { a: OLD } }, 2);
    expect(present(r, T0 + 3000)!.state).toBe("running");
    report(r, "b", "succeeded", 4, moved);
    expect(stepOf(r, 4)).toEqual({ decision: "rollback", nodes: ["rollback:b@111"] });
  });

  test("a node that stops heartbeating after its wave started counts as failed", () => {
    const r = rollout("d", ["a", "b"], "");
    decision(r, { decision: "wave", wave: 1 }, 0);
    const gone = { online: false, stopping: false, lastSeen: T0, periodMs: 1000 };
    sweep(r, T0 + 5000, (node) => (node === "b" ? gone : { ...gone, online: true }));
    expect(present(r, T0 + 5000)!.nodes.b.state).toBe("missing");
    const step = presenceStep(r, "b", gone, T0 + 5000);
    expect(step).toMatchObject({ do: "decide", decision: { decision: "node", node: "b", state: "missing" } });
    const stopping = rollout("e", ["a"], "");
    decision(stopping, { decision: "wave", wave: 1 }, 0);
    sweep(stopping, T0 + 100, () => ({ online: false, stopping: true, lastSeen: T0, periodMs: 15_000 }));
    expect(present(stopping, T0 + 100)!.nodes.a).toMatchObject({ state: "missing", reason: "its worker stopped before running the command" });
  });

  test("a node that turns unhealthy after it succeeded counts as failed; a heartbeat from before its update does not count", () => {
    const r = rollout("d", ["a", "b"], "waves=1 bake=60");
    decision(r, { decision: "wave", wave: 1 }, 0);
    report(r, "a", "succeeded", 1, moved);
    const sick = { online: true, stopping: false, lastSeen: T0, periodMs: 1000, healthy: false };
    // The heartbeat from before the update still says unhealthy: it does not speak of the new commit.
    expect(presenceStep(r, "a", { ...sick, heartbeatAt: T0 + 500 }, T0 + 1500)).toEqual({ do: "none" });
    const step = presenceStep(r, "a", { ...sick, heartbeatAt: T0 + 1500 }, T0 + 2000);
    expect(step).toMatchObject({ do: "decide", decision: { decision: "node", state: "unhealthy" } });
  });

  test("a newer rollout supersedes an older unfinished one over the same nodes, not one that is done", () => {
    const older = rollout("old", ["a", "b"], "waves=1", 0);
    decision(older, { decision: "wave", wave: 1 }, 0);
    const done = rollout("done", ["a"], "", 0);
    decision(done, { decision: "wave", wave: 1 }, 0);
    report(done, "a", "succeeded", 1, moved);
    const elsewhere = rollout("elsewhere", ["z"], "waves=1", 0);
    const newer = rollout("new", ["a", "b"], "", 10);
    expect(superseded(newer, [older, done, elsewhere, newer], T0 + 10_000).map((r) => r.id)).toEqual(["old"]);
    decision(older, { decision: "supersede", by: "new" }, 10);
    expect(present(older, T0 + 11_000)!.state).toBe("superseded");
    expect(stepOf(older, 12)).toEqual({ do: "none" });
  });

  test("a driver that takes over sends again what nobody answered, with the same ids", () => {
    const r = rollout("d", ["a", "b", "c"], "");
    decision(r, { decision: "wave", wave: 1 }, 0);
    report(r, "a", "succeeded", 1, moved);
    report(r, "b", "received", 1);
    expect(resend(r, T0 + 2000).map((s) => s.node)).toEqual(["c"]);
    // A catch-up sent but not answered goes again too, with its attempt number.
    decision(r, { decision: "catch-up", node: "late", attempt: 2, seen: OLD }, 3);
    expect(resend(r, T0 + 4000)).toContainEqual({ node: "late", kind: "catch-up", attempt: 2 });
    report(r, "late", "received", 5);
    expect(resend(r, T0 + 6000).map((s) => s.node)).toEqual(["c"]);
  });
});

describe("snapshots", () => {
  test("a full snapshot and then each change's snapshot merged give what the API serves (outputs aside)", () => {
    const r = rollout("d", ["a", "b", "c"], "waves=1 max_failures=1");
    let held = mergeSnapshot(undefined, snapshot(r, T0, [], true)!);
    const step = (change: () => void, nodes: string[], s: number) => {
      change();
      held = mergeSnapshot(held, snapshot(r, T0 + s * 1000, nodes)!);
      const { nodes: servedNodes, ...served } = present(r, T0 + s * 1000)!;
      const withoutOutput = Object.fromEntries(Object.entries(servedNodes).map(([n, { output: _o, ...rest }]) => [n, rest]));
      expect(held).toEqual({ ...served, nodes: withoutOutput } as Deployment);
    };
    step(() => decision(r, { decision: "wave", wave: 1 }, 1), [], 1);
    step(() => report(r, "a", "started", 2), ["a"], 2);
    step(() => report(r, "a", "succeeded", 3, { ...moved, output: "x".repeat(3000) }), ["a"], 3);
    step(() => decision(r, { decision: "wave", wave: 2 }, 3), [], 3);
    step(() => report(r, "b", "failed", 4, { reason: "boom" }), ["b"], 4);
    step(() => report(r, "c", "succeeded", 5, moved), ["c"], 5);
    expect(held!.state).toBe("succeeded");
    expect(JSON.stringify(snapshot(r, T0 + 6000, ["a"])).length).toBeLessThan(2048);
  });
});

describe("command ids", () => {
  test("the same for the same deployment, node and purpose; told apart by purpose", () => {
    expect(commandId("update", "d", "a")).toBe(commandId("update", "d", "a"));
    expect(commandId("update", "d", "a")).not.toBe(commandId("update", "d", "b"));
    expect(commandKind(commandId("rollback", "d", "a"), "d")).toBe("rollback");
    expect(commandKind(commandId("catch-up", "d", "a", 2), "d")).toBe("catch-up");
    expect(commandKind("d", "d")).toBe("direct");
    expect(commandId("update", "x".repeat(128), "y".repeat(63))).toMatch(/^[A-Za-z0-9_-]{1,128}$/);
  });
});

describe("each node's truth", () => {
  const self = (node: string, commit: string | null, extra = {}) => ({ node, groups: [] as string[], commit, busy: false, ...extra });

  test("desired is the newest rollout that reached the node and was not rolled back", () => {
    const first = rollout("first", ["a", "b"], "", 0);
    decision(first, { decision: "wave", wave: 1 }, 0);
    const second = rollout("second", ["a", "b"], "waves=1", 100);
    decision(second, { decision: "wave", wave: 1 }, 100);
    // `second` reached a (its first wave) but not yet b.
    expect(desiredOf(self("a", null), [second, first])?.deployment).toBe("second");
    expect(desiredOf(self("b", null), [second, first])?.deployment).toBe("first");
    decision(second, { decision: "abort", reason: "x" }, 101);
    report(second, "a", "failed", 101, moved);
    decision(second, { decision: "rollback", nodes: { a: OLD } }, 102);
    applyEvent(second, { v: 1, deployment: "second", command: commandId("rollback", "second", "a"), node: "a", state: "succeeded", at: at(103), commitAfter: OLD });
    expect(present(second, T0 + 104_000)!.state).toBe("rolled_back");
    expect(desiredOf(self("a", null), [second, first])?.deployment).toBe("first");
  });

  test("a node that was away converges to a rollout once it is done, not while it runs", () => {
    const r = rollout("d", ["a"], "");
    decision(r, { decision: "wave", wave: 1 }, 0);
    expect(desiredOf(self("late", OLD), [r])).toBeUndefined();
    report(r, "a", "succeeded", 1, moved);
    expect(desiredOf(self("late", OLD), [r])?.commit).toBe(NEW);
    expect(catchUp(self("late", OLD), r, "behind", "missed", T0 + 2000)).toBe(1);
    expect(catchUp(self("late", OLD), r, "behind", "off", T0 + 2000)).toBeUndefined();
    expect(catchUp(self("late", OLD, { dirty: true }), r, "dirty", "missed", T0 + 2000)).toBeUndefined();
    expect(catchUp(self("late", NEW), r, null, "missed", T0 + 2000)).toBeUndefined();
    decision(r, { decision: "catch-up", node: "late", attempt: 1, seen: OLD }, 2);
    // Sent once: not again while that command may still be in its queue.
    expect(catchUp(self("late", OLD), r, "behind", "missed", T0 + 3000)).toBeUndefined();
  });

  test("a rollout with no node online is where every node of its target goes", () => {
    const r = rollout("ci", [], "", 0);
    expect(desiredOf(self("n", OLD), [r])?.deployment).toBe("ci");
    expect(catchUp(self("n", OLD), r, "behind", "missed", T0 + 1000)).toBe(1);
  });

  test("drift: changed files, a HEAD moved by other hands, or behind; on the latest only when its update succeeded there", () => {
    const desired = { commit: NEW, deployment: "d" };
    const last = { deployment: "d", state: "succeeded", at: at(1), commitAfter: NEW };
    expect(driftOf(self("a", NEW), desired, last)).toBeNull();
    expect(driftOf(self("a", NEW, { dirty: true }), desired, last)).toBe("dirty");
    expect(driftOf(self("a", "3".repeat(40)), desired, last)).toBe("moved");
    expect(driftOf(self("a", OLD), desired, { ...last, state: "failed", commitAfter: OLD })).toBe("behind");
    expect(onLatest(self("a", NEW), desired, last, NEW)).toBe(true);
    // HEAD moved before the script failed: at the commit, but not on the latest.
    expect(onLatest(self("a", NEW), desired, { ...last, state: "failed" }, OLD)).toBe(false);
    expect(onLatest(self("a", NEW, { healthy: false }), desired, last, NEW)).toBe(false);
  });

  test("with converge=all a HEAD moved by other hands is put back once per commit it was moved to", () => {
    const r = rollout("d", ["a"], "");
    decision(r, { decision: "wave", wave: 1 }, 0);
    report(r, "a", "succeeded", 1, moved);
    const elsewhere = "3".repeat(40);
    expect(catchUp(self("a", elsewhere), r, "moved", "missed", T0 + 2000)).toBeUndefined();
    expect(catchUp(self("a", elsewhere), r, "moved", "all", T0 + 2000)).toBe(1);
    decision(r, { decision: "catch-up", node: "a", attempt: 1, seen: elsewhere }, 2);
    expect(catchUp(self("a", elsewhere), r, "moved", "all", T0 + 3000)).toBeUndefined();
  });
});
