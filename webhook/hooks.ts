/**
 * The CI doors: `POST /hooks/codeship?api_key=`, `/hooks/github` and
 * `/hooks/gitlab`. Each request is limited in size, authenticated (the raw
 * bytes, before any parsing), parsed as JSON, and handed to the provider's
 * pure decision (webhook/providers.ts); a deploy goes to the deployer. A
 * provider whose variables are not set answers 404.
 */
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { WebhookEnv } from "../shared/config.ts";
import type { Logger } from "../shared/log.ts";
import { RequestError } from "./errors.ts";
import type { Deploy } from "./deployer.ts";
import type { Metrics, WebhookOutcome } from "./metrics.ts";
import { decideCodeship, decideGithub, decideGitlab, providerEnabled, HOOK_PROVIDERS, type Decision, type Provider } from "./providers.ts";
import { githubSignatureValid, safeEqual } from "./secrets.ts";

export interface HookOptions {
  config: WebhookEnv;
  deploy: Deploy;
  metrics: Metrics;
  log: Logger;
}

type Env = { Variables: { outcome: WebhookOutcome; detail: Record<string, string> } };

const ENABLED_BY: Record<Provider, string> = {
  codeship: "CODESHIP_PROJECT_ID",
  github: "GITHUB_WEBHOOK_SECRET and GITHUB_REPOSITORY",
  gitlab: "GITLAB_WEBHOOK_TOKEN and GITLAB_PROJECT_ID",
};

/** The `/hooks` routes of every provider. */
export function hookRoutes(options: HookOptions): Hono<Env> {
  const { config } = options;
  const app = new Hono<Env>();
  for (const provider of HOOK_PROVIDERS) {
    if (!providerEnabled(config, provider)) {
      app.post(`/${provider}`, () => {
        throw new RequestError(404, `/hooks/${provider} is not configured: set ${ENABLED_BY[provider]}`);
      });
      continue;
    }
    app.post(
      `/${provider}`,
      account(provider, options),
      limitBody(config.ARBEIDER_MAX_BODY),
      async (c) => {
        const body = new Uint8Array(await c.req.arrayBuffer());
        authenticate(provider, c, body, config);
        requireJson(c);
        const decision = decide(provider, c, parseJsonObject(body), config);
        return answer(c, decision, options.deploy);
      },
    );
  }
  return app;
}

/** Hono's body limit, refusing with a 413 that names the setting. */
export function limitBody(maxSize: number): MiddlewareHandler {
  return bodyLimit({
    maxSize,
    onError: () => {
      throw new RequestError(413, `body is larger than ARBEIDER_MAX_BODY (${maxSize} bytes)`);
    },
  });
}

/** Counts and logs every hook request by its outcome, including refused ones. */
function account(provider: Provider, options: HookOptions): MiddlewareHandler<Env> {
  return async (c, next) => {
    c.set("detail", {});
    await next();
    const outcome = c.get("outcome") ?? outcomeOf(c.res.status);
    options.metrics.webhook(provider, outcome);
    // Codeship calls at every step of every build: an ignored step is normal traffic, counted in
    // /metrics and answered with its reason, so it is logged at debug and does not flood the log.
    const level = outcome === "unavailable" ? "warn" : outcome === "ignored" ? "debug" : "info";
    options.log[level]("webhook", { provider, outcome, status: c.res.status, ...c.get("detail"), error: c.error?.message });
  };
}

function outcomeOf(status: number): WebhookOutcome {
  const byStatus: Record<number, WebhookOutcome> = { 401: "unauthorized", 403: "forbidden", 413: "too_large", 415: "unsupported", 503: "unavailable" };
  return byStatus[status] ?? "invalid";
}

function authenticate(provider: Provider, c: Context, body: Uint8Array, config: WebhookEnv): void {
  const ok =
    provider === "codeship"
      ? safeEqual(config.ARBEIDER_API_KEY, c.req.query("api_key"))
      : provider === "github"
        ? githubSignatureValid(config.GITHUB_WEBHOOK_SECRET!, body, c.req.header("x-hub-signature-256"))
        : safeEqual(config.GITLAB_WEBHOOK_TOKEN!, c.req.header("x-gitlab-token"));
  if (ok) return;
  const what = { codeship: "the api_key query parameter", github: "the X-Hub-Signature-256 header", gitlab: "the X-Gitlab-Token header" }[provider];
  throw new RequestError(401, `missing or wrong credentials: check ${what}`);
}

/** A body in another format (GitHub's form encoding, say) is refused clearly; no content type is read as JSON. */
export function requireJson(c: Context): void {
  const type = c.req.header("content-type");
  if (type === undefined || /^\s*application\/([\w.-]+\+)?json\s*(;|$)/i.test(type)) return;
  throw new RequestError(415, `content type must be application/json, not ${type.split(";")[0].slice(0, 100)}`);
}

/** The body as a JSON object, or a 400 saying what is wrong with it. */
export function parseJsonObject(body: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(body));
  } catch {
    // The parser's message quotes the body; the body is not ours to repeat in answers and logs.
    throw new RequestError(400, "body is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new RequestError(400, "body: must be a JSON object");
  return value as Record<string, unknown>;
}

function decide(provider: Provider, c: Context, payload: unknown, config: WebhookEnv): Decision {
  if (provider === "codeship") return decideCodeship(payload, config);
  const header = provider === "github" ? "X-GitHub-Event" : "X-Gitlab-Event";
  const event = c.req.header(header);
  if (!event) throw new RequestError(400, `the ${header} header is missing`);
  return provider === "github" ? decideGithub(event, payload, config) : decideGitlab(event, payload, config);
}

async function answer(c: Context<Env>, decision: Decision, deploy: Deploy): Promise<Response> {
  switch (decision.kind) {
    case "invalid":
      throw new RequestError(400, decision.error);
    case "forbidden":
      throw new RequestError(403, decision.reason);
    case "ignore":
      c.set("outcome", "ignored");
      c.set("detail", { reason: decision.reason });
      return c.json({ ignored: decision.reason }, 200);
    case "deploy": {
      const { deployment, target, branch, commit, source } = decision;
      c.set("detail", { deployment, target, branch, commit });
      const result = await deploy({ deployment, target, action: { command: "update", args: { branch, commit } }, source });
      c.set("outcome", result.duplicate ? "duplicate" : "deployed");
      return c.json(result, result.duplicate ? 200 : 202);
    }
  }
}
