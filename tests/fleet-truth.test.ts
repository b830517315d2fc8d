/**
 * The fleet's truth through the API, with a real webhook and workers: a node
 * whose update failed after its checkout moved is never "on the latest", and
 * the node on the newest commit is; an update without a commit is pinned to
 * the branch's tip when it is accepted, so a node that comes later deploys
 * the same commit; a target without a node is refused (API) or queued until
 * its nodes come (CI); commands nodes refused are listed and counted; the
 * deployment counters count each deployment once and are rebuilt the same
 * after a restart.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { command, head, sign, waitUntil } from "./helpers.ts";
import { HEARTBEAT_SECONDS, rollOut, settled, useStack, type Stack } from "./stack.ts";

const NODES = [{ id: "n1" }, { id: "n2" }, { id: "n3" }];
const stack = useStack(NODES, "ft", {
  webhookEnv: (nodes) => ({ ARBEIDER_ORIGIN_URL: nodes.origin.origin, CODESHIP_PROJECT_ID: "412345", ARBEIDER_BRANCHES: "master,lonely=group:nobody" }),
});

interface Node {
  node: string;
  online: boolean;
  commit: string;
  desired: string | null;
  lastGood: string | null;
  lastOutcome: { deployment: string; state: string } | null;
  drift: string | null;
  latest: boolean;
}
const nodes = async (s: Stack) => (await s.api<{ nodes: Node[] }>("/api/nodes")).nodes;
const post = (s: Stack, path: string, body: unknown) =>
  fetch(`${s.url}${path}`, { method: "POST", headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" }, body: JSON.stringify(body) });

describe("each node's truth", () => {
  test("a node whose update.sh failed after its checkout moved is not on the latest; the nodes that succeeded are", async () => {
    const s = stack();
    const good = s.origin.commit("master", { VERSION: "good\n" }, "good");
    await settled(s, await rollOut(s, good, ""), ["succeeded"]);
    const mixed = s.origin.commit("master", { VERSION: "mixed\n" }, "mixed");
    writeFileSync(s.marker("n2.fail-at"), mixed);
    const id = await rollOut(s, mixed, "max_failures=1");
    expect((await settled(s, id, ["succeeded", "failed", "rolled_back"])).state).toBe("succeeded");
    // HEAD moved before update.sh failed there: n2 runs the new commit but is not on the latest.
    expect(head(s.repos.n2)).toBe(mixed);
    const byNode = Object.fromEntries((await nodes(s)).map((n) => [n.node, n]));
    expect(byNode.n2).toMatchObject({ commit: mixed, desired: mixed, lastGood: good, lastOutcome: { deployment: id, state: "failed" }, latest: false });
    for (const node of ["n1", "n3"]) expect(byNode[node]).toMatchObject({ commit: mixed, desired: mixed, lastGood: mixed, drift: null, latest: true });
  }, 60_000);

  test("an update without a commit is pinned to the branch's tip when accepted: a node that comes later deploys that commit", async () => {
    const s = stack();
    await s.worker("n3").stop();
    await waitUntil(async () => (await nodes(s)).some((n) => n.node === "n3" && !n.online), "n3 offline", 20_000, 200);
    const pinned = s.origin.commit("master", { VERSION: "pinned\n" }, "pinned");
    const res = await post(s, "/api/deployments", { command: "update", args: { branch: "master" } });
    expect(res.status).toBe(202);
    const { deployment } = (await res.json()) as { deployment: string };
    const served = await settled(s, deployment, ["succeeded"]);
    expect((served.args as { commit: string }).commit).toBe(pinned);
    // The branch moves on; the deployment does not.
    const later = s.origin.commit("master", { VERSION: "later\n" }, "later");
    await s.start("n3", { ARBEIDER_HEARTBEAT_SECONDS: HEARTBEAT_SECONDS });
    await waitUntil(async () => (await s.api<{ nodes: Record<string, { state: string }> }>(`/api/deployments/${deployment}`)).nodes.n3?.state === "succeeded", "n3 to catch up", 20_000, 100);
    expect(head(s.repos.n3)).toBe(pinned);
    expect(head(s.repos.n3)).not.toBe(later);
    const missing = await post(s, "/api/deployments", { command: "update", args: { branch: "no-such-branch" } });
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { error: string }).error).toStartWith("args.branch:");
  }, 60_000);

  test("a target that matches no node: the API refuses it naming the target; a CI build is queued with its reason", async () => {
    const s = stack();
    const refused = await post(s, "/api/deployments", { command: "ping", target: "group:nobody" });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: string }).error).toContain("group:nobody");
    const allowed = await post(s, "/api/deployments", { command: "ping", target: "group:nobody", allowEmpty: true });
    expect(allowed.status).toBe(202);

    const build = JSON.parse(readFileSync(join(import.meta.dir, "fixtures", "webhooks", "codeship-success-master.json"), "utf8"));
    build.build.branch = "lonely";
    build.build.build_id = 99_001;
    build.build.commit_id = head(s.repos.n1);
    const ci = await fetch(`${s.url}/hooks/codeship?api_key=${s.apiKey}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(build) });
    expect(ci.status).toBe(202);
    const queued = await s.api<{ state: string; reason: string; expected: string[] }>("/api/deployments/codeship-99001");
    expect(queued).toMatchObject({ state: "queued", expected: [] });
    expect(queued.reason).toContain("no online node matches group:nobody");
  }, 60_000);

  test("a command a node refused is listed and counted, also when it names no deployment anyone created", async () => {
    const s = stack();
    const forged = command(s.fleet.fleet, { command: "ping", args: {}, deployment: "forged-1", id: "forged-1" });
    const { bytes } = sign(forged, s.keys.key);
    const tampered = new TextEncoder().encode(new TextDecoder().decode(bytes).replace('"ping"', '"ping" '));
    await s.fleet.publishRaw(tampered, "node.n1", sign(forged, s.keys.key).signature, "forged-1");
    await waitUntil(async () => (await s.api<{ rejections: { node: string; reason: string }[] }>("/api/rejections")).rejections.some((r) => r.node === "n1"), "the rejection listed");
    const { rejections } = await s.api<{ rejections: { node: string; deployment: string; reason: string }[] }>("/api/rejections");
    expect(rejections[0]).toMatchObject({ node: "n1", deployment: "forged-1", reason: "bad signature" });
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toContain('arbeider_commands_rejected_total{reason="bad signature"} 1');
  }, 60_000);
});

describe("workers that stop", () => {
  test("a worker stopped with SIGTERM is offline at once; a rollout that still has to reach it counts it missing at once", async () => {
    const s = stack();
    const commit = s.origin.commit("master", { VERSION: "while stopping\n" }, "while stopping");
    rmSync(s.marker("open"), { force: true });
    writeFileSync(s.marker("gate-at"), commit);
    const id = await rollOut(s, commit, "waves=1");
    await s.fleet.waitState(id, "n1", ["started"]);
    const stopped = Date.now();
    await s.worker("n3").stop();
    await waitUntil(async () => (await nodes(s)).some((n) => n.node === "n3" && !n.online), "n3 offline", 5000, 50);
    expect(Date.now() - stopped).toBeLessThan(12_000);
    writeFileSync(s.marker("open"), "");
    const d = await settled(s, id, ["rolled_back", "failed", "succeeded"]);
    expect(d.nodes.n3).toMatchObject({ state: "missing", reason: "its worker stopped before running the command" });
    expect(d.state).toBe("rolled_back");
    expect(Date.parse(d.finishedAt!) - Date.parse(d.createdAt)).toBeLessThan(60_000);
    await s.start("n3", { ARBEIDER_HEARTBEAT_SECONDS: HEARTBEAT_SECONDS });
    await waitUntil(async () => (await nodes(s)).some((n) => n.node === "n3" && n.online), "n3 back online", 10_000, 50);
  }, 60_000);
});

describe("metrics", () => {
  test("each finished deployment is counted once, the histogram only grows, and a restart rebuilds the same totals", async () => {
    const s = stack();
    const scrape = async () => (await (await fetch(`${s.url}/metrics`)).text()).split("\n");
    const value = (lines: string[], prefix: string) => Number(lines.find((l) => l.startsWith(prefix))?.split(" ").at(-1) ?? 0);
    const before = await scrape();
    const succeeded = 'arbeider_deployments_total{command="ping",state="succeeded"}';
    const histogram = "arbeider_deployment_duration_seconds_count";
    const res = await post(s, "/api/deployments", { command: "ping" });
    const { deployment } = (await res.json()) as { deployment: string };
    await settled(s, deployment, ["succeeded"]);
    const after = await scrape();
    expect(value(after, succeeded)).toBe(value(before, succeeded) + 1);
    expect(value(after, histogram)).toBe(value(before, histogram) + 1);
    expect(value(await scrape(), succeeded)).toBe(value(after, succeeded));
    for (const node of ["n1", "n2", "n3"]) expect(after).toContain(`arbeider_node_up{node="${node}"} 1`);
    await s.restartWebhook("SIGTERM");
    const rebuilt = await scrape();
    const deployments = (lines: string[]) => lines.filter((l) => l.startsWith("arbeider_deployments_total{")).sort();
    expect(deployments(rebuilt)).toEqual(deployments(after));
    expect(value(rebuilt, histogram)).toBe(value(after, histogram));
  }, 60_000);
});
