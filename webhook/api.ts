/**
 * `/api/*`: deploy any command to any target, read deployments and nodes, and
 * follow every event live as Server-Sent Events. Callers authenticate with
 * `Authorization: Bearer KEY` or, for the dashboard in a browser, HTTP Basic
 * with the key as password (any user name).
 */
import { Hono, type MiddlewareHandler } from "hono";
import { basicAuth } from "hono/basic-auth";
import { bearerAuth } from "hono/bearer-auth";
import { some } from "hono/combine";
import { streamSSE, type SSEMessage } from "hono/streaming";
import { randomUUID } from "node:crypto";
import * as v from "valibot";
import { Action, Target, describeIssues } from "../shared/protocol.ts";
import type { Deploy } from "./deployer.ts";
import { RequestError } from "./errors.ts";
import { limitBody, parseJsonObject, requireJson } from "./hooks.ts";
import { safeEqual } from "./secrets.ts";
import type { View, ViewMessage } from "./view.ts";

export interface ApiOptions {
  apiKey: string;
  maxBody: number;
  deploy: Deploy;
  view: View;
  /** Milliseconds between SSE keep-alive comments. */
  keepAliveMs?: number;
}

/** What `POST /api/deployments` takes: a command with its args, and a target (default `all`). */
export const DeployBody = v.intersect([v.object({ target: v.optional(Target, "all") }), Action]);

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

export function apiRoutes(options: ApiOptions): Hono {
  const { view, deploy } = options;
  const app = new Hono();
  app.use("*", keyAuth(options.apiKey));

  app.post("/deployments", limitBody(options.maxBody), async (c) => {
    requireJson(c);
    const body = parseJsonObject(new Uint8Array(await c.req.arrayBuffer()));
    const parsed = v.safeParse(DeployBody, body);
    if (!parsed.success) throw new RequestError(400, describeIssues(parsed.issues));
    const { target, ...action } = parsed.output;
    const result = await deploy({ deployment: `api-${randomUUID()}`, target, action: action as Action, source: { provider: "api" } });
    return c.json(result, 202);
  });

  app.get("/deployments", (c) => {
    const limit = v.safeParse(Limit, c.req.query("limit"));
    if (!limit.success) throw new RequestError(400, `limit: ${limit.issues[0].message}`);
    return c.json({ deployments: view.list(limit.output) });
  });

  app.get("/deployments/:id", (c) => {
    const deployment = view.get(c.req.param("id"));
    if (!deployment) throw new RequestError(404, `no deployment ${c.req.param("id")}`);
    return c.json(deployment);
  });

  app.get("/nodes", (c) => c.json({ nodes: view.nodes() }));

  app.get("/events", (c) =>
    streamSSE(c, async (stream) => {
      const unsubscribe = view.subscribe((message) => {
        for (const m of sse(message)) stream.writeSSE(m).catch(() => {});
      });
      stream.onAbort(unsubscribe);
      await stream.write(": connected\n\n");
      while (!stream.aborted && !stream.closed) {
        await stream.sleep(options.keepAliveMs ?? 15_000);
        await stream.write(": keep-alive\n\n").catch(() => {});
      }
      unsubscribe();
    }),
  );

  return app;
}

/**
 * SSE messages: `deployment` carries each event exactly as published,
 * `state` the deployment as `/api/deployments/:id` serves it after that
 * event, `heartbeat` each node heartbeat.
 */
function sse(message: ViewMessage): SSEMessage[] {
  if (message.kind === "heartbeat") return [{ event: "heartbeat", data: JSON.stringify(message.heartbeat) }];
  const out: SSEMessage[] = [{ event: "deployment", data: JSON.stringify(message.event) }];
  if (message.deployment) out.push({ event: "state", data: JSON.stringify(message.deployment) });
  return out;
}
