/**
 * The dashboard served by the webhook's real HTTP app in-process (Bun.serve),
 * over a view fed by hand: deployments, decisions, node reports and
 * heartbeats as the history reader would fold them, with whatever names,
 * reasons and output a CI or a node could send. For the tests that need
 * shapes no real worker produces on demand (63-character node names, twenty
 * chips, markup in every field); what the app records (approve, abort) is
 * folded back into the view, as the history would bring it.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "../shared/log.ts";
import { PROTOCOL_VERSION, type Command, type Event, type Heartbeat } from "../shared/protocol.ts";
import { commandId, parseRecord, type Decision } from "../shared/records.ts";
import { generateKeyPair, parseSigningKey } from "../shared/signing.ts";
import { mergeStrategies, parseStrategy } from "../shared/strategy.ts";
import { loadWebhookConfig } from "../webhook.ts";
import { createApp } from "../webhook/app.ts";
import { createSealer } from "../webhook/records.ts";
import { createView, type View } from "../webhook/view.ts";

const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
const iso = (ms: number) => new Date(ms).toISOString();

export interface Spec {
  command?: Command["command"];
  target?: string;
  args?: Record<string, string>;
  source?: Record<string, string>;
  expected: string[];
  /** A strategy string: the deployment becomes a rollout of these waves. */
  strategy?: string;
  waves?: string[][];
  /** Milliseconds before now it was created. */
  ageMs?: number;
  reason?: string;
}

/** Serves the app on a free port; `stop()` ends it. */
export function servePage() {
  const apiKey = `k${randomUUID().replaceAll("-", "")}`;
  const config = loadWebhookConfig({ ARBEIDER_FLEET: "page-test", ARBEIDER_SIGNING_KEY_FILE: "/not/read", ARBEIDER_API_KEY: apiKey });
  const signingKey = parseSigningKey(generateKeyPair().signingPem);
  const view = createView();
  view.goLive();
  const app = createApp({
    config,
    signingKey,
    sealer: createSealer(signingKey, []),
    view,
    connected: () => true,
    log: quiet,
    keepAliveMs: 1000,
    // What the app records comes back through the history: fold it in, as the history reader would.
    publish: async (exchange, _key, body) => {
      const parsed = exchange.endsWith(".events") ? parseRecord(body) : undefined;
      if (parsed?.ok) queueMicrotask(() => view.apply(parsed.record));
    },
  });
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch, idleTimeout: 0 });
  const url = `http://127.0.0.1:${server.port}`;
  return { url, apiKey, view, ...feeder(view, config.ARBEIDER_FLEET), stop: () => server.stop(true) };
}

/** Records for `view` as the history reader would fold them: deployments, node reports, decisions, heartbeats. */
export function feeder(view: View, fleet = "page-test") {
  function created(id: string, spec: Spec): void {
    const at = Date.now() - (spec.ageMs ?? 0);
    const command = {
      v: PROTOCOL_VERSION, id, deployment: id, fleet, target: spec.target ?? "all",
      command: spec.command ?? "update", args: spec.args ?? { branch: "master", commit: "a".repeat(40) },
      issuedAt: iso(at), expiresAt: iso(at + 3_600_000), source: spec.source ?? { provider: "api" },
    } as Command;
    const event: Event = { v: PROTOCOL_VERSION, deployment: id, command: id, state: "created", at: iso(at), spec: command, expected: spec.expected };
    if (spec.reason) event.reason = spec.reason;
    if (spec.strategy !== undefined) {
      event.strategy = mergeStrategies(parseStrategy(spec.strategy));
      event.waves = spec.waves ?? [spec.expected];
    }
    view.apply({ kind: "event", event });
  }

  /** A node's report on deployment `id` (its update in a rollout, its rollback, or the single command). */
  function report(id: string, node: string, state: Event["state"], extra: Partial<Event> & { kind?: "update" | "rollback" | "direct" } = {}): void {
    const { kind = "update", ...fields } = extra;
    const command = kind === "direct" ? id : commandId(kind, id, node);
    view.apply({ kind: "event", event: { v: PROTOCOL_VERSION, deployment: id, command, node, state, at: iso(Date.now()), ...fields } });
  }

  function decide(id: string, decision: Record<string, unknown>, atMs = Date.now()): void {
    view.apply({ kind: "decision", decision: { v: PROTOCOL_VERSION, deployment: id, at: iso(atMs), ...decision } as Decision });
  }

  function heartbeat(node: string, fields: Partial<Heartbeat> = {}): void {
    view.heartbeat({ v: PROTOCOL_VERSION, node, groups: [], commit: "a".repeat(40), branch: "master", busy: false, version: "0.1.0", at: iso(Date.now()), ...fields });
  }

  return { created, report, decide, heartbeat };
}
export type PageServer = ReturnType<typeof servePage>;
export type Feed = ReturnType<typeof feeder>;

/** A node name as long as a node id may be. */
export const LONG_NODE = "eu-west-1a-worker-node-with-a-very-long-name-0123456789abcdefghi".slice(0, 63);
const WEB = Array.from({ length: 10 }, (_, i) => `web-${String(i + 1).padStart(2, "0")}`);
export const SCENE_NODES = ["canary-1", ...WEB, LONG_NODE];
const OUTPUT = Array.from({ length: 30 }, (_, i) => `step ${i + 1}: ${i === 29 ? "Error: cannot connect to the database at db.internal:5432 (connection refused)" : "ok"}`).join("\n");

/**
 * A fleet in the middle of things: a rollout baking after wave 2 of 3, a
 * rolled-back one with a failed canary (long reason, 30 lines of output), a
 * paused one, a ping one node rejected, a CI build no node was online for,
 * and a forged command a node refused; nodes in every condition.
 */
export function fillScene(page: Feed): void {
  const now = Date.now();
  const commit = "c".repeat(40);
  page.created("api-rollout-baking", {
    expected: SCENE_NODES, strategy: "waves=1,30%,100% bake=30", waves: [["canary-1"], WEB.slice(0, 3), [...WEB.slice(3), LONG_NODE]],
    args: { branch: "master", commit }, ageMs: 60_000,
  });
  page.decide("api-rollout-baking", { decision: "wave", wave: 1 }, now - 55_000);
  page.report("api-rollout-baking", "canary-1", "succeeded", { commitBefore: "a".repeat(40), commitAfter: commit, durationMs: 4200 });
  page.decide("api-rollout-baking", { decision: "wave", wave: 2 }, now - 40_000);
  for (const node of WEB.slice(0, 3)) page.report("api-rollout-baking", node, "succeeded", { commitAfter: commit, durationMs: 3100 });

  const source = { provider: "codeship", build: "1234", url: "https://app.codeship.com/projects/1/builds/1234", committer: "Jane Doe", message: "Move the price cache to Redis and drop the old memcached client entirely" };
  page.created("codeship-1234", { expected: ["canary-1", "web-01", LONG_NODE], strategy: "waves=1,100%", waves: [["canary-1"], ["web-01", LONG_NODE]], source, ageMs: 600_000 });
  page.decide("codeship-1234", { decision: "wave", wave: 1 }, now - 590_000);
  page.report("codeship-1234", "canary-1", "failed", {
    commitBefore: "b".repeat(40), commitAfter: "d".repeat(40), durationMs: 12_500, output: OUTPUT,
    reason: "unhealthy: health check http://127.0.0.1:8080/healthz did not answer 2xx within 60 s (last: connection refused)",
  });
  page.decide("codeship-1234", { decision: "abort", reason: "1 node failed, 0 tolerated (max_failures): canary-1 failed" });
  page.decide("codeship-1234", { decision: "rollback", nodes: { "canary-1": "b".repeat(40) } });
  page.report("codeship-1234", "canary-1", "succeeded", { kind: "rollback", commitAfter: "b".repeat(40), durationMs: 2000 });

  page.created("api-paused", { expected: ["canary-1", "web-01", "web-02"], strategy: "waves=1,100% approve=1", waves: [["canary-1"], ["web-01", "web-02"]], ageMs: 120_000 });
  page.decide("api-paused", { decision: "wave", wave: 1 }, now - 115_000);
  page.report("api-paused", "canary-1", "succeeded", { commitAfter: commit, durationMs: 900 });
  page.decide("api-paused", { decision: "pause", wave: 1 });

  page.created("api-ping", { command: "ping", args: {}, expected: WEB.slice(0, 6), ageMs: 900_000 });
  for (const node of WEB.slice(0, 5)) page.report("api-ping", node, "succeeded", { kind: "direct", commitAfter: commit, durationMs: 12 });
  page.report("api-ping", WEB[5], "rejected", { kind: "direct", reason: "bad signature: the command was not signed by a trusted key" });
  page.created("github-99-1", { expected: [], source: { provider: "github" }, reason: "no online node matches group:staging: its nodes converge to it when they come online", target: "group:staging", ageMs: 1_200_000 });
  page.report("forged-7f3a", "web-02", "rejected", { kind: "direct", reason: "bad signature: the command was not signed by a trusted key" });

  const special: Record<string, Partial<Heartbeat>> = { "web-05": { dirty: true }, "web-06": { busy: true }, "web-07": { healthy: false }, "web-08": { stopping: true } };
  for (const node of SCENE_NODES) page.heartbeat(node, { groups: node === "canary-1" ? ["canary", "web"] : ["web", "eu-west"], commit, ...special[node] });
}
