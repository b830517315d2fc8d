/**
 * The dashboard in Chromium against a real `bun webhook.ts` and three real
 * `bun worker.ts` nodes (ui-a in group canary): live updates come through
 * the SSE `state` snapshots (proved twice: the page fetches nothing while
 * chips change, and with the snapshots altered on the way the page shows
 * the altered states although raw events, heartbeats and node polls are
 * untouched); a rollout's waves, approve and abort against a real paused
 * rollout; a node whose update failed after its checkout moved is not "on
 * the latest"; running durations tick and a finished one shows its true
 * duration; rejected commands are shown and counted.
 */
import { expect } from "bun:test";
import { randomUUID } from "node:crypto";
import { formatDuration } from "../shared/format.ts";
import type { Deployment } from "../shared/served.ts";
import { generateKeyPair, parseSigningKey } from "../shared/signing.ts";
import { drawn, haveChromium, openDashboard, screenshot, testIf, title, useBrowser, type Opened } from "./browser.ts";
import { command, git, head, waitUntil } from "./helpers.ts";
import { useStack, type Stack } from "./stack.ts";

const NODES = ["ui-a", "ui-b", "ui-c"];
const stack = haveChromium ? useStack(NODES.map((id) => ({ id, groups: id === "ui-a" ? ["canary", "web"] : ["web"] })), "ui") : () => undefined as never;
const browser = useBrowser();

async function deploy(s: Stack, commit: string, extra: Record<string, unknown> = {}): Promise<string> {
  const body = { command: "update", args: { branch: "master", commit }, ...extra };
  const answer = await s.api<{ deployment?: string; error?: string }>("/api/deployments", { method: "POST", body: JSON.stringify(body) });
  if (!answer.deployment) throw new Error(`no deployment: ${answer.error}`);
  return answer.deployment;
}
const served = (s: Stack, id: string) => s.api<Deployment>(`/api/deployments/${id}`);
const until = (s: Stack, id: string, ok: (d: Deployment) => boolean, what: string) => waitUntil(async () => ok(await served(s, id)), `${id} ${what}`, 20_000);
const card = (o: Opened, id: string) => o.page.locator(`article[data-deployment="${id}"]`);

async function withPage(url: string, password: string, body: (o: Opened) => Promise<void>) {
  const opened = await openDashboard(browser(), url, password);
  try {
    await body(opened);
    expect(opened.errors).toEqual([]);
  } finally {
    await opened.close();
  }
}

testIf(title("live through SSE snapshots: a rollout's chips turn succeeded with no page or list request, other cards untouched"), async () => {
  const s = stack();
  expect((await fetch(`${s.url}/`)).status).toBe(401);
  const ping = (await s.api<{ deployment: string }>("/api/deployments", { method: "POST", body: JSON.stringify({ command: "ping" }) })).deployment;
  await until(s, ping, (d) => d.state === "succeeded", "succeeded");
  await withPage(s.url, s.apiKey, async (o) => {
    await card(o, ping).waitFor();
    await o.page.evaluate(() => document.querySelectorAll("article[data-deployment]").forEach((el) => ((el as unknown as { mark: boolean }).mark = true)));
    const before = o.requests.length;
    const commit = s.origin.commit("master", { "page.txt": "v2\n" }, "Show prices in francs");
    const id = await deploy(s, commit, { strategy: "waves=1,100%" });
    await card(o, id).and(o.page.locator('[data-state="succeeded"]')).waitFor({ timeout: 20_000 });
    for (const node of NODES) {
      const chip = card(o, id).locator(`li[data-node="${node}"]`);
      expect(await chip.getAttribute("data-state")).toBe("succeeded");
      expect(await chip.textContent()).toContain(commit.slice(0, 7));
    }
    expect(await card(o, id).locator(".wave-line").textContent()).toBe("wave 2/2 · 3 of 3 nodes · succeeded");
    expect(await card(o, ping).evaluate((el) => (el as unknown as { mark?: boolean }).mark)).toBe(true);
    expect(o.requests.slice(before).filter((url) => !url.endsWith("/api/nodes"))).toEqual([]);
    // Heartbeats bring each node's new commit: every row says on latest, and so does the summary.
    await o.page.locator('tr[data-condition="on latest"]').nth(NODES.length - 1).waitFor({ timeout: 10_000 });
    expect(await o.page.locator('[data-stat="latest"] .v').textContent()).toBe("3 / 3");
    await screenshot(o.page, "dashboard-live");
  });
}, 60_000);

/** A proxy in front of the webhook that rewrites "succeeded" to "skipped" in SSE `state` messages only. */
function snapshotTamperingProxy(target: string) {
  const tamper = () => {
    let buffer = "";
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    return new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        buffer += decoder.decode(chunk, { stream: true });
        const messages = buffer.split("\n\n");
        buffer = messages.pop()!;
        for (const m of messages) out.enqueue(encoder.encode(`${m.startsWith("event: state") ? m.replaceAll('"state":"succeeded"', '"state":"skipped"') : m}\n\n`));
      },
    });
  };
  return Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    async fetch(request) {
      const url = new URL(request.url);
      const headers = new Headers(request.headers);
      headers.delete("host");
      const response = await fetch(`${target}${url.pathname}${url.search}`, { method: request.method, headers, signal: request.signal });
      if (url.pathname !== "/api/events" || !response.body) return response;
      return new Response(response.body.pipeThrough(tamper()), { status: response.status, headers: response.headers });
    },
  });
}

testIf(title("with the snapshots altered on the way the page is wrong: it draws what the snapshots say, not raw events or polls"), async () => {
  const s = stack();
  const proxy = snapshotTamperingProxy(s.url);
  try {
    await withPage(`http://127.0.0.1:${proxy.port}`, s.apiKey, async (o) => {
      const commit = s.origin.commit("master", { "page.txt": "v3\n" }, "Round prices");
      const id = await deploy(s, commit);
      await until(s, id, (d) => !!d.finishedAt, "finished");
      expect((await served(s, id)).state).toBe("succeeded");
      for (const node of NODES) await card(o, id).locator(`li[data-node="${node}"][data-state="skipped"]`).waitFor({ timeout: 10_000 });
      expect(await card(o, id).getAttribute("data-state")).toBe("skipped");
      expect(await card(o, id).locator('[data-state="succeeded"]').count()).toBe(0);
    });
  } finally {
    proxy.stop(true);
  }
}, 60_000);

testIf(title("a rollout's waves show; approve and abort work against a real paused rollout"), async () => {
  const s = stack();
  await withPage(s.url, s.apiKey, async (o) => {
    const first = s.origin.commit("master", { "gate.txt": "1\n" }, "Approved release");
    const id = await deploy(s, first, { strategy: "waves=1,100% approve=1" });
    await card(o, id).and(o.page.locator('[data-state="paused"]')).waitFor({ timeout: 20_000 });
    expect(await card(o, id).locator(".wave-line").textContent()).toBe("wave 1/2 · 1 of 3 nodes · paused");
    expect(await card(o, id).locator(".strategy").textContent()).toBe("waves 1, 100% · on failure: rollback · approval after wave 1");
    expect(await card(o, id).locator('.wave[data-wave-index="1"] li[data-node="ui-a"]').getAttribute("data-state")).toBe("succeeded");
    expect(await card(o, id).locator('.wave[data-wave-index="2"] li[data-state="pending"]').count()).toBe(2);
    await screenshot(o.page, "dashboard-paused");
    await card(o, id).locator('button[data-action="approve"]').click();
    await card(o, id).and(o.page.locator('[data-state="succeeded"]')).waitFor({ timeout: 20_000 });
    for (const node of NODES) expect(head(s.repos[node])).toBe(first);

    const second = s.origin.commit("master", { "gate.txt": "2\n" }, "Release to stop");
    const stopped = await deploy(s, second, { strategy: "waves=1,100% approve=1" });
    await card(o, stopped).locator('button[data-action="approve"]').waitFor({ timeout: 20_000 });
    await card(o, stopped).locator('button[data-action="abort"]').click();
    await card(o, stopped).and(o.page.locator('[data-state="rolled_back"]')).waitFor({ timeout: 20_000 });
    expect(await card(o, stopped).locator('.rollback[data-state="succeeded"] li[data-node="ui-a"]').getAttribute("data-state")).toBe("succeeded");
    expect(await card(o, stopped).locator(".reason").first().textContent()).toBe("aborted by the operator (dashboard)");
    expect(await card(o, stopped).locator("button").count()).toBe(0);
    for (const node of NODES) expect(head(s.repos[node])).toBe(first);
  });
}, 90_000);

testIf(title("running durations tick; a finished deployment shows finishedAt - createdAt; a node failed after its checkout moved is not on the latest"), async () => {
  const s = stack();
  await withPage(s.url, s.apiKey, async (o) => {
    const gated = s.origin.commit("master", { gate: "1\n" }, "Slow migration");
    const id = await deploy(s, gated, { target: "node:ui-b" });
    const chip = card(o, id).locator('li[data-node="ui-b"][data-state="started"] .t');
    await chip.waitFor({ timeout: 20_000 });
    const first = await chip.textContent();
    const running = await card(o, id).locator(".took .t").textContent();
    // Nothing new arrives while the script waits: the page's own clock moves both durations on.
    await o.page.waitForFunction(({ id, chip, took }) => {
      const el = document.querySelector(`article[data-deployment="${id}"]`);
      return el?.querySelector('li[data-node="ui-b"] .t')?.textContent !== chip && el?.querySelector(".took .t")?.textContent !== took;
    }, { id, chip: first, took: running }, { timeout: 5000 });
    await Bun.write(s.marker("open"), "");
    await card(o, id).and(o.page.locator('[data-state="succeeded"]')).waitFor({ timeout: 20_000 });
    const done = await served(s, id);
    await drawn(o.page);
    expect(await card(o, id).locator(".took").textContent()).toBe(`took ${formatDuration(Date.parse(done.finishedAt!) - Date.parse(done.createdAt))}`);
    git(s.origin.work, "rm", "--quiet", "gate");

    const broken = s.origin.commit("master", { broken: "yes\n" }, "Broken build");
    const failed = await deploy(s, broken, { target: "node:ui-c", strategy: "on_failure=halt" });
    await card(o, failed).and(o.page.locator('[data-state="failed"]')).waitFor({ timeout: 20_000 });
    await o.page.locator('tr[data-node="ui-c"][data-condition="failed"]').waitFor({ timeout: 10_000 });
    expect(head(s.repos["ui-c"])).toBe(broken);
    expect(await o.page.locator('tr[data-node="ui-c"] td[data-label="State"]').textContent()).toContain("update script exited with status 3");
    expect(await o.page.locator('[data-stat="latest"] .v').textContent()).not.toContain("3 / 3");
    await card(o, failed).locator("details.out summary").click();
    expect(await card(o, failed).locator("details.out pre").textContent()).toBe("boom: this build is broken");
    await screenshot(o.page, "dashboard-failed");
    git(s.origin.work, "rm", "--quiet", "broken");
    const fixed = s.origin.commit("master", {}, "Fix the build");
    await until(s, await deploy(s, fixed), (d) => d.state === "succeeded", "succeeded");
  });
}, 90_000);

testIf(title("rejected commands: a forged one shows in the panel live, one in a deployment's name on its card, both counted"), async () => {
  const s = stack();
  const ping = (await s.api<{ deployment: string }>("/api/deployments", { method: "POST", body: JSON.stringify({ command: "ping", target: "node:ui-a" }) })).deployment;
  await until(s, ping, (d) => d.state === "succeeded", "succeeded");
  await withPage(s.url, s.apiKey, async (o) => {
    const forger = parseSigningKey(generateKeyPair().signingPem);
    const forged = `forged-${randomUUID().slice(0, 8)}`;
    await s.fleet.publish(command(s.fleet.fleet, { command: "ping", args: {}, deployment: forged, target: "node:ui-b" }), forger);
    await s.fleet.publish(command(s.fleet.fleet, { command: "ping", args: {}, deployment: ping, target: "node:ui-a" }), forger);
    await o.page.locator(`#rejections li[data-deployment="${forged}"]`).waitFor({ timeout: 20_000 });
    expect(await o.page.locator(`#rejections li[data-deployment="${forged}"]`).textContent()).toMatch(/ui-b refused forged-\w+: .*signature/);
    await card(o, ping).locator(".rejected").waitFor({ timeout: 20_000 });
    expect(await card(o, ping).locator(".rejected").textContent()).toContain("1 command rejected by nodes");
    expect(await card(o, ping).getAttribute("data-state")).toBe("succeeded");
    expect(Number(await o.page.locator('[data-stat="rejected"] .v').textContent())).toBeGreaterThanOrEqual(2);
  });
}, 60_000);
