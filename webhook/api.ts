/**
 * `/api/*`: deploy any command to any target, approve or abort a rollout,
 * read deployments and nodes, and follow every change live as Server-Sent
 * Events (webhook/sse.ts). Callers authenticate with `Authorization: Bearer
 * KEY` or, for the dashboard in a browser, HTTP Basic with the key as
 * password (any user name); a change asked for with Basic from a page of
 * another origin is refused.
 */
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { basicAuth } from "hono/basic-auth";
import { bearerAuth } from "hono/bearer-auth";
import { some } from "hono/combine";
import { HTTPException } from "hono/http-exception";
import { streamSSE } from "hono/streaming";
import { randomUUID } from "node:crypto";
import * as v from "valibot";
import type { WebhookEnv } from "../shared/config.ts";
import { Action, PROTOCOL_VERSION, Target, describeIssues } from "../shared/protocol.ts";
import type { Decision } from "../shared/records.ts";
import { FINISHED, deploymentState } from "../shared/served.ts";
import { StrategyError, mergeStrategies, parseStrategy } from "../shared/strategy.ts";
import type { Deploy } from "./deployer.ts";
import { parseJsonObject, readBody, requireJson, requireSameOrigin } from "./http.ts";
import { branchTip } from "./origin.ts";
import type { Recorder } from "./records.ts";
import { safeEqual } from "./secrets.ts";
import type { SseHub } from "./sse.ts";
import type { View } from "./view.ts";

export interface ApiOptions {
  config: WebhookEnv;
  deploy: Deploy;
  record: Recorder;
  view: View;
  sse: SseHub;
  now?: () => number;
  /** Milliseconds between SSE keep-alive comments. */
  keepAliveMs?: number;
}

/** What `POST /api/deployments` takes: a command with its args, a target (default `all`), a strategy for an update. */
export const DeployBody = v.intersect([
  v.object({ target: v.optional(Target, "all"), strategy: v.optional(v.string()), allowEmpty: v.optional(v.boolean(), false) }),
  Action,
]);

const Limit = v.pipe(
  v.optional(v.string(), "50"),
  v.regex(/^\d+$/, "must be a whole number"),
  v.transform(Number),
  v.minValue(1, "must be at least 1"),
  v.maxValue(1000, "must be at most 1000"),
);

/** HTTP Basic with the key as password and any user name, as a browser sends it; constant time. */
export function basicKeyAuth(apiKey: string): MiddlewareHandler {
  return basicAuth({ realm: "arbeider", verifyUser: (_user, password) => safeEqual(apiKey, password) });
}

/** Bearer, or Basic with the key as password: both compared in constant time. */
export function keyAuth(apiKey: string): MiddlewareHandler {
  return some(bearerAuth({ verifyToken: (token) => safeEqual(apiKey, token) }), basicKeyAuth(apiKey));
}

/** How long a request about a deployment not known yet waits for its record before the 404. */
const KNOWN_WITHIN_MS = 1000;

const viaBrowser = (c: Context) => /^basic /i.test(c.req.header("authorization") ?? "");

export function apiRoutes(options: ApiOptions): Hono {
  const { view, deploy, config } = options;
  const now = options.now ?? Date.now;
  const app = new Hono();
  app.use("*", keyAuth(config.ARBEIDER_API_KEY));
  app.use("*", async (c, next) => {
    if (c.req.method === "POST") {
      if (viaBrowser(c)) requireSameOrigin(c, config.ARBEIDER_PUBLIC_URL);
      requireJson(c, { required: true });
    }
    await next();
  });

  app.post("/deployments", async (c) => {
    const parsed = v.safeParse(DeployBody, parseJsonObject(await readBody(c, config.ARBEIDER_MAX_BODY)));
    if (!parsed.success) throw new HTTPException(400, { message: describeIssues(parsed.issues) });
    const { target, strategy, allowEmpty, ...action } = parsed.output;
    const request = { deployment: `api-${randomUUID()}`, target, action: action as Action, source: { provider: "api" as const } };
    if (action.command !== "update") {
      if (strategy !== undefined) throw new HTTPException(400, { message: "strategy: only an update is rolled out in waves" });
      return c.json(await deploy({ ...request, whenNoNode: allowEmpty ? "queue" : "refuse" }), 202);
    }
    const commit = action.args.commit ?? (await branchTip(config.ARBEIDER_ORIGIN_URL, action.args.branch));
    const result = await deploy({
      ...request,
      action: { command: "update", args: { ...action.args, commit } },
      strategy: rolloutStrategy(config, action.args.branch, strategy),
      whenNoNode: allowEmpty ? "queue" : "refuse",
    });
    return c.json(result, 202);
  });

  app.post("/deployments/:id/approve", async (c) => {
    const record = await found(view, c.req.param("id"));
    if (deploymentState(record) !== "paused") throw new HTTPException(409, { message: `deployment ${record.id} is ${deploymentState(record)}, not paused` });
    await options.record(decision(record.id, now(), { decision: "approve", wave: record.pausedAfter!, by: viaBrowser(c) ? "dashboard" : "api" }));
    return c.json({ deployment: record.id, approved: record.pausedAfter });
  });

  app.post("/deployments/:id/abort", async (c) => {
    const record = await found(view, c.req.param("id"));
    const state = deploymentState(record);
    if (FINISHED.has(state) || record.abort) throw new HTTPException(409, { message: `deployment ${record.id} is ${record.abort ? "aborted already" : state}` });
    if (!record.plan) throw new HTTPException(409, { message: `deployment ${record.id} is a single ${record.spec!.command}, not a rollout: there is nothing to stop` });
    const by = viaBrowser(c) ? "dashboard" : "api";
    await options.record(decision(record.id, now(), { decision: "abort", reason: `aborted by the operator (${by})`, by }));
    return c.json({ deployment: record.id, aborted: true });
  });

  app.get("/deployments", (c) => {
    const limit = v.safeParse(Limit, c.req.query("limit"));
    if (!limit.success) throw new HTTPException(400, { message: `limit: ${limit.issues[0].message}` });
    return c.json({ deployments: view.list(limit.output) });
  });

  app.get("/deployments/:id", async (c) => c.json(view.get((await found(view, c.req.param("id"))).id)));
  app.get("/nodes", (c) => c.json({ nodes: view.nodes() }));
  app.get("/rejections", (c) => c.json({ rejections: view.rejections() }));

  app.get("/events", (c) =>
    streamSSE(c, async (stream) => {
      const deployment = c.req.query("deployment");
      const remove = options.sse.add({ deployment, write: (text) => void stream.write(text).catch(() => {}) });
      stream.onAbort(remove);
      await stream.write(": connected\n\n");
      while (!stream.aborted && !stream.closed) {
        await stream.sleep(options.keepAliveMs ?? 15_000);
        await stream.write(": keep-alive\n\n").catch(() => {});
      }
      remove();
    }),
  );

  return app;
}

/**
 * The deployment `id`, or a 404. One not known yet may be on its way: the 202
 * for it comes when the broker confirmed its record, a moment before the
 * history stream brings that record to this process, so a client that asks
 * at once is given that moment.
 */
async function found(view: View, id: string) {
  if (!view.has(id)) await view.whenKnown(id, KNOWN_WITHIN_MS);
  const record = view.record(id);
  if (!record?.spec) throw new HTTPException(404, { message: `no deployment ${id}` });
  return record;
}

function decision(deployment: string, now: number, fields: Record<string, unknown>): Decision {
  return { v: PROTOCOL_VERSION, deployment, at: new Date(now).toISOString(), ...fields } as Decision;
}

/** ARBEIDER_ROLLOUT, then the branch's entry in ARBEIDER_BRANCHES, then the request's own strategy. */
function rolloutStrategy(config: WebhookEnv, branch: string, given: string | undefined) {
  try {
    return mergeStrategies(config.ARBEIDER_ROLLOUT, config.ARBEIDER_BRANCHES.get(branch)?.strategy ?? {}, parseStrategy(given ?? ""));
  } catch (error) {
    if (error instanceof StrategyError) throw new HTTPException(400, { message: `strategy: ${error.message}` });
    throw error;
  }
}
