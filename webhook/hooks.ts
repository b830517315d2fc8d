/**
 * The CI doors: `POST /hooks/codeship?api_key=`, `/hooks/github` and
 * `/hooks/gitlab`, one route per provider record (webhook/providers.ts). Each
 * request's body is read within the size limit, authenticated on its raw
 * bytes before any parsing, parsed as JSON, and handed to the provider's pure
 * decision; a deploy goes to the deployer as a rollout with the strategy of
 * ARBEIDER_ROLLOUT and the branch's entry. A provider whose variables are not
 * set answers 404.
 */
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { WebhookEnv } from "../shared/config.ts";
import type { Logger } from "../shared/log.ts";
import { mergeStrategies } from "../shared/strategy.ts";
import type { Deploy } from "./deployer.ts";
import { parseJsonObject, readBody, requireJson } from "./http.ts";
import type { Metrics, WebhookOutcome } from "./metrics.ts";
import { PROVIDERS, type Decision, type ProviderDoor } from "./providers.ts";

export interface HookOptions {
  config: WebhookEnv;
  deploy: Deploy;
  metrics: Metrics;
  log: Logger;
}

type Env = { Variables: { outcome: WebhookOutcome; detail: Record<string, string> } };

/** The `/hooks` routes of every provider. */
export function hookRoutes(options: HookOptions): Hono<Env> {
  const { config } = options;
  const app = new Hono<Env>();
  for (const provider of PROVIDERS) {
    if (!provider.enabled(config)) {
      app.post(`/${provider.name}`, () => {
        throw new HTTPException(404, { message: `/hooks/${provider.name} is not configured: set ${provider.enabledBy}` });
      });
      continue;
    }
    app.post(`/${provider.name}`, account(provider, options), async (c) => {
      const body = await readBody(c, config.ARBEIDER_MAX_BODY);
      const request = { query: (name: string) => c.req.query(name), header: (name: string) => c.req.header(name), body };
      if (!provider.authenticate(config, request)) throw new HTTPException(401, { message: `missing or wrong credentials: check ${provider.credential}` });
      requireJson(c, { required: false });
      const payload = parseJsonObject(body);
      const event = provider.eventHeader ? c.req.header(provider.eventHeader) : "";
      if (event === undefined) throw new HTTPException(400, { message: `the ${provider.eventHeader} header is missing` });
      return answer(c, provider.decide(event, payload, config), options);
    });
  }
  return app;
}

/** Counts and logs every hook request by its outcome, including refused ones. */
function account(provider: ProviderDoor, options: HookOptions): MiddlewareHandler<Env> {
  return async (c, next) => {
    c.set("detail", {});
    await next();
    const outcome = c.get("outcome") ?? outcomeOf(c.res.status);
    options.metrics.webhook(provider.name, outcome);
    // Codeship calls at every step of every build: an ignored step is normal traffic, counted in
    // /metrics and answered with its reason, so it is logged at debug and does not flood the log.
    const level = outcome === "unavailable" ? "warn" : outcome === "ignored" ? "debug" : "info";
    options.log[level]("webhook", { provider: provider.name, outcome, status: c.res.status, ...c.get("detail"), error: c.error?.message });
  };
}

function outcomeOf(status: number): WebhookOutcome {
  const byStatus: Record<number, WebhookOutcome> = { 401: "unauthorized", 403: "forbidden", 413: "too_large", 415: "unsupported", 503: "unavailable" };
  return byStatus[status] ?? "invalid";
}

async function answer(c: Context<Env>, decision: Decision, options: HookOptions): Promise<Response> {
  switch (decision.kind) {
    case "invalid":
      throw new HTTPException(400, { message: decision.error });
    case "forbidden":
      throw new HTTPException(403, { message: decision.reason });
    case "ignore":
      c.set("outcome", "ignored");
      c.set("detail", { reason: decision.reason });
      return c.json({ ignored: decision.reason }, 200);
    case "deploy": {
      const { deployment, target, branch, commit, source } = decision;
      c.set("detail", { deployment, target, branch, commit });
      const result = await options.deploy({
        deployment,
        target,
        action: { command: "update", args: { branch, commit } },
        source,
        strategy: mergeStrategies(options.config.ARBEIDER_ROLLOUT, decision.strategy),
        whenNoNode: "queue",
      });
      c.set("outcome", result.duplicate ? "duplicate" : "deployed");
      return c.json(result, result.duplicate ? 200 : 202);
    }
  }
}
