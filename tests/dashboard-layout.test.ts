/**
 * The dashboard page in Chromium, served by the webhook's real HTTP app over
 * a view fed by hand (tests/dashboard-fixture.ts): a phone's width without
 * sideways scrolling, every value from a CI or a node kept as text, one card
 * redrawn per change while the others keep their elements, and the rules the
 * shipped browser code keeps to (webhook/dashboard-assets.ts).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { mergeSnapshot, snapshot, type Deployment } from "../shared/served.ts";
import { SCRIPT } from "../webhook/dashboard-assets.ts";
import { mergeInto } from "../webhook/dashboard-merge.ts";
import { createView } from "../webhook/view.ts";
import { drawn, openDashboard, screenshot, testIf, title, useBrowser, type Opened } from "./browser.ts";
import { feeder, fillScene, LONG_NODE, servePage, type PageServer } from "./dashboard-fixture.ts";
import { ROOT } from "./helpers.ts";

const browser = useBrowser();
let server: PageServer | undefined;
let opened: Opened | undefined;
afterEach(async () => {
  await opened?.close();
  server?.stop();
  opened = server = undefined;
});

/** Every element of the page that reaches past the right edge of the window. */
const overflowing = (o: Opened) =>
  o.page.evaluate(() =>
    [...document.querySelectorAll("#live *")]
      .filter((el) => el.getBoundingClientRect().right > innerWidth + 0.5)
      .map((el) => `${el.tagName.toLowerCase()}.${el.className} ${(el.textContent ?? "").slice(0, 40)}`),
  );

testIf(title("at 390x844 nothing scrolls sideways: long node names and reasons, twenty chips, the node table as cards"), async () => {
  server = servePage();
  fillScene(server);
  for (const dark of [false, true]) {
    opened = await openDashboard(browser(), server.url, server.apiKey, { width: 390, height: 844, dark });
    const { page } = opened;
    await page.locator(`li.chip[data-node="${LONG_NODE}"]`).first().waitFor();
    expect(await page.evaluate(() => [document.scrollingElement!.scrollWidth, innerWidth])).toEqual([390, 390]);
    expect(await overflowing(opened)).toEqual([]);
    // The table's columns become labelled lines of a card per node.
    expect(await page.locator("table.fleet thead").isVisible()).toBe(false);
    expect(await page.locator('tr[data-node="web-05"] td[data-label="State"]').textContent()).toContain("dirty");
    await screenshot(page, dark ? "dashboard-390-dark" : "dashboard-390");
    expect(opened.errors).toEqual([]);
    await opened.close();
  }
  opened = await openDashboard(browser(), server.url, server.apiKey);
  expect(await overflowing(opened)).toEqual([]);
  await screenshot(opened.page, "dashboard-1280");
}, 60_000);

testIf(title("the scene reads right: node conditions, summary counted the same way, waves, rollback, rejections, output tail"), async () => {
  server = servePage();
  fillScene(server);
  opened = await openDashboard(browser(), server.url, server.apiKey);
  const { page } = opened;
  const condition = (node: string) => page.locator(`tr[data-node="${node}"]`).getAttribute("data-condition");
  const expected: Record<string, string> = { "canary-1": "on latest", "web-01": "on latest", "web-04": "not deployed", "web-05": "dirty", "web-06": "updating", "web-07": "unhealthy", "web-08": "stopping" };
  for (const [node, word] of Object.entries(expected)) expect(await condition(node)).toBe(word);
  const latest = await page.locator('tr[data-condition="on latest"]').count();
  expect(await page.locator('[data-stat="latest"] .v').textContent()).toBe(`${latest} / 12`);
  const baking = page.locator('article[data-deployment="api-rollout-baking"]');
  expect(await baking.locator(".wave-line").textContent()).toMatch(/^wave 2\/3 · 4 of 12 nodes · baking (2\d|30) s$/);
  expect(await baking.locator('.wave[data-wave-index="3"] li.chip[data-state="pending"]').count()).toBe(8);
  const rolled = page.locator('article[data-deployment="codeship-1234"]');
  expect(await rolled.getAttribute("data-state")).toBe("rolled_back");
  expect(await rolled.locator('.rollback[data-state="succeeded"] li[data-node="canary-1"]').getAttribute("data-state")).toBe("succeeded");
  await rolled.locator("details.out summary").click();
  const tail = (await rolled.locator("details.out pre").textContent())!.split("\n");
  expect(tail).toHaveLength(20);
  expect(tail.at(-1)).toContain("cannot connect to the database");
  expect(await page.locator('article[data-deployment="api-ping"] .rejected').textContent()).toContain("1 command rejected");
  expect(await page.locator('#rejections li[data-deployment="forged-7f3a"]').textContent()).toContain("web-02 refused forged-7f3a: bad signature");
  expect(await page.locator('[data-stat="rejected"] .v').textContent()).toBe("2");
  expect(await page.locator('article[data-deployment="api-paused"] button[data-action="approve"]').textContent()).toBe("Approve wave 2");
  expect(opened.errors).toEqual([]);
}, 60_000);

testIf(title("a change redraws that deployment's card only; the others keep their elements, and nothing is fetched"), async () => {
  server = servePage();
  fillScene(server);
  opened = await openDashboard(browser(), server.url, server.apiKey);
  const { page, requests } = opened;
  await page.evaluate(() => document.querySelectorAll("article[data-deployment], tr[data-node]").forEach((el) => ((el as unknown as { mark: boolean }).mark = true)));
  const before = requests.length;
  server.report("api-rollout-baking", "web-04", "started");
  server.heartbeat("web-09", { busy: true });
  await page.locator('article[data-deployment="api-rollout-baking"] li[data-node="web-04"][data-state="started"]').waitFor({ timeout: 5000 });
  await page.locator('tr[data-node="web-09"][data-condition="updating"]').waitFor({ timeout: 5000 });
  await drawn(page);
  const kept = await page.evaluate(() =>
    [...document.querySelectorAll("article[data-deployment], tr[data-node]")].filter((el) => (el as unknown as { mark?: boolean }).mark).map((el) => (el as HTMLElement).dataset.deployment ?? (el as HTMLElement).dataset.node),
  );
  expect(kept).not.toContain("api-rollout-baking");
  expect(kept).not.toContain("web-09");
  for (const id of ["api-paused", "codeship-1234", "api-ping", "github-99-1", "canary-1", "web-08", LONG_NODE]) expect(kept).toContain(id);
  expect(requests.slice(before).filter((url) => !url.endsWith("/api/nodes"))).toEqual([]);
  expect(opened.errors).toEqual([]);
}, 60_000);

testIf(title("every value from a CI or a node stays text, on the first drawing and when it arrives live"), async () => {
  const evil = '<img src=x onerror="window.pwned=1"><script>window.pwned=1</script>';
  server = servePage();
  const source = { provider: "codeship", committer: evil, message: evil, url: "javascript:window.pwned=1", build: evil };
  server.created("codeship-1", { expected: [evil], source, strategy: "", waves: [[evil]], reason: evil });
  server.report("codeship-1", evil, "failed", { reason: evil, output: evil, commitAfter: evil, commitBefore: evil });
  server.report("forged-1", evil, "rejected", { kind: "direct", reason: evil });
  server.heartbeat(evil, { groups: [evil], commit: evil, branch: evil });
  const response = await fetch(`${server.url}/`, { headers: { authorization: `Basic ${btoa(`x:${server.apiKey}`)}` } });
  // Only the page's own script may run, whatever slipped into the page.
  expect(response.headers.get("content-security-policy")).toMatch(/default-src 'none'; script-src 'sha256-[\w+/=]+'; style-src 'sha256-/);
  const html = await response.text();
  expect(html).not.toContain("<img");
  expect(html.match(/<script/g)).toHaveLength(2);
  opened = await openDashboard(browser(), server.url, server.apiKey);
  const { page } = opened;
  server.created("codeship-2", { expected: [], source, reason: evil, ageMs: -1000 });
  server.report("codeship-2", evil, "rejected", { kind: "direct", reason: evil, output: evil });
  await page.locator('article[data-deployment="codeship-2"] li.chip').waitFor({ timeout: 5000 });
  await page.locator("details.out summary").first().click();
  expect(await page.evaluate(() => ({ images: document.images.length, scripts: document.scripts.length, pwned: (window as { pwned?: number }).pwned }))).toEqual({ images: 0, scripts: 2, pwned: undefined });
  expect(await page.locator('a[href^="javascript"]').count()).toBe(0);
  const text = (await page.locator("#live").textContent())!;
  expect(text.split(evil).length - 1).toBeGreaterThanOrEqual(8);
  expect(opened.errors).toEqual([]);
}, 60_000);

describe("the shipped browser code", () => {
  const modules = ["dashboard-dom", "dashboard-cards", "dashboard-fleet", "dashboard-draw", "dashboard-live", "dashboard-merge"].map((name) => `webhook/${name}.ts`);

  test("the page's copy of mergeSnapshot merges every snapshot of a busy fleet exactly as shared/served.ts does", () => {
    const view = createView();
    view.goLive();
    const held = { shared: new Map<string, Deployment | undefined>(), copy: new Map<string, Deployment | undefined>() };
    let merged = 0;
    view.subscribe((message) => {
      if (message.kind !== "change") return;
      const snap = snapshot(view.record(message.id)!, Date.now(), message.nodes, message.full);
      if (!snap) return;
      held.shared.set(message.id, mergeSnapshot(held.shared.get(message.id), snap));
      held.copy.set(message.id, mergeInto(held.copy.get(message.id), snap));
      expect(held.copy.get(message.id)).toEqual(held.shared.get(message.id));
      merged++;
    });
    const feed = feeder(view);
    fillScene(feed);
    // Fields that stop being true: a pause approved, a queued deployment's reason once a node runs it.
    feed.decide("api-paused", { decision: "approve", wave: 1 });
    feed.decide("api-paused", { decision: "wave", wave: 2 });
    feed.report("github-99-1", "web-09", "started", { kind: "direct" });
    expect(held.copy.get("api-paused")?.pausedAfter).toBeUndefined();
    expect(held.copy.get("github-99-1")?.reason).toBeUndefined();
    expect(merged).toBeGreaterThan(20);
    expect(held.copy.get("codeship-1234")?.state).toBe("rolled_back");
  });

  test("each browser module declares only exported functions and types at its top level, so the page ships all it calls", () => {
    for (const file of [...modules, "shared/format.ts"]) {
      const tops = readFileSync(join(ROOT, file), "utf8").split("\n").filter((line) => /^[a-z]/.test(line) && !line.startsWith("import "));
      const stray = tops.filter((line) => !/^export (async function|function|interface|type) /.test(line));
      expect({ file, stray }).toEqual({ file, stray: [] });
    }
  });

  test("the script parses, builds no HTML from strings, and cannot end its <script> element", () => {
    expect(() => new Function(SCRIPT)).not.toThrow();
    for (const sink of ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("]) expect(SCRIPT).not.toContain(sink);
    expect(SCRIPT).not.toMatch(/<\/script|<!--/i);
  });
});
