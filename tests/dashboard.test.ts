/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core
 * (never a downloaded browser) opens `GET /` with HTTP Basic credentials,
 * a deployment is triggered through the API, and the page shows it turn
 * `succeeded` on every node without reloading. Reported skipped, with the
 * reason, when /usr/bin/chromium is missing (`make test` installs it when it can).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { ROOT, removeDirs, tempDir } from "./helpers.ts";
import { skipNote } from "./skip.ts";
import { useStack } from "./stack.ts";
import { freshness, latestCommits, renderDashboard } from "../webhook/dashboard.ts";

const CHROMIUM = "/usr/bin/chromium";
const ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const haveChromium = existsSync(CHROMIUM);
const { testIf, title } = skipNote("dashboard browser", haveChromium ? undefined : `${CHROMIUM} is missing (apt-get install chromium, or run make test as root)`);

const NODES = ["ui-a", "ui-b", "ui-c"];
const stack = haveChromium ? useStack(NODES.map((id) => ({ id, groups: [id === "ui-c" ? "jobs" : "web"] })), "ui") : undefined;

async function withBrowser(body: (context: BrowserContext) => Promise<void>, credentials: { username: string; password: string }) {
  const profile = tempDir("arbeider-chromium-");
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 820 },
    httpCredentials: credentials,
  });
  try {
    await body(context);
  } finally {
    await context.close();
    removeDirs(profile);
  }
}

testIf(title("the dashboard shows a new deployment turn succeeded on every node without a reload"), async () => {
  const s = stack!();
  const unauthenticated = await fetch(`${s.url}/`);
  expect(unauthenticated.status).toBe(401);

  await withBrowser(async (context) => {
    const page = context.pages()[0] ?? (await context.newPage());
    let loads = 0;
    page.on("load", () => loads++);
    await page.goto(`${s.url}/`);
    await page.locator("#conn.on").waitFor({ timeout: 10_000 });
    for (const node of NODES) await expect(page.locator(`tr[data-node="${node}"] .tag`).last().textContent()).resolves.toContain("online");

    const commit = s.origin.commit("master", { "page.txt": "v2\n" }, "Show prices in francs");
    const { deployment } = await s.api<{ deployment: string }>("/api/deployments", {
      method: "POST",
      body: JSON.stringify({ command: "update", args: { branch: "master", commit } }),
    });
    const card = page.locator(`article[data-deployment="${deployment}"]`);
    await card.and(page.locator('[data-state="succeeded"]')).waitFor({ timeout: 20_000 });
    for (const node of NODES) {
      await expect(card.locator(`li[data-node="${node}"]`).getAttribute("data-state")).resolves.toBe("succeeded");
      await expect(card.locator(`li[data-node="${node}"]`).textContent()).resolves.toContain(commit.slice(0, 7));
    }
    await expect(card.locator(".badge").textContent()).resolves.toContain("succeeded");
    // Heartbeats bring each node's new commit; then all are on the latest deployed commit.
    await page.locator('tr[data-node] [data-fresh="current"]').nth(NODES.length - 1).waitFor({ timeout: 10_000 });
    expect(loads).toBe(1);

    mkdirSync(join(ROOT, "tests/output"), { recursive: true });
    await page.screenshot({ path: join(ROOT, "tests/output/dashboard.png"), fullPage: true });
  }, { username: "operator", password: s.apiKey });
}, 60_000);

describe("dashboard rendering", () => {
  const deployment = (id: string, branch: string, nodes: Record<string, { state: string; commitAfter?: string }>, state = "succeeded") =>
    ({ id, command: "update", target: "all", args: { branch }, source: { provider: "api" }, createdAt: new Date(0).toISOString(), expiresAt: "", state, expected: Object.keys(nodes), nodes }) as never;

  test("the latest deployed commit of a branch comes from its newest update that succeeded somewhere", () => {
    const latest = latestCommits([
      deployment("d3", "master", { a: { state: "failed" } }, "failed"),
      deployment("d2", "master", { a: { state: "succeeded", commitAfter: "bbbbbbb1" }, b: { state: "failed" } }, "failed"),
      deployment("d1", "master", { a: { state: "succeeded", commitAfter: "aaaaaaa1" } }),
      deployment("d0", "staging", { c: { state: "succeeded", commitAfter: "ccccccc1" } }),
    ]);
    expect(Object.fromEntries(latest)).toEqual({ master: "bbbbbbb1", staging: "ccccccc1" });
    const cases: [string | null, string | null, string][] = [
      ["bbbbbbb1", "master", "current"],
      ["aaaaaaa1", "master", "behind"],
      ["ccccccc1", "staging", "current"],
      ["ccccccc1", "feature", "unknown"],
      [null, null, "unknown"],
    ];
    for (const [commit, branch, expected] of cases) expect(freshness({ commit, branch }, latest)).toBe(expected as never);
  });

  test("every value from a CI or a node is escaped", async () => {
    const evil = '<img src=x onerror="alert(1)">';
    const d = deployment("d1", "master", { [evil]: { state: "failed" } }, "failed");
    (d as { source: Record<string, string> }).source = { provider: "codeship", committer: evil, message: evil, url: "javascript:alert(1)" };
    const page = String(await renderDashboard({ fleet: "f", deployments: [d], nodes: [], now: 0 }));
    expect(page).not.toContain("<img");
    expect(page).not.toContain("javascript:");
    expect(page).toContain("&lt;img src=x");
  });
});
