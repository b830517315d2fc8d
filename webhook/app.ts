/**
 * The webhook's HTTP application, built from its collaborators so tests can
 * call `app.request()` in-process with real or recorded ones: the config, a
 * confirmed `publish`, the record sealer, the view rebuilt from the history
 * and a `connected` probe. Routes live in webhook/hooks.ts, webhook/api.ts and
 * webhook/dashboard.ts; this file composes them and owns the one error
 * handler: every refusal is an HTTPException carrying its status, answered
 * as `{ error }`.
 */
import { Hono, type Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { BrokerUnavailable } from "../shared/broker.ts";
import type { WebhookEnv } from "../shared/config.ts";
import type { Logger } from "../shared/log.ts";
import type { SigningKey } from "../shared/signing.ts";
import { apiRoutes, basicKeyAuth } from "./api.ts";
import { createDashboard } from "./dashboard.ts";
import { createCommandSender, createDeployer } from "./deployer.ts";
import { hookRoutes } from "./hooks.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { createRecorder, type Publish, type Sealer } from "./records.ts";
import { createSseHub } from "./sse.ts";
import type { View } from "./view.ts";

/** Seconds a CI should wait before retrying when the broker is unavailable. */
export const RETRY_AFTER_SECONDS = 5;

export interface AppOptions {
  config: WebhookEnv;
  signingKey: SigningKey;
  sealer: Sealer;
  publish: Publish;
  view: View;
  /** True while the broker is connected and the history has been read. */
  connected: () => boolean;
  log: Logger;
  metrics?: Metrics;
  now?: () => number;
  keepAliveMs?: number;
}

export function createApp(options: AppOptions): Hono {
  const { config, view, connected, log } = options;
  const metrics = options.metrics ?? createMetrics();
  const send = createCommandSender({ signingKey: options.signingKey, publish: options.publish, fleet: config.ARBEIDER_FLEET });
  const record = createRecorder({ fleet: config.ARBEIDER_FLEET, sealer: options.sealer, publish: options.publish });
  const deploy = createDeployer({
    fleet: config.ARBEIDER_FLEET,
    ttlSeconds: config.ARBEIDER_COMMAND_TTL,
    send,
    record,
    view,
    connected,
    onPublished: (command) => metrics.published(command.command),
    now: options.now,
  });

  const app = new Hono();
  app.use("*", metrics.requests());
  app.onError((error, c) => errorResponse(error, c, log));
  app.notFound((c) => c.json({ error: `no route ${c.req.method} ${c.req.path}` }, 404));

  app.get("/healthz", (c) => (connected() ? c.json({ ok: true }) : c.json({ ok: false, error: "broker unavailable" }, 503)));
  app.get("/metrics", (c) => c.text(metrics.render(view, connected()), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }));
  app.route("/hooks", hookRoutes({ config, deploy, metrics, log }));
  const sse = createSseHub(view, options.now);
  app.route("/api", apiRoutes({ config, deploy, record, view, sse, now: options.now, keepAliveMs: options.keepAliveMs }));

  const page = basicKeyAuth(config.ARBEIDER_API_KEY);
  app.use("/", page);
  app.use("/ui/*", page);
  app.route("/", createDashboard({ fleet: config.ARBEIDER_FLEET, view, now: options.now }));
  return app;
}

/** Every error becomes `{ error }` with its status; nothing internal or secret reaches the caller. */
function errorResponse(error: Error, c: Context, log: Logger): Response {
  if (error instanceof BrokerUnavailable) {
    log.warn("broker unavailable", { path: c.req.path, error: error.message });
    return c.json({ error: "broker unavailable" }, 503, { "Retry-After": String(RETRY_AFTER_SECONDS) });
  }
  if (error instanceof HTTPException) {
    // Hono's auth middleware sets a WWW-Authenticate challenge on its response: keep it, answer in JSON.
    const challenge = error.status === 401 ? error.getResponse().headers.get("WWW-Authenticate") : null;
    const message = error.status === 401 && !error.message ? "missing or wrong credentials" : error.message || "bad request";
    return c.json({ error: message }, error.status, challenge ? { "WWW-Authenticate": challenge } : {});
  }
  log.error("request failed", { method: c.req.method, path: c.req.path, error: error.message });
  return c.json({ error: "internal error" }, 500);
}
