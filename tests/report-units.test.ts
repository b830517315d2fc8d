/**
 * The pure parts of reporting back, as tables: report records folded into a
 * deployment and served, the outcome line GitHub and GitLab show, the retry
 * schedule and how answers are sorted, the Slack message, and the reporting
 * variables, each bad one refused naming its variable (and never echoing a
 * URL, which may be a secret).
 */
import { describe, expect, test } from "bun:test";
import { ConfigError } from "../shared/config.ts";
import { applyDecision, applyEvent, createRecord, type DeploymentRecord } from "../shared/deployments.ts";
import type { Command, Event } from "../shared/protocol.ts";
import { parseRecord, type ReportDecision } from "../shared/records.ts";
import { deploymentState, mergeSnapshot, present, snapshot, type Deployment } from "../shared/served.ts";
import { DEFAULT_STRATEGY } from "../shared/strategy.ts";
import { outcomeSummary } from "../shared/summary.ts";
import { DEFAULT_POLICY, redact, retryable, retryAfterMs, retryDelay } from "../webhook/delivery.ts";
import { slackMessage } from "../webhook/report-notify.ts";
import { loadWebhookConfig } from "../webhook.ts";
import { reportLine } from "../scripts/deploy/view.ts";

const T0 = Date.parse("2026-03-01T10:00:00.000Z");
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const spec: Command = {
  v: 1, id: "d1", deployment: "d1", fleet: "shop", target: "all", command: "update",
  args: { branch: "master", commit: "a".repeat(40) }, issuedAt: at(0), expiresAt: at(3600), source: { provider: "api" },
};
const created: Event = { v: 1, deployment: "d1", command: "d1", state: "created", at: at(0), spec, expected: ["a", "b"], strategy: DEFAULT_STRATEGY, waves: [["a", "b"]] };
const D1 = "6f0e8c1a-2b3c-4d5e-8f90-0123456789ab";
const D2 = "7a1b2c3d-4e5f-4a6b-8c7d-0123456789ab";

function report(state: ReportDecision["state"], seconds: number, extra: Partial<ReportDecision> = {}): ReportDecision {
  return { v: 1, deployment: "d1", at: at(seconds), decision: "report", delivery: D1, target: "notify:1", event: "deployment.queued", state, ...extra };
}

function fold(reports: ReportDecision[]): DeploymentRecord {
  const record = createRecord("d1");
  applyEvent(record, created);
  for (const r of reports) applyDecision(record, r);
  return record;
}

describe("report records", () => {
  type Row = [name: string, records: ReportDecision[], served: Deployment["reports"]];
  const rows: Row[] = [
    ["none: no reports field", [], undefined],
    ["pending before the first try", [report("pending", 1, { attempts: 0 })], [{ target: "notify:1", event: "deployment.queued", state: "pending", attempts: 0, at: at(1) }]],
    [
      "a failed try keeps it pending, with the reason",
      [report("pending", 1, { attempts: 0 }), report("pending", 3, { attempts: 1, reason: "HTTP 503" })],
      [{ target: "notify:1", event: "deployment.queued", state: "pending", attempts: 1, at: at(3), reason: "HTTP 503" }],
    ],
    [
      "delivered ends it, and a pending record after that changes nothing",
      [report("pending", 1), report("delivered", 2, { attempts: 2 }), report("pending", 5, { attempts: 3, reason: "late copy" })],
      [{ target: "notify:1", event: "deployment.queued", state: "delivered", attempts: 2, at: at(2) }],
    ],
    [
      "the first end counts",
      [report("pending", 1), report("failed", 2, { attempts: 1, reason: "HTTP 400: no" }), report("delivered", 3, { attempts: 2 })],
      [{ target: "notify:1", event: "deployment.queued", state: "failed", attempts: 1, at: at(2), reason: "HTTP 400: no" }],
    ],
    [
      "a second delivery of the same state and target is not another report",
      [report("pending", 1), report("pending", 2, { delivery: D2, attempts: 4 })],
      [{ target: "notify:1", event: "deployment.queued", state: "pending", attempts: 0, at: at(1) }],
    ],
    [
      "reports are served in the order they were first recorded",
      [report("pending", 1, { target: "github" }), report("pending", 2), report("delivered", 3, { target: "github", attempts: 1 })],
      [
        { target: "github", event: "deployment.queued", state: "delivered", attempts: 1, at: at(3) },
        { target: "notify:1", event: "deployment.queued", state: "pending", attempts: 0, at: at(2) },
      ],
    ],
  ];
  for (const [name, records, served] of rows) {
    test(name, () => {
      expect(present(fold(records), T0 + 10_000)!.reports).toEqual(served);
    });
  }

  test("a report never moves when the deployment finished, and keeps what the target created", () => {
    const record = fold([report("pending", 1, { target: "github" }), report("pending", 2, { target: "github", remote: "4242" })]);
    applyEvent(record, { v: 1, deployment: "d1", command: "u-x", node: "a", state: "succeeded", at: at(5) });
    applyEvent(record, { v: 1, deployment: "d1", command: "u-y", node: "b", state: "succeeded", at: at(6) });
    applyDecision(record, { v: 1, deployment: "d1", at: at(4), decision: "wave", wave: 1 });
    const finished = present(record, T0 + 20_000)!.finishedAt;
    expect(applyDecision(record, report("delivered", 900, { target: "github", event: "deployment.succeeded" }))).toBe(true);
    expect(present(record, T0 + 1_000_000)!.finishedAt).toBe(finished);
    expect(record.reports.get("github deployment.queued")!.remote).toBe("4242");
  });

  test("every snapshot carries the reports: a client that merges them holds what the API serves", () => {
    const record = fold([]);
    const held = present(record, T0)!;
    applyDecision(record, report("pending", 1, { attempts: 0 }));
    const pending = mergeSnapshot(held, snapshot(record, T0, [])!);
    expect(pending).toEqual(present(record, T0)!);
    applyDecision(record, report("delivered", 2, { attempts: 1 }));
    expect(mergeSnapshot(pending, snapshot(record, T0, [])!)!.reports).toEqual([{ target: "notify:1", event: "deployment.queued", state: "delivered", attempts: 1, at: at(2) }]);
  });

  test("a redelivered record changes nothing", () => {
    const record = fold([report("pending", 1, { attempts: 1, reason: "HTTP 502" })]);
    expect(applyDecision(record, report("pending", 1, { attempts: 1, reason: "HTTP 502" }))).toBe(false);
  });

  test("the history parses a report record and refuses one that names an unknown target", () => {
    const body = (r: unknown) => new TextEncoder().encode(JSON.stringify(r));
    expect(parseRecord(body(report("pending", 1)))).toMatchObject({ ok: true, record: { kind: "decision" } });
    expect(parseRecord(body(report("pending", 1, { target: "https://example.com/hook" })))).toMatchObject({ ok: false });
    expect(parseRecord(body(report("pending", 1, { delivery: "not-a-uuid" })))).toMatchObject({ ok: false });
  });
});

describe("served state", () => {
  test("an aborted rollout waiting for its rollback decision is running, not failed (no failure is reported before the rollback)", () => {
    const record = createRecord("d1");
    applyEvent(record, { ...created, waves: [["a"], ["b"]] });
    applyDecision(record, { v: 1, deployment: "d1", at: at(1), decision: "wave", wave: 1 });
    applyEvent(record, { v: 1, deployment: "d1", command: "u-a", node: "a", state: "failed", at: at(2), commitBefore: "1".repeat(40), commitAfter: "a".repeat(40) });
    applyDecision(record, { v: 1, deployment: "d1", at: at(3), decision: "abort", reason: "1 node failed" });
    expect(deploymentState(record)).toBe("running");
    applyDecision(record, { v: 1, deployment: "d1", at: at(4), decision: "rollback", nodes: { a: "1".repeat(40) } });
    expect(deploymentState(record)).toBe("running");
    applyEvent(record, { v: 1, deployment: "d1", command: "r-a", node: "a", state: "succeeded", at: at(5), commitBefore: "a".repeat(40), commitAfter: "1".repeat(40) });
    expect(deploymentState(record)).toBe("rolled_back");
  });
});

describe("the outcome line", () => {
  const deployment = (fields: Partial<Deployment>): Deployment => ({ ...present(fold([]), T0)!, ...fields });
  const rows: [string, Partial<Deployment>, string][] = [
    ["all succeeded", { state: "succeeded", expected: ["a", "b"], counts: { succeeded: 2 } }, "2/2 succeeded"],
    ["running, with waiting ones", { state: "running", expected: ["a", "b", "c"], counts: { succeeded: 1, started: 1, waiting: 1 } }, "1/3 succeeded, 1 running, 1 waiting"],
    [
      "rolled back",
      {
        state: "rolled_back", expected: ["a", "b"], counts: { succeeded: 1, failed: 1 },
        rollback: { state: "succeeded", nodes: { a: { state: "succeeded", commit: "b".repeat(40) }, b: { state: "succeeded", commit: "b".repeat(40) } } },
      },
      "1/2 succeeded, 1 failed, 2 rolled back",
    ],
    ["paused", { state: "paused", pausedAfter: 1, waves: [{ nodes: ["a"], state: "succeeded" }, { nodes: ["b"], state: "pending" }], counts: { succeeded: 1, waiting: 0 } }, "paused after wave 1 of 2: waiting for approval; 1/2 succeeded"],
    ["superseded", { state: "superseded", supersededBy: "api-2", counts: { succeeded: 1 } }, "superseded by api-2; 1/2 succeeded"],
  ];
  for (const [name, fields, line] of rows) test(name, () => expect(outcomeSummary(deployment(fields))).toBe(line));

  test("is cut to GitHub's 140 characters", () => {
    const line = outcomeSummary(deployment({ state: "queued", reason: "x".repeat(300), counts: {} }));
    expect([...line].length).toBe(140);
    expect(line.endsWith("…")).toBe(true);
  });
});

describe("delivery", () => {
  test("the default tries: at least 5, over more than a minute even with the shortest waits", () => {
    expect(DEFAULT_POLICY.tries).toBeGreaterThanOrEqual(5);
    const shortest = Array.from({ length: DEFAULT_POLICY.tries - 1 }, (_, i) => retryDelay(i + 1, DEFAULT_POLICY, 0, () => 0));
    const longest = Array.from({ length: DEFAULT_POLICY.tries - 1 }, (_, i) => retryDelay(i + 1, DEFAULT_POLICY, 0, () => 1));
    expect(shortest.reduce((a, b) => a + b)).toBeGreaterThan(60_000);
    expect(shortest).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    expect(longest).toEqual([2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
  });

  test("a Retry-After longer than the backoff is waited, up to a bound", () => {
    expect(retryDelay(1, DEFAULT_POLICY, 30_000, () => 0)).toBe(30_000);
    expect(retryDelay(1, DEFAULT_POLICY, 86_400_000, () => 0)).toBe(DEFAULT_POLICY.maxRetryAfterMs);
  });

  const now = Date.parse("2026-03-01T10:00:00Z");
  const rows: [string, Record<string, string>, number | undefined][] = [
    ["seconds", { "retry-after": "7" }, 7000],
    ["an HTTP date", { "retry-after": "Sun, 01 Mar 2026 10:00:30 GMT" }, 30_000],
    ["GitHub's rate limit reset", { "x-ratelimit-remaining": "0", "x-ratelimit-reset": String(now / 1000 + 60) }, 60_000],
    ["nothing said", {}, undefined],
  ];
  for (const [name, headers, ms] of rows) test(`Retry-After as ${name}`, () => expect(retryAfterMs(new Headers(headers), now)).toBe(ms));

  const answers: [number, Record<string, string>, boolean][] = [
    [500, {}, true], [502, {}, true], [503, {}, true], [429, {}, true],
    [403, { "retry-after": "60" }, true], [403, { "x-ratelimit-remaining": "0" }, true],
    [403, {}, false], [400, {}, false], [401, {}, false], [404, {}, false], [410, {}, false], [422, {}, false],
  ];
  for (const [status, headers, again] of answers) {
    test(`HTTP ${status} ${JSON.stringify(headers)} is ${again ? "tried again" : "given up at once"}`, () => expect(retryable(status, new Headers(headers))).toBe(again));
  }

  test("secrets are cut out of reasons", () => {
    expect(redact("HTTP 401: token ghp_abcdefgh123 is bad; url /services/T1/B2/xyz", ["ghp_abcdefgh123", "/services/T1/B2/xyz", "abc"])).toBe("HTTP 401: token [redacted] is bad; url [redacted]");
  });
});

describe("the Slack message", () => {
  test("has the fallback text and blocks with the nodes that need a look first", () => {
    const record = fold([]);
    applyEvent(record, { v: 1, deployment: "d1", command: "u-1", node: "a", state: "succeeded", at: at(2), commitAfter: "c".repeat(40) });
    applyEvent(record, { v: 1, deployment: "d1", command: "u-2", node: "b", state: "failed", at: at(3), reason: "boom <script>" });
    applyDecision(record, { v: 1, deployment: "d1", at: at(1), decision: "wave", wave: 1 });
    const d = present(record, T0 + 5000)!;
    expect(deploymentState(record)).toBe("running");
    const message = slackMessage(d, "https://deploy.example.com/#deployment=d1") as { text: string; blocks: any[] };
    expect(message.text).toBe(":rocket: d1 running: update master@aaaaaaa → all: 1/2 succeeded, 1 failed <https://deploy.example.com/#deployment=d1|open>");
    expect(message.blocks[0].text.text).toBe(":rocket: *running*  <https://deploy.example.com/#deployment=d1|d1>\nupdate master@aaaaaaa → all");
    expect(message.blocks[1].text.text).toBe("✘ b failed: boom &lt;script&gt;\n✔ a succeeded ccccccc");
    expect(message.blocks[2]).toEqual({ type: "context", elements: [{ type: "mrkdwn", text: "1/2 succeeded, 1 failed" }] });
  });
});

describe("deploy.ts status", () => {
  test("shows each target's latest report, and why one failed or waits", () => {
    const d = present(fold([
      report("delivered", 1, { target: "github", attempts: 1 }),
      report("failed", 2, { target: "slack:2", attempts: 1, reason: "HTTP 400: no_text" }),
      report("delivered", 3, { target: "github", event: "deployment.succeeded", attempts: 2 }),
      report("pending", 4, { target: "notify:1", event: "deployment.succeeded", attempts: 3, reason: "HTTP 503\u001b[2J" }),
    ]), T0)!;
    expect(reportLine(d)).toBe("  reported  github ✔ succeeded, slack:2 ✘ queued (1 try: HTTP 400: no_text), notify:1 … succeeded (3 tries: HTTP 503 [2J)");
    expect(reportLine(present(fold([]), T0)!)).toBeUndefined();
  });
});

describe("reporting variables", () => {
  const base = { ARBEIDER_SIGNING_KEY_FILE: "/k", ARBEIDER_API_KEY: "fixture-report-key-0a1b2c" };
  const load = (env: Record<string, string>) => loadWebhookConfig({ ...base, ...env });

  test("defaults: GitHub's and GitLab's public APIs, 10 s per attempt, no target", () => {
    expect(load({})).toMatchObject({ GITHUB_API_URL: "https://api.github.com", GITLAB_URL: "https://gitlab.com", ARBEIDER_REPORT_TIMEOUT: 10, ARBEIDER_NOTIFY_URLS: [] });
  });

  test("notification URLs: plain ones and slack+ ones, API URLs without a trailing slash", () => {
    const config = load({
      ARBEIDER_NOTIFY_URLS: "https://hooks.example.com/arbeider, slack+https://hooks.slack.com/services/T/B/x",
      ARBEIDER_NOTIFY_SECRET: "a-secret-of-24-characters",
      GITHUB_API_URL: "https://ghe.example.com/api/v3/",
    });
    expect(config.ARBEIDER_NOTIFY_URLS).toEqual([{ kind: "notify", url: "https://hooks.example.com/arbeider" }, { kind: "slack", url: "https://hooks.slack.com/services/T/B/x" }]);
    expect(config.GITHUB_API_URL).toBe("https://ghe.example.com/api/v3");
  });

  test("a repository or project alone enables no hook route when it is there to be reported to", () => {
    expect(() => load({ GITHUB_TOKEN: "ghp_x", GITHUB_REPOSITORY: "acme/shop", GITLAB_API_TOKEN: "glpat-x", GITLAB_PROJECT_ID: "7" })).not.toThrow();
  });

  const problems: [string, Record<string, string>, ConfigError][] = [
    ["a GitHub token without a repository", { GITHUB_TOKEN: "ghp_x" }, new ConfigError("GITHUB_REPOSITORY", "is required when GITHUB_TOKEN is set (owner/name of the repository to report to)")],
    ["a GitLab token without a project", { GITLAB_API_TOKEN: "glpat-x" }, new ConfigError("GITLAB_PROJECT_ID", "is required when GITLAB_API_TOKEN is set (the project to report to)")],
    ["a signed URL without a secret", { ARBEIDER_NOTIFY_URLS: "https://a.example.com/" }, new ConfigError("ARBEIDER_NOTIFY_SECRET", "is required when ARBEIDER_NOTIFY_URLS has a URL that is not slack+ (its bodies are signed with it)")],
    ["a short secret", { ARBEIDER_NOTIFY_SECRET: "short" }, new ConfigError("ARBEIDER_NOTIFY_SECRET", "must be at least 16 characters")],
    ["a token with a newline", { GITHUB_TOKEN: "ghp_x\nX-Evil: 1", GITHUB_REPOSITORY: "acme/shop" }, new ConfigError("GITHUB_TOKEN", "must be printable characters without spaces")],
    ["an API URL that is not http", { GITLAB_URL: "ftp://gitlab.example.com" }, new ConfigError("GITLAB_URL", "must be an http:// or https:// URL")],
    ["a timeout of 0", { ARBEIDER_REPORT_TIMEOUT: "0" }, new ConfigError("ARBEIDER_REPORT_TIMEOUT", "must be at least 1")],
  ];
  for (const [name, env, error] of problems) test(`${name} is refused`, () => expect(() => load(env)).toThrow(error));

  test("a bad notification URL is named by its place, not its text", () => {
    const secretish = "slack+ftp://hooks.slack.com/services/T/B/s3cr3t";
    let message = "";
    try {
      load({ ARBEIDER_NOTIFY_URLS: `https://ok.example.com,${secretish}` });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toBe("ARBEIDER_NOTIFY_URLS: item 2 must be an http:// or https:// URL, or slack+https:// for Slack");
  });
});
