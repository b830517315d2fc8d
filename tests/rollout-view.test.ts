/**
 * What the screens are told about an aborted rollout, from the view itself
 * (records folded as the history reader folds them): the deployment is not
 * finished between the abort and the driver's rollback decision (a client
 * that ends on `finishedAt` would otherwise stop at a false "failed"), and
 * a node its rollout rolled back shows the rollback as its last outcome.
 */
import { expect, test } from "bun:test";
import { createView } from "../webhook/view.ts";
import { feeder } from "./dashboard-fixture.ts";

const A = "a".repeat(40);
const B = "b".repeat(40);

function abortedRollout() {
  const view = createView();
  view.goLive();
  const feed = feeder(view);
  feed.heartbeat("n1", { commit: A });
  feed.heartbeat("n2", { commit: A });
  feed.created("before", { expected: ["n1", "n2"], strategy: "", args: { branch: "master", commit: A }, ageMs: 60_000 });
  feed.decide("before", { decision: "wave", wave: 1 });
  for (const node of ["n1", "n2"]) feed.report("before", node, "succeeded", { commitBefore: A, commitAfter: A });
  feed.created("bad", { expected: ["n1", "n2"], strategy: "waves=1,100%", waves: [["n1"], ["n2"]], args: { branch: "master", commit: B } });
  feed.decide("bad", { decision: "wave", wave: 1 });
  feed.report("bad", "n1", "failed", { commitBefore: A, commitAfter: B, reason: "update script exited with status 3" });
  feed.decide("bad", { decision: "abort", reason: "1 node failed, 0 tolerated (max_failures): n1 failed" });
  return { view, feed };
}

test("an aborted rollout is running, not finished, until the nodes it changed are rolled back", () => {
  const { view, feed } = abortedRollout();
  expect(view.get("bad")!.state).toBe("running");
  expect(view.get("bad")!.finishedAt).toBeUndefined();
  feed.decide("bad", { decision: "rollback", nodes: { n1: A } });
  expect(view.get("bad")).toMatchObject({ state: "running", rollback: { state: "running" } });
  expect(view.get("bad")!.finishedAt).toBeUndefined();
  feed.report("bad", "n1", "succeeded", { kind: "rollback", commitBefore: B, commitAfter: A });
  const done = view.get("bad")!;
  expect(done.state).toBe("rolled_back");
  expect(done.finishedAt).toBeDefined();
});

test("a node its rollout rolled back shows the rollback as its last outcome: on its desired commit, no drift", () => {
  const { view, feed } = abortedRollout();
  feed.decide("bad", { decision: "rollback", nodes: { n1: A } });
  feed.report("bad", "n1", "succeeded", { kind: "rollback", commitBefore: B, commitAfter: A });
  feed.heartbeat("n1", { commit: A });
  expect(view.node("n1")).toMatchObject({ desired: A, commit: A, lastGood: A, lastOutcome: { deployment: "bad", state: "succeeded" }, drift: null, latest: true });
  expect(view.stats.outcomes().get("succeeded")).toBe(3);
});
