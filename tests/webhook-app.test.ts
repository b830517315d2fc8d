/**
 * The webhook's HTTP app in-process (`app.request()`), with a recording
 * `publish` in place of the broker that hands what goes to the history back
 * to the view the way the history reader does: every fixture's answer and
 * what was recorded, every refusal (401/403/404/413/400/415/503), the
 * once-only publish under concurrent retries, and the API with its auth, SSE
 * and metrics. The broker side is covered by webhook-history.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../shared/log.ts";
import { Command, parseJson, type Event, type Heartbeat } from "../shared/protocol.ts";
import { generateKeyPair, parseSigningKey, parseVerifyKeys, verifyBody } from "../shared/signing.ts";
import { BrokerUnavailable } from "../shared/broker.ts";
import { loadWebhookConfig } from "../webhook.ts";
import { createApp } from "../webhook/app.ts";
import { foldHistoryMessage } from "../webhook/history.ts";
import { createSealer } from "../webhook/records.ts";
import { githubSignature } from "../webhook/secrets.ts";
import { createView } from "../webhook/view.ts";

const FIXTURES = join(import.meta.dir, "fixtures", "webhooks");
const API_KEY = "fixture-codeship-key-77b0";
const GITHUB_SECRET = "fixture-github-secret-9c1e";
const GITLAB_TOKEN = "fixture-gitlab-token-51ad";

/** The receiver configuration the fixtures' README assumes. */
const FIXTURE_ENV: Record<string, string> = {
  ARBEIDER_FLEET: "app-test",
  ARBEIDER_SIGNING_KEY_FILE: "/not/read/here",
  ARBEIDER_API_KEY: API_KEY,
  ARBEIDER_BRANCHES: "master,main",
  CODESHIP_PROJECT_ID: "412345",
  GITHUB_WEBHOOK_SECRET: GITHUB_SECRET,
  GITHUB_REPOSITORY: "acme/shop",
  GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN,
  GITLAB_PROJECT_ID: "2231",
};

const keys = generateKeyPair();
const signingKey = parseSigningKey(keys.signingPem);
const verifyKeys = parseVerifyKeys(keys.verifyPem);
const sealer = createSealer(signingKey, verifyKeys);

interface Published {
  exchange: string;
  routingKey: string;
  body: Uint8Array;
  options?: { messageId?: string; headers?: Record<string, string> };
}

/** An app with a recording publish, an in-memory view and a log kept in memory. */
function harness(env: Record<string, string | undefined> = {}, clock: { now?: () => number } = {}) {
  const config = loadWebhookConfig({ ...FIXTURE_ENV, ...env });
  const published: Published[] = [];
  const lines: string[] = [];
  const write = (level: string) => (msg: string, fields?: object) => void lines.push(JSON.stringify({ level, msg, ...fields }));
  const log: Logger = { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
  const state = {
    connected: true,
    /** When set, publish waits for this promise first (to hold a request in flight). */
    gate: undefined as Promise<void> | undefined,
    /** When set, the next publish fails like a broker that did not confirm. */
    fail: false,
    /** How many publishes were attempted. */
    arrivals: 0,
  };
  const view = createView({ now: clock.now });
  view.goLive();
  const app = createApp({
    config,
    signingKey,
    sealer,
    log,
    view,
    connected: () => state.connected,
    now: clock.now,
    keepAliveMs: 50,
    publish: async (exchange, routingKey, body, options) => {
      state.arrivals++;
      if (state.gate) await state.gate;
      if (state.fail) {
        state.fail = false;
        throw new BrokerUnavailable(`Cannot publish to ${exchange}: no confirm within 10 ms`);
      }
      published.push({ exchange, routingKey, body, options });
      // The history stream brings what goes to `deployment.*` back a moment later.
      if (routingKey.startsWith("deployment.")) {
        queueMicrotask(() => foldHistoryMessage({ content: body, properties: { headers: options?.headers }, fields: { routingKey } }, { view, log, sealer }));
      }
    },
  });
  const commands = () => published.filter((p) => p.exchange.endsWith(".commands"));
  const events = () => published.filter((p) => p.exchange.endsWith(".events")).map((p) => JSON.parse(new TextDecoder().decode(p.body)) as Event);
  return { app, config, view, state, published, commands, events, lines };
}

interface FixtureCase {
  file: string;
  provider: string;
  headers: Record<string, string>;
  query?: Record<string, string>;
  expect: "deploy" | "ignore" | "reject";
  status: number;
  deployment?: string;
  branch: string | null;
  commit: string | null;
}

const CASES: FixtureCase[] = JSON.parse(readFileSync(join(FIXTURES, "cases.json"), "utf8"));
const fixtureBytes = (file: string) => new Uint8Array(readFileSync(join(FIXTURES, file)));

function send(app: ReturnType<typeof harness>["app"], c: Pick<FixtureCase, "provider" | "headers" | "query">, body: BodyInit) {
  const query = c.query ? `?${new URLSearchParams(c.query)}` : "";
  return app.request(`/hooks/${c.provider}${query}`, { method: "POST", headers: c.headers, body });
}

const caseOf = (file: string) => CASES.find((c) => c.file === file)!;
const bearer = { Authorization: `Bearer ${API_KEY}` };
const json = { "Content-Type": "application/json" };

describe("every fixture gets its documented answer", () => {
  for (const c of CASES) {
    test(`${c.file}: ${c.status} ${c.expect}`, async () => {
      const h = harness();
      const res = await send(h.app, c, fixtureBytes(c.file));
      expect(res.status).toBe(c.status);
      const body = await res.json();
      if (c.expect === "deploy") {
        expect(body).toEqual({ deployment: c.deployment, duplicate: false });
        // An update is a rollout: its created record goes to the history; the driver sends the waves.
        expect(h.commands()).toHaveLength(0);
        const [sent] = h.published;
        expect(sent.routingKey).toBe(`deployment.${c.deployment}`);
        expect(verifyBody(sent.body, sent.options?.headers?.["x-arbeider-signature"], verifyKeys)).toBe(true);
        const [created] = h.events();
        const command = parseJson(Command, JSON.stringify(created.spec));
        expect(command.ok && command.value).toMatchObject({
          id: c.deployment,
          deployment: c.deployment,
          fleet: "app-test",
          target: "all",
          command: "update",
          args: { branch: c.branch, commit: c.commit },
          source: { provider: c.provider },
        });
        expect(created).toMatchObject({ state: "created", deployment: c.deployment, expected: [], waves: [], strategy: { waves: ["100%"], on_failure: "rollback" } });
        // No node was online: it is recorded queued, with the reason, for the nodes to converge to.
        expect(created.reason).toContain("no online node matches all");
      } else {
        expect(typeof body.ignored).toBe("string");
        expect(h.published).toHaveLength(0);
      }
    });
  }
});

describe("refusals", () => {
  const codeship = caseOf("codeship-success-master.json");
  const github = caseOf("github-workflow_run-success.json");
  const gitlab = caseOf("gitlab-pipeline-success.json");

  test("missing or wrong credentials: 401 and nothing published", async () => {
    const h = harness();
    const attempts: [Pick<FixtureCase, "provider" | "headers" | "query">, string][] = [
      [{ ...codeship, query: undefined }, codeship.file],
      [{ ...codeship, query: { api_key: "fixture-codeship-key-77b1" } }, codeship.file],
      [{ ...github, headers: { ...github.headers, "X-Hub-Signature-256": "" } }, github.file],
      [{ ...github, headers: { ...github.headers, "X-Hub-Signature-256": "sha256=not-hex" } }, github.file],
      [{ ...github, headers: { ...github.headers, "X-Hub-Signature-256": githubSignature("another secret", fixtureBytes(github.file)) } }, github.file],
      [{ ...gitlab, headers: { ...gitlab.headers, "X-Gitlab-Token": "" } }, gitlab.file],
      [{ ...gitlab, headers: { ...gitlab.headers, "X-Gitlab-Token": "fixture-gitlab-token-51ae" } }, gitlab.file],
    ];
    for (const [c, file] of attempts) {
      const res = await send(h.app, c, fixtureBytes(file));
      expect(res.status).toBe(401);
      expect((await res.json()).error).toContain("credentials");
    }
    expect(h.published).toHaveLength(0);
  });

  test("a GitHub body changed after signing is refused: the HMAC covers the raw bytes", async () => {
    const h = harness();
    const reformatted = JSON.stringify(JSON.parse(new TextDecoder().decode(fixtureBytes(github.file))));
    expect((await send(h.app, github, reformatted)).status).toBe(401);
  });

  test("another project or repository: 403", async () => {
    const h = harness({ CODESHIP_PROJECT_ID: "1", GITHUB_REPOSITORY: "acme/other", GITLAB_PROJECT_ID: "1" });
    for (const c of [codeship, github, gitlab]) expect((await send(h.app, c, fixtureBytes(c.file))).status).toBe(403);
    expect(h.published).toHaveLength(0);
  });

  test("a provider that is not configured: 404 saying what enables it", async () => {
    const h = harness({ GITLAB_WEBHOOK_TOKEN: undefined, GITLAB_PROJECT_ID: undefined, CODESHIP_PROJECT_ID: undefined });
    const res = await send(h.app, gitlab, fixtureBytes(gitlab.file));
    expect(res.status).toBe(404);
    expect((await res.json()).error).toContain("GITLAB_WEBHOOK_TOKEN");
    expect((await send(h.app, codeship, fixtureBytes(codeship.file))).status).toBe(404);
  });

  test("a body over ARBEIDER_MAX_BODY: 413, with or without Content-Length", async () => {
    const h = harness({ ARBEIDER_MAX_BODY: "200" });
    const bytes = fixtureBytes(codeship.file);
    expect((await send(h.app, codeship, bytes)).status).toBe(413);
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, 150));
        controller.enqueue(bytes.slice(150));
        controller.close();
      },
    });
    const res = await h.app.request(`/hooks/codeship?api_key=${API_KEY}`, { method: "POST", headers: json, body: chunked, duplex: "half" } as RequestInit);
    expect(res.status).toBe(413);
    const api = await h.app.request("/api/deployments", { method: "POST", headers: { ...bearer, ...json }, body: JSON.stringify({ command: "ping", pad: "x".repeat(300) }) });
    expect(api.status).toBe(413);
    expect((await api.json()).error).toContain("ARBEIDER_MAX_BODY");
    expect(h.published).toHaveLength(0);
  });

  test("malformed JSON: 400 saying so", async () => {
    const h = harness();
    const res = await send(h.app, codeship, '{"build": {');
    expect(res.status).toBe(400);
    expect((await res.json()).error).toStartWith("body is not valid JSON");
  });

  test("JSON that is not an object: 400 naming the body, at the hooks and the API", async () => {
    const h = harness();
    for (const body of ["null", "[]", '"build"', "7"]) {
      for (const res of [
        await send(h.app, codeship, body),
        await h.app.request("/api/deployments", { method: "POST", headers: { ...bearer, ...json }, body }),
      ]) {
        expect(res.status).toBe(400);
        expect((await res.json()).error).toBe("body: must be a JSON object");
      }
    }
    expect(h.published).toHaveLength(0);
  });

  test("a missing field: 400 naming the field", async () => {
    const h = harness();
    const payload = JSON.parse(new TextDecoder().decode(fixtureBytes(codeship.file)));
    delete payload.build.commit_id;
    const res = await send(h.app, codeship, JSON.stringify(payload));
    expect(res.status).toBe(400);
    expect((await res.json()).error).toStartWith("build.commit_id:");
    const gitlabPayload = JSON.parse(new TextDecoder().decode(fixtureBytes(gitlab.file)));
    delete gitlabPayload.project;
    const res2 = await send(h.app, gitlab, JSON.stringify(gitlabPayload));
    expect(res2.status).toBe(400);
    expect((await res2.json()).error).toStartWith("project:");
  });

  test("a GitHub delivery without X-GitHub-Event: 400 naming the header", async () => {
    const h = harness();
    const { ["X-GitHub-Event"]: _, ...headers } = github.headers;
    const res = await send(h.app, { ...github, headers }, fixtureBytes(github.file));
    expect(res.status).toBe(400);
    expect((await res.json()).error).toContain("X-GitHub-Event");
  });

  test("a form-encoded GitHub delivery: 415 asking for application/json", async () => {
    const h = harness();
    const body = `payload=${encodeURIComponent(new TextDecoder().decode(fixtureBytes(github.file)))}`;
    const headers = {
      ...github.headers,
      "Content-Type": "application/x-www-form-urlencoded",
      "X-Hub-Signature-256": githubSignature(GITHUB_SECRET, new TextEncoder().encode(body)),
    };
    const res = await send(h.app, { ...github, headers }, body);
    expect(res.status).toBe(415);
    expect((await res.json()).error).toContain("application/json");
  });

  test("broker not connected: 503 broker unavailable with Retry-After, nothing published", async () => {
    const h = harness();
    h.state.connected = false;
    const res = await send(h.app, codeship, fixtureBytes(codeship.file));
    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toBe("5");
    expect(await res.json()).toEqual({ error: "broker unavailable" });
    expect(h.published).toHaveLength(0);
    expect((await h.app.request("/healthz")).status).toBe(503);
  });

  test("no confirm: 503, and the CI's retry deploys", async () => {
    const h = harness();
    h.state.fail = true;
    const res = await send(h.app, codeship, fixtureBytes(codeship.file));
    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toBe("5");
    expect(h.published).toHaveLength(0);
    const retry = await send(h.app, codeship, fixtureBytes(codeship.file));
    expect(retry.status).toBe(202);
    expect(h.events().filter((e) => e.state === "created")).toHaveLength(1);
  });
});

describe("duplicates", () => {
  const codeship = caseOf("codeship-success-master.json");

  test("the same build again: 200 duplicate, nothing published", async () => {
    const h = harness();
    expect((await send(h.app, codeship, fixtureBytes(codeship.file))).status).toBe(202);
    const again = await send(h.app, codeship, fixtureBytes(codeship.file));
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ deployment: "codeship-70811234", duplicate: true });
    expect(h.published).toHaveLength(1);
  });

  test("concurrent retries of one build publish once", async () => {
    const h = harness();
    let open!: () => void;
    h.state.gate = new Promise((resolve) => (open = resolve));
    const requests = Array.from({ length: 5 }, () => send(h.app, codeship, fixtureBytes(codeship.file)));
    // Let every request read its body and reach the deployer while the first publish is held.
    for (let turn = 0; turn < 50; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(h.state.arrivals).toBe(1);
    open();
    const statuses = (await Promise.all(requests)).map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 200, 200, 202]);
    expect(h.published).toHaveLength(1);
  });

  test("a deployment known from history is a duplicate", async () => {
    const h = harness();
    const created = JSON.parse(new TextDecoder().decode((await deployOnce()).body));
    h.view.apply({ kind: "event", event: created });
    const res = await send(h.app, codeship, fixtureBytes(codeship.file));
    expect(await res.json()).toEqual({ deployment: "codeship-70811234", duplicate: true });
    expect(h.published).toHaveLength(0);
  });

  /** The created record another replica published for the Codeship fixture. */
  async function deployOnce(): Promise<Published> {
    const other = harness();
    await send(other.app, codeship, fixtureBytes(codeship.file));
    return other.published[0];
  }
});

describe("routing from ARBEIDER_BRANCHES", () => {
  test("staging=group:staging and canary=node:web-1 target the group and the node", async () => {
    const h = harness({ ARBEIDER_BRANCHES: "master,staging=group:staging,canary=node:web-1" });
    const codeship = caseOf("codeship-success-master.json");
    const payload = JSON.parse(new TextDecoder().decode(fixtureBytes(codeship.file)));
    for (const [branch, build] of [["staging", 1], ["canary", 2]] as const) {
      payload.build.branch = branch;
      payload.build.build_id = build;
      expect((await send(h.app, codeship, JSON.stringify(payload))).status).toBe(202);
    }
    expect(h.events().map((e) => e.spec?.target)).toEqual(["group:staging", "node:web-1"]);
  });
});

const heartbeat = (node: string, groups: string[] = []): Heartbeat => ({
  v: 1, node, groups, commit: "abcdef0", branch: "master", busy: false, version: "0.1.0", at: new Date().toISOString(),
});

describe("API", () => {
  test("Bearer and Basic (password = key, any user) are accepted; anything else is 401", async () => {
    const h = harness();
    expect((await h.app.request("/api/deployments", { headers: bearer })).status).toBe(200);
    expect((await h.app.request("/api/deployments", { headers: { Authorization: `Basic ${btoa(`ops:${API_KEY}`)}` } })).status).toBe(200);
    const refused: Record<string, string>[] = [{}, { Authorization: "Bearer wrong-key-wrong-key" }, { Authorization: `Basic ${btoa("ops:wrong")}` }, { Authorization: "Bearer" }];
    for (const headers of refused) {
      const res = await h.app.request("/api/deployments", { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get("WWW-Authenticate")).toContain("Basic");
    }
  });

  test("POST /api/deployments publishes any command to any target and records the online nodes it expects", async () => {
    const h = harness();
    h.view.heartbeat(heartbeat("web-1", ["web"]));
    h.view.heartbeat(heartbeat("web-2", ["web"]));
    h.view.heartbeat(heartbeat("db-1", ["db"]));
    const res = await h.app.request("/api/deployments", {
      method: "POST",
      headers: { ...bearer, ...json },
      body: JSON.stringify({ command: "signal", target: "group:web", args: { service: "app", signal: "HUP" } }),
    });
    expect(res.status).toBe(202);
    const { deployment, duplicate } = await res.json();
    expect(deployment).toMatch(/^api-[0-9a-f-]{36}$/);
    expect(duplicate).toBe(false);
    expect(h.commands()[0].routingKey).toBe("group.web");
    const served = await (await h.app.request(`/api/deployments/${deployment}`, { headers: bearer })).json();
    expect(served).toMatchObject({ id: deployment, command: "signal", target: "group:web", state: "queued", expected: ["web-1", "web-2"], source: { provider: "api" } });
  });

  test("POST /api/deployments validates with the protocol's schema and names the field", async () => {
    const h = harness();
    const post = (body: unknown, headers: Record<string, string> = json) =>
      h.app.request("/api/deployments", { method: "POST", headers: { ...bearer, ...headers }, body: JSON.stringify(body) });
    const cases: [unknown, string][] = [
      [{ command: "update" }, "args"],
      [{ command: "update", args: { branch: "--upload-pack=x" } }, "args.branch"],
      // Pinned commits: without ARBEIDER_ORIGIN_URL the webhook cannot resolve the tip itself.
      [{ command: "update", args: { branch: "master" } }, "args.commit"],
      [{ command: "update", args: { branch: "master", commit: "abcdef0" }, strategy: "waves=zero" }, "strategy"],
      [{ command: "ping", strategy: "waves=1" }, "strategy"],
      [{ command: "ping", target: "everyone" }, "target"],
      [{ command: "reboot" }, "command"],
    ];
    for (const [body, field] of cases) {
      const res = await post(body);
      expect(res.status).toBe(400);
      expect((await res.json()).error).toStartWith(`${field}:`);
    }
    expect((await post({ command: "ping" }, { "Content-Type": "text/plain" })).status).toBe(415);
    const none = await h.app.request("/api/deployments", { method: "POST", headers: bearer, body: '{"command":"ping"}' });
    expect(none.status).toBe(415);
    expect((await none.json()).error).toBe("content type must be application/json, none was given");
    expect(h.published).toHaveLength(0);
  });

  test("GET /api/deployments lists newest first and honours ?limit=", async () => {
    // A clock of our own: one deployment a second, so the order is the creation order.
    let now = Date.now();
    const h = harness({}, { now: () => now });
    const created: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await h.app.request("/api/deployments", { method: "POST", headers: { ...bearer, ...json }, body: '{"command":"ping","allowEmpty":true}' });
      created.push((await res.json()).deployment);
      now += 1000;
    }
    const all = (await (await h.app.request("/api/deployments", { headers: bearer })).json()).deployments;
    expect(all).toHaveLength(3);
    expect(all.map((d: { id: string }) => d.id)).toEqual(created.reverse());
    expect(all.map((d: { createdAt: string }) => d.createdAt)).toEqual(all.map((d: { createdAt: string }) => d.createdAt).sort().reverse());
    const two = (await (await h.app.request("/api/deployments?limit=2", { headers: bearer })).json()).deployments;
    expect(two.map((d: { id: string }) => d.id)).toEqual(all.slice(0, 2).map((d: { id: string }) => d.id));
    const bad = await h.app.request("/api/deployments?limit=lots", { headers: bearer });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toStartWith("limit:");
    expect((await h.app.request("/api/deployments/nope", { headers: bearer })).status).toBe(404);
  });

  test("GET /api/nodes lists heartbeats with lastSeen and online", async () => {
    let now = Date.parse("2026-01-01T00:00:00Z");
    const view = createView({ now: () => now });
    view.heartbeat(heartbeat("a", ["web"]));
    now += 2_000;
    view.heartbeat(heartbeat("a", ["web"]));
    view.heartbeat(heartbeat("b"));
    now += 7_000; // a: 3 periods of 2 s are over; b: its period is not known yet, so 15 s is assumed.
    expect(view.nodes().map((n) => [n.node, n.online])).toEqual([["a", false], ["b", true]]);
    expect(view.nodes()[0]).toMatchObject({ node: "a", groups: ["web"], commit: "abcdef0", branch: "master", busy: false, lastSeen: "2026-01-01T00:00:02.000Z" });
    expect(view.expectedFor("all").map((n) => n.node)).toEqual(["b"]);
    // A node that states its period keeps it, however many extra beats (after commands) come close together.
    for (const gap of [0, 300, 300, 300]) {
      now += gap;
      view.heartbeat({ ...heartbeat("c"), period: 2 });
    }
    now += 5_500;
    expect(view.nodes().find((n) => n.node === "c")!.online).toBe(true);
    now += 1_000;
    expect(view.nodes().find((n) => n.node === "c")!.online).toBe(false);

    const h = harness();
    h.view.heartbeat(heartbeat("web-1", ["web"]));
    const { nodes } = await (await h.app.request("/api/nodes", { headers: bearer })).json();
    expect(nodes).toMatchObject([{ node: "web-1", groups: ["web"], online: true }]);
  });

  test("a node that states its period stays online for three of them, also after the beat that follows a command", async () => {
    let now = Date.parse("2026-01-01T00:00:00Z");
    const view = createView({ now: () => now });
    const every15 = (node: string) => ({ ...heartbeat(node), period: 15 });
    for (const node of ["stated", "learned"]) view.heartbeat(node === "stated" ? every15(node) : heartbeat(node));
    // Both ran a command 1.2 s after starting, and beat at once after it.
    now += 1_200;
    for (const node of ["stated", "learned"]) view.heartbeat(node === "stated" ? every15(node) : heartbeat(node));
    now += 6_000; // 3 x 1.2 s are over, 3 x 15 s are not; the next periodic beat is 8 s away.
    expect(view.nodes().map((n) => [n.node, n.online])).toEqual([["learned", false], ["stated", true]]);
    now += 37_000; // 43 s after its last beat
    expect(view.node("stated")?.online).toBe(true);
    now += 2_500;
    expect(view.node("stated")?.online).toBe(false);
  });

  test("a node that goes silent is told to listeners once, when it goes offline, and again when it is back", () => {
    let now = Date.parse("2026-01-01T00:00:00Z");
    const view = createView({ now: () => now });
    view.goLive();
    const told: [string, boolean][] = [];
    view.subscribe((m) => m.kind === "node" && told.push([m.node, view.node(m.node)!.online]));
    view.heartbeat({ ...heartbeat("quiet"), period: 2 });
    view.heartbeat({ ...heartbeat("beating"), period: 2 });
    for (let i = 0; i < 4; i++) {
      now += 2_000;
      view.heartbeat({ ...heartbeat("beating"), period: 2 });
      view.tick();
    }
    // quiet went offline at the tick 8 s after its last beat (three periods of 2 s); later ticks say nothing more.
    now += 1_000;
    view.tick();
    view.tick();
    view.heartbeat({ ...heartbeat("quiet"), period: 2 });
    view.tick();
    expect(told.filter(([node]) => node === "quiet")).toEqual([["quiet", true], ["quiet", false], ["quiet", true]]);
    expect(told.filter(([node]) => node === "beating").every(([, online]) => online)).toBe(true);
  });

  test("GET /api/events streams each event, the deployment after it, and heartbeats", async () => {
    const h = harness();
    const res = await h.app.request("/api/events", { headers: bearer });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reader = res.body!.getReader();
    let text = "";
    const readUntil = async (fragment: string) => {
      while (!text.includes(fragment)) text += new TextDecoder().decode((await reader.read()).value);
    };
    await readUntil(": connected");
    h.view.heartbeat(heartbeat("web-1"));
    await h.app.request("/api/deployments", { method: "POST", headers: { ...bearer, ...json }, body: '{"command":"ping"}' });
    await readUntil("event: heartbeat");
    await readUntil(": keep-alive");
    await reader.cancel();
    expect(text).toContain("event: deployment\ndata: {");
    expect(text).toContain('"state":"created"');
    expect(text).toContain("event: state\ndata: {");
    expect(text).toContain('"state":"queued"');
    expect(text).toContain("event: node\ndata: {");
  });
});

describe("health, metrics, dashboard and secrets", () => {
  test("/healthz is 200 {ok:true} while connected", async () => {
    const h = harness();
    const res = await h.app.request("/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
  });

  test("/metrics counts webhooks by provider and outcome, HTTP requests by route, and says what runs", async () => {
    const h = harness();
    for (const c of CASES) await send(h.app, c, fixtureBytes(c.file));
    await send(h.app, { ...caseOf("codeship-success-master.json"), query: undefined }, "{}");
    const text = await (await h.app.request("/metrics")).text();
    expect(text).toContain('arbeider_webhooks_total{provider="codeship",outcome="deployed"} 1');
    expect(text).toContain('arbeider_webhooks_total{provider="codeship",outcome="ignored"} 4');
    expect(text).toContain('arbeider_webhooks_total{provider="codeship",outcome="unauthorized"} 1');
    expect(text).toContain('arbeider_webhooks_total{provider="github",outcome="ignored"} 4');
    // Updates are rollouts: the driver publishes their commands, not the door that accepted them.
    expect(text).not.toContain('arbeider_commands_published_total{command="update"}');
    expect(text).toContain('arbeider_http_requests_total{method="POST",route="/hooks/codeship",status="202"} 1');
    expect(text).toContain('arbeider_http_requests_total{method="POST",route="/hooks/codeship",status="401"} 1');
    expect(text).toMatch(/arbeider_build_info\{version="[^"]+",runtime="bun"\} 1/);
    expect(text).toContain("# TYPE arbeider_deployments_total counter");
    expect(text).toContain("arbeider_nodes_online 0");
    expect(text).toContain('arbeider_deployment_duration_seconds_bucket{le="+Inf"} 0');
  });

  test("GET / asks for Basic credentials and shows the page with the key as password", async () => {
    const h = harness();
    const denied = await h.app.request("/");
    expect(denied.status).toBe(401);
    expect(denied.headers.get("WWW-Authenticate")).toStartWith("Basic");
    const page = await h.app.request("/", { headers: { Authorization: `Basic ${btoa(`me:${API_KEY}`)}` } });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
  });

  test("no response or log line contains a secret", async () => {
    const h = harness();
    const bodies: string[] = [];
    for (const c of CASES) bodies.push(await (await send(h.app, c, fixtureBytes(c.file))).text());
    for (const c of CASES) bodies.push(await (await send(h.app, { ...c, query: { api_key: "wrong-key-wrong-key" } }, "{")).text());
    bodies.push(await (await h.app.request("/api/deployments", { headers: bearer })).text());
    bodies.push(await (await h.app.request("/metrics")).text());
    const everything = [...bodies, ...h.lines].join("\n");
    expect(h.lines.length).toBeGreaterThan(10);
    for (const secret of [API_KEY, GITHUB_SECRET, GITLAB_TOKEN, keys.signingPem.split("\n")[1]]) expect(everything).not.toContain(secret);
  });
});
