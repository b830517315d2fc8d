/**
 * Reporting back with real processes: `bun webhook.ts` (one, two, or one
 * restarted) and `bun worker.ts` nodes on the real broker, each case in a
 * fleet of its own, reporting to local servers that answer like GitHub,
 * GitLab, Slack and a notification receiver (tests/report-receivers.ts).
 * The requests are checked to the header and the JSON; the faults are the
 * ones an operator meets: a receiver down for 30 s, a webhook killed with
 * deliveries pending, two replicas, a receiver answering 400, one that never
 * answers. Each state is delivered once; no deployment waits for a report.
 */
import { describe, expect, test } from "bun:test";
import type { Deployment, ServedReport } from "../shared/served.ts";
import { waitUntil, type Proc } from "./helpers.ts";
import { fakeGithub, fakeGitlab, fakeNotify, fakeSlack, receiver, signatureValid, type Received } from "./report-receivers.ts";
import { startWebhook, type Webhook } from "./stack.ts";
import { withNodes, type Nodes } from "./worker-fixture.ts";

const API_KEY = "report-e2e-api-key-8d2f1c";
const GITHUB_TOKEN = "ghp_e2eFixtureToken5a9c0b1d";
const GITLAB_TOKEN = "glpat-e2eFixtureToken77f3";
const SECRET = "e2e-notify-secret-3c9d5e7f";
const SLACK_PATH = "/services/T0001/B0001/s3cr3tSlackPath";
const PUBLIC = "https://deploy.example.com";

interface Case {
  nodes: Nodes;
  webhooks: Proc[];
  start(env: Record<string, string>): Promise<Webhook>;
  deploy(url: string, commit: string, strategy?: string): Promise<string>;
  get(url: string, id: string): Promise<Deployment>;
}

/** Runs `body` with `ids` workers online in a fleet of its own; stops every webhook it started. */
async function withCase(ids: string[], body: (c: Case) => Promise<void>): Promise<void> {
  await withNodes(ids.map((id) => ({ id })), async (nodes) => {
    const webhooks: Proc[] = [];
    const c: Case = {
      nodes,
      webhooks,
      async start(env) {
        const webhook = await startWebhook({
          ARBEIDER_FLEET: nodes.fleet.fleet, ARBEIDER_SIGNING_KEY_FILE: nodes.keys.signingFile, ARBEIDER_API_KEY: API_KEY,
          ARBEIDER_HISTORY_MAX_AGE: "1h", ...env,
        });
        webhooks.push(webhook.proc);
        await waitUntil(async () => {
          const { nodes: seen } = await api<{ nodes: { online: boolean }[] }>(webhook.url, "/api/nodes");
          return seen.filter((n) => n.online).length === ids.length;
        }, "every node online at the webhook", 20_000);
        return webhook;
      },
      async deploy(url, commit, strategy) {
        const body = { command: "update", args: { branch: "master", commit }, ...(strategy ? { strategy } : {}) };
        return (await api<{ deployment: string }>(url, "/api/deployments", { method: "POST", body: JSON.stringify(body) })).deployment;
      },
      get: (url, id) => api<Deployment>(url, `/api/deployments/${id}`),
    };
    try {
      await Promise.all(ids.map((id) => nodes.start(id, { ARBEIDER_HEARTBEAT_SECONDS: "1" })));
      await body(c);
    } finally {
      for (const proc of webhooks) await proc.stop(5000);
    }
  }, "rep");
}

async function api<T>(url: string, path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(`${url}${path}`, { ...init, headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" } });
  return (await res.json()) as T;
}

/** Waits until `id` has `n` reports and none of them is pending; returns them. */
async function reportsEnded(c: Case, url: string, id: string, n: number, timeoutMs = 30_000): Promise<ServedReport[]> {
  return waitUntil(async () => {
    const reports = (await c.get(url, id)).reports ?? [];
    return reports.length === n && reports.every((r) => r.state !== "pending") ? reports : undefined;
  }, `${n} reports of ${id} ended`, timeoutMs, 200).catch(async (e) => { console.log(JSON.stringify((await c.get(url, id)).reports, null, 1)); throw e; });
}

const finished = (c: Case, url: string, id: string) =>
  waitUntil(async () => {
    const d = await c.get(url, id);
    return d.finishedAt ? d : undefined;
  }, `${id} finished`, 30_000, 100);

/** The notifications of deployment `id` a receiver accepted, as their types. */
const notified = (requests: Received[], id: string) => requests.filter((r) => r.status < 300 && r.body?.deployment?.id === id).map((r) => r.body.type);

const notifyEnv = (urls: string[]) => ({ ARBEIDER_NOTIFY_URLS: urls.join(","), ARBEIDER_NOTIFY_SECRET: SECRET });

describe("reporting back", () => {
  test("GitHub, GitLab, a signed notification and Slack get each state, exactly as their APIs document", async () => {
    const github = fakeGithub(GITHUB_TOKEN, "acme/shop");
    const gitlab = fakeGitlab(GITLAB_TOKEN, "2231");
    const notify = fakeNotify(SECRET);
    const slack = fakeSlack();
    try {
      await withCase(["n1", "n2"], async (c) => {
        const { url, proc } = await c.start({
          GITHUB_TOKEN, GITHUB_API_URL: github.server.url, GITHUB_REPOSITORY: "acme/shop",
          GITLAB_API_TOKEN: GITLAB_TOKEN, GITLAB_URL: gitlab.server.url, GITLAB_PROJECT_ID: "2231",
          ...notifyEnv([`${notify.url}/arbeider`, `slack+${slack.url}${SLACK_PATH}`]),
          ARBEIDER_PUBLIC_URL: PUBLIC, ARBEIDER_ENVIRONMENT: "production",
        });
        const commit = c.nodes.origin.commit("master", { "app.txt": "v2\n" });
        const id = await c.deploy(url, commit);
        expect((await finished(c, url, id)).state).toBe("succeeded");
        const reports = await reportsEnded(c, url, id, 13);
        expect(reports.filter((r) => r.state !== "delivered")).toEqual([]);
        const link = `${PUBLIC}/#deployment=${id}`;

        const [create, ...statuses] = github.server.requests.filter((r) => r.path.includes("/deployments"));
        expect(create.method).toBe("POST");
        expect(create.path).toBe("/repos/acme/shop/deployments");
        expect(create.headers).toMatchObject({
          authorization: `Bearer ${GITHUB_TOKEN}`, accept: "application/vnd.github+json", "x-github-api-version": "2022-11-28",
          "user-agent": expect.stringMatching(/^arbeider\/\d/), "content-type": "application/json",
        });
        expect(create.body).toEqual({
          ref: commit, task: "deploy", auto_merge: false, required_contexts: [], payload: { arbeider: id }, environment: "production",
          description: `update master@${commit.slice(0, 7)} → all`, transient_environment: false,
        });
        const ghId = [...github.deployments.keys()][0];
        expect(statuses.map((r) => [r.path, r.body])).toEqual([
          [`/repos/acme/shop/deployments/${ghId}/statuses`, { state: "queued", log_url: link, description: "0/2 succeeded" }],
          [`/repos/acme/shop/deployments/${ghId}/statuses`, { state: "in_progress", log_url: link, description: "0/2 succeeded, 2 waiting" }],
          [`/repos/acme/shop/deployments/${ghId}/statuses`, { state: "success", log_url: link, description: "2/2 succeeded" }],
        ]);
        expect(github.server.requests.filter((r) => r.path.includes("/statuses/")).map((r) => [r.path, r.body])).toEqual([
          [`/repos/acme/shop/statuses/${commit}`, { state: "pending", target_url: link, description: "0/2 succeeded", context: "arbeider/production" }],
          [`/repos/acme/shop/statuses/${commit}`, { state: "success", target_url: link, description: "2/2 succeeded", context: "arbeider/production" }],
        ]);

        expect(gitlab.server.requests.map((r) => [r.method, r.path, r.headers["private-token"], r.body])).toEqual([
          ["POST", `/api/v4/projects/2231/statuses/${commit}`, GITLAB_TOKEN, { state: "running", ref: "master", name: "arbeider/production", target_url: link, description: "0/2 succeeded" }],
          ["POST", `/api/v4/projects/2231/statuses/${commit}`, GITLAB_TOKEN, { state: "success", ref: "master", name: "arbeider/production", target_url: link, description: "2/2 succeeded" }],
        ]);

        expect(notify.requests.map((r) => r.body.type)).toEqual(["deployment.queued", "deployment.running", "deployment.succeeded"]);
        for (const r of notify.requests) {
          expect(signatureValid(SECRET, r.raw, r.headers["x-arbeider-signature"])).toBe(true);
          expect(r.headers["content-type"]).toBe("application/json");
          expect(Object.keys(r.body)).toEqual(["type", "deployment", "at"]);
          expect(r.body.deployment).toMatchObject({ id, command: "update", state: r.body.type.slice("deployment.".length) });
          expect(Date.parse(r.body.at)).toBeGreaterThan(0);
        }
        expect(new Set(notify.requests.map((r) => r.headers["x-arbeider-delivery"])).size).toBe(3);

        expect(slack.requests.map((r) => [r.path, r.status])).toEqual([[SLACK_PATH, 200], [SLACK_PATH, 200], [SLACK_PATH, 200]]);
        const done = slack.requests[2].body;
        expect(done.text).toBe(`:white_check_mark: ${id} succeeded: update master@${commit.slice(0, 7)} → all: 2/2 succeeded <${link}|open>`);
        expect(done.blocks[1]).toEqual({ type: "section", text: { type: "mrkdwn", text: `✔ n1 succeeded ${commit.slice(0, 7)}\n✔ n2 succeeded ${commit.slice(0, 7)}` } });

        // `deploy.ts status ID` shows where it was reported.
        const cli = Bun.spawn([process.execPath, "scripts/deploy.ts", "status", id], {
          cwd: `${import.meta.dir}/..`, env: { PATH: process.env.PATH ?? "", ARBEIDER_URL: url, ARBEIDER_API_KEY: API_KEY }, stdout: "pipe", stderr: "pipe",
        });
        const [status, code] = await Promise.all([new Response(cli.stdout).text(), cli.exited]);
        expect(code).toBe(0);
        expect(status).toContain("  reported  github ✔ succeeded, github-status ✔ succeeded, gitlab ✔ succeeded, notify:1 ✔ succeeded, slack:2 ✔ succeeded\n");

        // A rollout that fails and is rolled back is a failure on GitHub and GitLab.
        const broken = c.nodes.origin.commit("master", { broken: "yes\n" });
        const bad = await c.deploy(url, broken, "waves=1,100%");
        expect((await finished(c, url, bad)).state).toBe("rolled_back");
        const badReports = await reportsEnded(c, url, bad, 13);
        expect(badReports.map((r) => `${r.target} ${r.event} ${r.state}`)).toContain("gitlab deployment.rolled_back delivered");
        expect([...github.deployments.values()][1].statuses).toEqual(["queued", "in_progress", "failure"]);
        expect(gitlab.server.requests.slice(2).map((r) => r.body.state)).toEqual(["running", "failed"]);
        expect(notified(notify.requests, bad)).toEqual(["deployment.queued", "deployment.running", "deployment.rolled_back"]);

        const metrics = await (await fetch(`${url}/metrics`)).text();
        for (const target of ["github", "github-status", "gitlab", "notify:1", "slack:2"]) expect(metrics).toContain(`arbeider_reports_total{target="${target}",outcome="delivered"}`);
        const shown = `${proc.output()}${JSON.stringify(await api(url, "/api/deployments"))}${metrics}`;
        for (const secret of [GITHUB_TOKEN, GITLAB_TOKEN, SECRET, SLACK_PATH]) expect(shown).not.toContain(secret);
      });
    } finally {
      await Promise.all([github.server.stop(), gitlab.server.stop(), notify.stop(), slack.stop()]);
    }
  }, 120_000);

  test("a receiver down for 30 s gets each state once when it is back; one answering 400 is given up; one that never answers times out; the deployment waits for none", async () => {
    const down = fakeNotify(SECRET);
    const refusing = receiver(() => ({ status: 400, body: { error: "unknown event type" } }));
    const hung = receiver(() => ({ status: 204 }));
    hung.hang = true;
    try {
      await withCase(["n1"], async (c) => {
        const { url } = await c.start({ ...notifyEnv([down.url, refusing.url, hung.url]), ARBEIDER_REPORT_TIMEOUT: "1" });
        await down.down();
        const wentDown = Date.now();
        const id = await c.deploy(url, c.nodes.origin.commit("master", { "app.txt": "v3\n" }));
        const deployment = await finished(c, url, id);
        expect(deployment.state).toBe("succeeded");
        expect(Date.parse(deployment.finishedAt!)).toBeLessThan(wentDown + 30_000);

        const failed = await waitUntil(async () => {
          const reports = ((await c.get(url, id)).reports ?? []).filter((r) => r.target === "notify:2");
          return reports.length === 3 && reports.every((r) => r.state === "failed") ? reports : undefined;
        }, "the three reports to the refusing receiver given up");
        expect(failed.map((r) => [r.event, r.attempts, r.reason])).toEqual([
          ["deployment.queued", 1, "HTTP 400: unknown event type"], ["deployment.running", 1, "HTTP 400: unknown event type"], ["deployment.succeeded", 1, "HTTP 400: unknown event type"],
        ]);
        expect(refusing.requests.length).toBe(3);
        await waitUntil(() => hung.requests.some((r) => r.aborted), "a try to the receiver that never answers abandoned");
        const timedOut = await waitUntil(async () => ((await c.get(url, id)).reports ?? []).find((r) => r.target === "notify:3" && r.attempts >= 1), "a timed-out try recorded");
        expect(timedOut).toMatchObject({ state: "pending", reason: "no answer within 1 s" });
        const metrics = await (await fetch(`${url}/metrics`)).text();
        expect(metrics).toContain('arbeider_reports_total{target="notify:2",outcome="failed"} 3');
        expect(metrics).toMatch(/arbeider_reports_total\{target="notify:3",outcome="timed_out"\} \d/);

        await Bun.sleep(Math.max(0, wentDown + 30_000 - Date.now()));
        down.up();
        const back = Date.now();
        await waitUntil(async () => notified(down.requests, id).length === 3, "the three states delivered after the outage", 90_000, 200);
        expect(notified(down.requests, id)).toEqual(["deployment.queued", "deployment.running", "deployment.succeeded"]);
        const ended = await waitUntil(async () => {
          const reports = ((await c.get(url, id)).reports ?? []).filter((r) => r.target === "notify:1");
          return reports.every((r) => r.state === "delivered") ? reports : undefined;
        }, "their ends recorded");
        expect(ended[0].attempts).toBeGreaterThan(4);
        expect(down.requests.every((r) => r.at >= back)).toBe(true);
      });
    } finally {
      await Promise.all([down.stop(), refusing.stop(), hung.stop()]);
    }
  }, 180_000);

  test("a webhook killed with its deliveries pending: the next one delivers each state once, and a later one repeats none", async () => {
    const notify = fakeNotify(SECRET);
    await notify.down();
    try {
      await withCase(["n1"], async (c) => {
        const env = notifyEnv([notify.url]);
        const first = await c.start(env);
        const id = await c.deploy(first.url, c.nodes.origin.commit("master", { "app.txt": "v4\n" }));
        expect((await finished(c, first.url, id)).state).toBe("succeeded");
        await waitUntil(async () => {
          const reports = (await c.get(first.url, id)).reports ?? [];
          return reports.length === 3 && reports.every((r) => r.state === "pending") && reports[0].attempts >= 1;
        }, "three reports pending, the first tried", 20_000, 100);
        first.proc.child.kill("SIGKILL");
        await first.proc.exited;
        notify.up();

        const second = await c.start(env);
        const reports = await reportsEnded(c, second.url, id, 3);
        expect(reports.map((r) => `${r.event} ${r.state}`)).toEqual(["deployment.queued delivered", "deployment.running delivered", "deployment.succeeded delivered"]);
        expect(notified(notify.requests, id)).toEqual(["deployment.queued", "deployment.running", "deployment.succeeded"]);
        await second.proc.stop(5000);

        const third = await c.start(env);
        await third.proc.waitForLog('"msg":"reporting deployments"', 20_000);
        const next = await c.deploy(third.url, c.nodes.origin.commit("master", { "app.txt": "v5\n" }));
        await reportsEnded(c, third.url, next, 3);
        expect(notified(notify.requests, next)).toEqual(["deployment.queued", "deployment.running", "deployment.succeeded"]);
        expect(notified(notify.requests, id).length).toBe(3);
      });
    } finally {
      await notify.stop();
    }
  }, 120_000);

  test("two replicas: only the driving one reports, each state once; when it dies the other takes over", async () => {
    const notify = fakeNotify(SECRET);
    const delivered = (proc: Proc, id: string) => proc.output().split("\n").filter((line) => line.includes('"msg":"report delivered"') && line.includes(id)).length;
    const states = ["deployment.queued", "deployment.running", "deployment.succeeded"];
    try {
      await withCase(["n1"], async (c) => {
        const env = notifyEnv([notify.url]);
        const a = await c.start(env);
        await a.proc.waitForLog('"msg":"driving rollouts"', 20_000);
        const b = await c.start(env);
        // Deployed through the replica that does not drive.
        const id = await c.deploy(b.url, c.nodes.origin.commit("master", { "app.txt": "v6\n" }));
        await reportsEnded(c, b.url, id, 3);
        expect(notified(notify.requests, id)).toEqual(states);
        expect([delivered(a.proc, id), delivered(b.proc, id)]).toEqual([3, 0]);

        a.proc.child.kill("SIGKILL");
        await a.proc.exited;
        await b.proc.waitForLog('"msg":"driving rollouts"', 20_000);
        const next = await c.deploy(b.url, c.nodes.origin.commit("master", { "app.txt": "v7\n" }));
        await reportsEnded(c, b.url, next, 3);
        expect(notified(notify.requests, next)).toEqual(states);
        expect(delivered(b.proc, next)).toBe(3);
        expect(notified(notify.requests, id)).toEqual(states);
      });
    } finally {
      await notify.stop();
    }
  }, 120_000);
});
