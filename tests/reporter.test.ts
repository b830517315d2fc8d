/**
 * The reporter in-process (webhook/reporter.ts), with a real view, a record
 * writer that echoes what it writes back into the view the way the history
 * stream does, and real HTTP to local servers shaped like GitHub, GitLab and
 * a notification receiver (tests/report-receivers.ts). Tries are spaced by
 * milliseconds here; the contract's schedule is tested in
 * report-units.test.ts and with real processes in report-e2e.test.ts.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { loadConfig, WebhookEnv } from "../shared/config.ts";
import { createLogger } from "../shared/log.ts";
import type { Command, Event } from "../shared/protocol.ts";
import type { Decision, ReportDecision } from "../shared/records.ts";
import { DEFAULT_STRATEGY } from "../shared/strategy.ts";
import type { RetryPolicy } from "../webhook/delivery.ts";
import { createMetrics } from "../webhook/metrics.ts";
import { reportSecrets, reportTargets } from "../webhook/report-targets.ts";
import { createReporter, type Reporter } from "../webhook/reporter.ts";
import { createView } from "../webhook/view.ts";
import { waitUntil } from "./helpers.ts";
import { fakeGithub, fakeGitlab, fakeNotify, receiver, type Receiver } from "./report-receivers.ts";

const GITHUB_TOKEN = "ghp_fixtureToken0123456789";
const GITLAB_TOKEN = "glpat-fixtureToken0123";
const SECRET = "fixture-notify-secret-77aa";
const SHA = "3f".repeat(20);
const FAST: RetryPolicy = { tries: 5, baseMs: 20, maxMs: 100, maxRetryAfterMs: 5000, timeoutMs: 1000 };

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function servers() {
  const github = fakeGithub(GITHUB_TOKEN, "acme/shop");
  const gitlab = fakeGitlab(GITLAB_TOKEN, "acme/shop");
  const notify = fakeNotify(SECRET);
  cleanups.push(() => github.server.stop(), () => gitlab.server.stop(), () => notify.stop());
  return { github, gitlab, notify };
}

/** A view, the reporter on it, and the history's echo of every record it writes. */
function harness(env: Record<string, string>, options: { driving?: boolean; refuse?: number } = {}) {
  const config = loadConfig(WebhookEnv, { ARBEIDER_SIGNING_KEY_FILE: "/k", ARBEIDER_API_KEY: "fixture-api-key-123456", GITHUB_REPOSITORY: "acme/shop", ...env });
  const view = createView();
  view.goLive();
  const written: Decision[] = [];
  const apply = (value: Event | Decision) => view.apply("decision" in value ? { kind: "decision", decision: value } : { kind: "event", event: value });
  const state = { driving: options.driving ?? true };
  const metrics = createMetrics();
  const refused = { count: 0 };
  let reporter: Reporter | undefined;
  const start = () => {
    reporter = createReporter({
      view, metrics, targets: reportTargets(config), secrets: reportSecrets(config), policy: FAST, log: createLogger("error"),
      driving: () => state.driving,
      record: async (value) => {
        // The first `refuse` writes are not confirmed, as when the broker is away.
        if (refused.count < (options.refuse ?? 0)) {
          refused.count++;
          throw new Error("Cannot publish: channel closed");
        }
        written.push(value as Decision);
        setTimeout(() => apply(value), 2);
      },
    });
    cleanups.push(() => reporter?.stop());
  };
  return { view, apply, written, state, metrics, start, reports: (id: string) => view.get(id)?.reports ?? [] };
}

const T = Date.now();
const iso = (s: number) => new Date(T + s * 1000).toISOString();
const spec = (id: string): Command => ({
  v: 1, id, deployment: id, fleet: "t", target: "all", command: "update", args: { branch: "master", commit: SHA },
  issuedAt: iso(0), expiresAt: iso(3600), source: { provider: "api" },
});
const created = (id: string): Event => ({ v: 1, deployment: id, command: id, state: "created", at: iso(0), spec: spec(id), expected: ["a"], strategy: DEFAULT_STRATEGY, waves: [["a"]] });
const wave = (id: string): Decision => ({ v: 1, deployment: id, at: iso(1), decision: "wave", wave: 1 });
const succeeded = (id: string): Event => ({ v: 1, deployment: id, command: "u-a", node: "a", state: "succeeded", at: iso(2), commitBefore: "1".repeat(40), commitAfter: SHA });

const FORGES = { GITHUB_TOKEN, GITLAB_API_TOKEN: GITLAB_TOKEN, GITLAB_PROJECT_ID: "acme/shop" };
const notifyEnv = (r: Receiver) => ({ ARBEIDER_NOTIFY_URLS: `${r.url}/hook`, ARBEIDER_NOTIFY_SECRET: SECRET });
const allDone = (reports: { state: string }[], n: number) => reports.length === n && reports.every((r) => r.state !== "pending");

describe("reporter", () => {
  test("each state goes to each target once, and a target's word is not sent twice in a row", async () => {
    const { github, gitlab, notify } = servers();
    const h = harness({ ...FORGES, GITHUB_API_URL: github.server.url, GITLAB_URL: gitlab.server.url, ...notifyEnv(notify) });
    h.start();
    h.apply(created("d1"));
    await waitUntil(() => allDone(h.reports("d1"), 4), "queued reported to the four targets");
    h.apply(wave("d1"));
    await waitUntil(() => allDone(h.reports("d1"), 6), "running reported where its word is new");
    h.apply(succeeded("d1"));
    await waitUntil(() => allDone(h.reports("d1"), 10), "succeeded reported everywhere");
    expect(h.reports("d1").map((r) => `${r.target} ${r.event} ${r.state}`)).toEqual([
      "github deployment.queued delivered",
      "github-status deployment.queued delivered",
      "gitlab deployment.queued delivered",
      "notify:1 deployment.queued delivered",
      "github deployment.running delivered",
      "notify:1 deployment.running delivered",
      "github deployment.succeeded delivered",
      "github-status deployment.succeeded delivered",
      "gitlab deployment.succeeded delivered",
      "notify:1 deployment.succeeded delivered",
    ]);
    expect([...github.deployments.values()]).toEqual([{ sha: SHA, environment: "all", statuses: ["queued", "in_progress", "success"] }]);
    // GitLab refuses `running` twice in a row: it got it once, then success, and every answer was a success.
    expect(gitlab.server.requests.map((r) => `${r.status} ${r.body.state}`)).toEqual(["201 running", "201 success"]);
    expect(notify.ok().map((r) => r.body.type)).toEqual(["deployment.queued", "deployment.running", "deployment.succeeded"]);
  });

  test("a process that becomes the driver reports the current state nobody reported, not the ones before it", async () => {
    const { notify } = servers();
    const h = harness(notifyEnv(notify), { driving: false });
    h.start();
    h.apply(created("d2"));
    h.apply(wave("d2"));
    await Bun.sleep(100);
    expect(notify.requests).toEqual([]);
    h.state.driving = true;
    await waitUntil(() => allDone(h.reports("d2"), 1), "running reported at the takeover");
    h.apply(succeeded("d2"));
    await waitUntil(() => allDone(h.reports("d2"), 2), "succeeded reported");
    expect(notify.ok().map((r) => r.body.type)).toEqual(["deployment.running", "deployment.succeeded"]);
  });

  test("a delivery left pending is taken on with its id and its tries; a delivered one is never sent again", async () => {
    const { notify } = servers();
    const h = harness(notifyEnv(notify));
    h.apply(created("d3"));
    h.apply(wave("d3"));
    const delivery = "0b9e6f4e-7a43-4c0e-9d5f-7f1d2a3b4c5d";
    const report = (event: string, state: "pending" | "delivered", attempts: number): ReportDecision => ({
      v: 1, deployment: "d3", at: iso(1), decision: "report", delivery, target: "notify:1", event, state, attempts,
    });
    h.apply(report("deployment.queued", "pending", 2));
    h.apply({ ...report("deployment.running", "pending", 0), delivery: "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f" });
    h.apply({ ...report("deployment.running", "delivered", 1), delivery: "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f" });
    h.start();
    await waitUntil(() => allDone(h.reports("d3"), 2), "the pending delivery delivered");
    expect(notify.requests.map((r) => [r.body.type, r.headers["x-arbeider-delivery"]])).toEqual([["deployment.queued", delivery]]);
    expect(h.reports("d3")[0]).toMatchObject({ event: "deployment.queued", state: "delivered", attempts: 3 });
  });

  test("a process that stops driving stops trying and leaves the delivery to the next driver", async () => {
    const { notify } = servers();
    await notify.down();
    const h = harness(notifyEnv(notify));
    h.start();
    h.apply(created("d4"));
    await waitUntil(() => h.reports("d4")[0]?.attempts >= 2, "two failed tries recorded");
    h.state.driving = false;
    const tries = h.written.length;
    await Bun.sleep(300);
    expect(h.written.length).toBe(tries);
    expect(h.reports("d4")[0]).toMatchObject({ state: "pending", reason: expect.stringMatching(/^cannot connect \((ECONNREFUSED|ConnectionRefused)\)$/) });
    notify.up();
    h.state.driving = true;
    await waitUntil(() => allDone(h.reports("d4"), 1), "delivered by the next driver");
    expect(notify.ok().length).toBe(1);
  });

  test("a report whose pending record the broker did not confirm is not tried, and is recorded and delivered later", async () => {
    const { notify } = servers();
    const h = harness(notifyEnv(notify), { refuse: 1 });
    h.start();
    h.apply(created("d5"));
    await waitUntil(() => allDone(h.reports("d5"), 1), "queued delivered once its record was written", 10_000);
    expect(notify.ok().length).toBe(1);
    expect(notify.requests[0].at).toBeGreaterThanOrEqual(Date.parse(h.written[0].at));
  });
});

describe("GitHub's answers", () => {
  const rows: [name: string, first: { status: number; body?: unknown; headers?: Record<string, string> }[], state: "delivered" | "failed", attempts: number, reason?: string][] = [
    ["a secondary rate limit is waited out as retry-after says", [{ status: 403, body: { message: "You have exceeded a secondary rate limit." }, headers: { "retry-after": "1" } }], "delivered", 2],
    ["a server error is tried again", [{ status: 502, body: { message: "Server Error" } }, { status: 503, body: {} }], "delivered", 3],
    ["a body GitHub refuses is given up at once", [{ status: 422, body: { message: "Validation Failed" } }], "failed", 1, "HTTP 422: Validation Failed"],
    ["a redirect is not followed", [{ status: 301, body: { message: "Moved Permanently" }, headers: { location: "http://127.0.0.1:9/" } }], "failed", 1, "HTTP 301: Moved Permanently (a redirect, not followed)"],
  ];
  for (const [name, first, state, attempts, reason] of rows) {
    test(name, async () => {
      const { github } = servers();
      github.server.queue.push(...first.map((a) => ({ ...a, match: (r: { path: string }) => r.path.endsWith("/deployments") })));
      const h = harness({ GITHUB_TOKEN, GITHUB_API_URL: github.server.url });
      h.start();
      const started = Date.now();
      h.apply(created("g1"));
      await waitUntil(() => allDone(h.reports("g1"), 2), "both GitHub reports ended");
      expect(h.reports("g1")[0]).toEqual({ target: "github", event: "deployment.queued", state, attempts, at: expect.any(String), ...(reason ? { reason } : {}) });
      const creates = github.server.requests.filter((r) => r.path.endsWith("/deployments"));
      expect(creates.length).toBe(attempts);
      if (first[0].headers?.["retry-after"]) expect(creates[1].at - creates[0].at).toBeGreaterThanOrEqual(1000);
      expect(Date.now() - started).toBeLessThan(10_000);
    });
  }

  test("a wrong token is given up at once, and the token is in no reason", async () => {
    const { github } = servers();
    const h = harness({ GITHUB_TOKEN: `${GITHUB_TOKEN}x`, GITHUB_API_URL: github.server.url });
    h.start();
    h.apply(created("g2"));
    await waitUntil(() => allDone(h.reports("g2"), 2), "both GitHub reports ended");
    expect(h.reports("g2").map((r) => [r.state, r.attempts, r.reason])).toEqual([["failed", 1, "HTTP 401: Bad credentials"], ["failed", 1, "HTTP 401: Bad credentials"]]);
    expect(JSON.stringify(h.written)).not.toContain(GITHUB_TOKEN);
    expect(h.metrics.render(h.view, true)).toContain('arbeider_reports_total{target="github",outcome="failed"} 1');
  });

  test("a receiver that never answers: each try ends at the time bound and is counted", async () => {
    const hung = receiver(() => ({ status: 204 }));
    hung.hang = true;
    cleanups.push(() => hung.stop());
    const h = harness({ ARBEIDER_NOTIFY_URLS: hung.url, ARBEIDER_NOTIFY_SECRET: SECRET });
    h.start();
    h.apply(created("h1"));
    await waitUntil(() => h.reports("h1")[0]?.attempts >= 2, "two tries timed out", 10_000);
    expect(h.reports("h1")[0]).toMatchObject({ state: "pending", reason: "no answer within 1 s" });
    await waitUntil(() => hung.requests[0].aborted, "the first request abandoned by the client");
    expect(h.metrics.render(h.view, true)).toMatch(/arbeider_reports_total\{target="notify:1",outcome="timed_out"\} [2-9]/);
  });
});
