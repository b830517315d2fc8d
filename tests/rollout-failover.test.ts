/**
 * Rollouts that outlive their driver, and nodes that were away: a webhook
 * SIGKILLed in the middle of a wave and started again finishes the rollout;
 * with two replicas, the one that drives is killed and the other finishes it
 * (the broker elects it); a newer rollout supersedes an older one without
 * interrupting its running update; a node that was offline past the
 * command's expiry converges to the newest commit when it returns, running
 * update.sh once. update.sh runs are counted from the markers it writes.
 */
import { describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { head, waitUntil } from "./helpers.ts";
import { HEARTBEAT_SECONDS, rollOut, settled, useStack, type Stack } from "./stack.ts";

const NODES = [{ id: "a", groups: ["canary"] }, { id: "b" }, { id: "c" }];
// Short commands, so "offline past expiry" takes seconds.
const stack = useStack(NODES, "rf", { webhookEnv: () => ({ ARBEIDER_COMMAND_TTL: "4" }) });

const runsAt = (s: Stack, node: string, commit: string) => s.runs(node).filter((line) => line.includes(`commit=${commit} `));

/** A new commit of master. */
const plainCommit = (s: Stack, label: string) => s.origin.commit("master", { VERSION: `${label}\n` }, label);

/** A new commit whose update.sh, on every node, waits for the marker `open` before it ends. */
function gatedCommit(s: Stack, label: string): string {
  const commit = plainCommit(s, label);
  rmSync(s.marker("open"), { force: true });
  writeFileSync(s.marker("gate-at"), commit);
  return commit;
}

const started = (s: Stack, id: string, node: string) => s.fleet.waitState(id, node, ["started"], 30_000);

describe("rollouts that outlive their driver", () => {
  test("a webhook SIGKILLed in the middle of a wave is restarted and finishes the rollout, every node run once", async () => {
    const s = stack();
    const commit = gatedCommit(s, "restarted");
    const id = await rollOut(s, commit, "waves=1");
    await started(s, id, "a");
    await s.restartWebhook("SIGKILL");
    writeFileSync(s.marker("open"), "");
    const d = await settled(s, id, ["succeeded", "failed", "rolled_back"]);
    expect(d.state).toBe("succeeded");
    for (const { id: node } of NODES) {
      expect(runsAt(s, node, commit)).toHaveLength(1);
      expect(head(s.repos[node])).toBe(commit);
    }
  }, 90_000);

  test("with two replicas, the driver is killed mid-wave and the other one finishes the rollout", async () => {
    const s = stack();
    const replica = await s.startReplica();
    try {
      const commit = gatedCommit(s, "failover");
      // The webhook that started first drives; ask the replica, so the request lands where it does not.
      const res = await fetch(`${replica.url}/api/deployments`, {
        method: "POST",
        headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ command: "update", args: { branch: "master", commit }, strategy: "waves=1" }),
      });
      const { deployment: id } = (await res.json()) as { deployment: string };
      await started(s, id, "a");
      s.webhook.child.kill("SIGKILL");
      writeFileSync(s.marker("open"), "");
      await replica.proc.waitForLog('"msg":"driving rollouts"', 20_000);
      const d = await waitUntil(async () => {
        const r = await fetch(`${replica.url}/api/deployments/${id}`, { headers: { authorization: `Bearer ${s.apiKey}` } });
        const body = (await r.json()) as { state: string };
        return body.state === "succeeded" || body.state === "failed" ? body : undefined;
      }, "the replica to finish the rollout", 40_000, 100);
      expect(d.state).toBe("succeeded");
      for (const { id: node } of NODES) expect(runsAt(s, node, commit)).toHaveLength(1);
    } finally {
      await replica.proc.stop(5000);
      await s.restartWebhook("SIGTERM");
    }
  }, 90_000);

  test("a newer rollout supersedes an older one: no further wave of the older, its running update not interrupted", async () => {
    const s = stack();
    const older = gatedCommit(s, "older");
    const olderId = await rollOut(s, older, "waves=1");
    await started(s, olderId, "a");
    const newer = plainCommit(s, "newer");
    const newerId = await rollOut(s, newer, "");
    await waitUntil(async () => (await s.api<{ state: string }>(`/api/deployments/${olderId}`)).state === "superseded", "the older rollout superseded");
    writeFileSync(s.marker("open"), "");
    const done = await settled(s, newerId, ["succeeded", "failed", "rolled_back"]);
    expect(done.state).toBe("succeeded");
    // The older one's canary finished its update; its second wave never went out.
    expect(runsAt(s, "a", older)).toHaveLength(1);
    for (const node of ["b", "c"]) expect(runsAt(s, node, older)).toEqual([]);
    const olderServed = await s.api<{ waves: { state: string }[]; nodes: Record<string, { state: string }> }>(`/api/deployments/${olderId}`);
    expect(olderServed.nodes.a.state).toBe("succeeded");
    expect(olderServed.waves.map((w) => w.state)).toEqual(["succeeded", "pending"]);
    for (const { id: node } of NODES) expect(head(s.repos[node])).toBe(newer);
  }, 90_000);
});

describe("nodes that were away", () => {
  test("a node offline past the command's expiry converges to the newest commit when it returns, running update.sh once", async () => {
    const s = stack();
    await s.worker("c").stop();
    await waitUntil(async () => {
      const { nodes } = await s.api<{ nodes: { node: string; online: boolean }[] }>("/api/nodes");
      return nodes.find((n) => n.node === "c")?.online === false;
    }, "c offline at the webhook", 20_000, 200);
    const first = plainCommit(s, "while away 1");
    const second = plainCommit(s, "while away 2");
    await settled(s, await rollOut(s, first, ""), ["succeeded"]);
    const id = await rollOut(s, second, "");
    const done = await settled(s, id, ["succeeded"]);
    // Past the commands' 4 s lifetime: nothing queued could bring c there any more.
    await waitUntil(() => Date.now() > Date.parse(done.finishedAt!) + 4000, "the commands of both rollouts to expire", 10_000, 100);
    await s.start("c", { ARBEIDER_HEARTBEAT_SECONDS: HEARTBEAT_SECONDS });
    await waitUntil(async () => (await s.api<{ nodes: Record<string, { state: string }> }>(`/api/deployments/${id}`)).nodes.c?.state === "succeeded", "c to catch up", 20_000, 100);
    expect(head(s.repos.c)).toBe(second);
    expect(runsAt(s, "c", second)).toHaveLength(1);
    expect(runsAt(s, "c", first)).toEqual([]);
    const { nodes } = await s.api<{ nodes: { node: string; desired: string; commit: string; drift: string | null; latest: boolean }[] }>("/api/nodes");
    expect(nodes.find((n) => n.node === "c")).toMatchObject({ desired: second, commit: second, drift: null, latest: true });
  }, 90_000);
});
