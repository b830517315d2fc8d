/**
 * How one report is delivered over HTTP: each attempt bounded in time,
 * answers sorted into delivered, worth another try (5xx, 429, GitHub's
 * rate limits, no answer) or given up at once (any other 4xx, a redirect),
 * and tries spaced by exponential backoff with jitter, or longer when the
 * server says so in `Retry-After`. Reasons name the answer, never the URL
 * (a Slack or notification URL is a secret) and never a token: every
 * secret a target holds is cut out of them.
 */
import pkg from "../package.json" with { type: "json" };

/** How often and how long a delivery is tried. */
export interface RetryPolicy {
  tries: number;
  /** First wait; each next one doubles, up to `maxMs`; half of each is random. */
  baseMs: number;
  maxMs: number;
  /** The most a `Retry-After` may make us wait. */
  maxRetryAfterMs: number;
  timeoutMs: number;
}

/** 8 tries over 1.5 to 3 minutes (the waits alone add up to 91 s at least), 10 s each. */
export const DEFAULT_POLICY: RetryPolicy = { tries: 8, baseMs: 2000, maxMs: 60_000, maxRetryAfterMs: 15 * 60_000, timeoutMs: 10_000 };

/** An attempt that did not deliver: whether another try may, and how long the server asked us to wait. */
export class DeliveryError extends Error {
  constructor(message: string, readonly retry: boolean, readonly afterMs?: number, readonly timedOut = false) {
    super(message);
  }
}

export interface HttpRequest {
  method: "POST";
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** One HTTP request of an attempt: the answer's status and body (JSON when it is JSON), or a DeliveryError. */
export type Http = (request: HttpRequest) => Promise<{ status: number; body: unknown }>;

export const USER_AGENT = `arbeider/${pkg.version}`;

/** The wait before try `n + 1` (n from 1): exponential with equal jitter, at least what the server asked (bounded). */
export function retryDelay(n: number, policy: RetryPolicy, afterMs = 0, random = Math.random): number {
  const full = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(n - 1, 30));
  return Math.max(Math.round(full / 2 + (random() * full) / 2), Math.min(afterMs, policy.maxRetryAfterMs));
}

/**
 * How long the answer asks us to wait: `Retry-After` in seconds or as an HTTP
 * date, or GitHub's `x-ratelimit-reset` (epoch seconds) once
 * `x-ratelimit-remaining` is 0.
 */
export function retryAfterMs(headers: Headers, now: number): number | undefined {
  const value = headers.get("retry-after")?.trim();
  if (value) {
    if (/^\d+$/.test(value)) return Number(value) * 1000;
    const at = Date.parse(value);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  const reset = headers.get("x-ratelimit-reset");
  if (headers.get("x-ratelimit-remaining") === "0" && reset && /^\d+$/.test(reset)) return Math.max(0, Number(reset) * 1000 - now);
  return undefined;
}

/** Whether an answer deserves another try: server errors, 429, and GitHub's 403 rate limits (they say when to come back). */
export function retryable(status: number, headers: Headers): boolean {
  if (status >= 500 || status === 429) return true;
  return status === 403 && (headers.has("retry-after") || headers.get("x-ratelimit-remaining") === "0");
}

/** A short, printable excerpt of an answer: its JSON `message` (GitHub, GitLab) or its text (Slack). */
export function answerText(body: unknown): string {
  const message = typeof body === "object" && body !== null ? (body as { message?: unknown; error?: unknown }).message ?? (body as { error?: unknown }).error : body;
  const text = typeof message === "string" ? message : message === undefined ? "" : JSON.stringify(message);
  return text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ").trim().slice(0, 200);
}

/** Every occurrence of a secret in `text` replaced; secrets shorter than 6 characters are not looked for. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 6) out = out.replaceAll(secret, "[redacted]");
  return out;
}

/** The HTTP client of deliveries: `fetch` with a time bound, no redirects followed, answers sorted. */
export function createHttp(options: { timeoutMs: number; fetch?: typeof fetch; now?: () => number }): Http {
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const seconds = `${options.timeoutMs / 1000} s`;
  return async (request) => {
    let response: Response;
    let text: string;
    try {
      // A redirect is not followed: it would carry the token or the signed body somewhere not configured.
      response = await doFetch(request.url, { ...request, redirect: "manual", signal: AbortSignal.timeout(options.timeoutMs) });
      text = await response.text();
    } catch (error) {
      const name = (error as Error).name;
      if (name === "TimeoutError" || name === "AbortError") throw new DeliveryError(`no answer within ${seconds}`, true, undefined, true);
      // Bun and Deno name the network failure (ConnectionRefused, ECONNRESET...); the message may hold the URL.
      const code = (error as { code?: unknown }).code;
      throw new DeliveryError(`cannot connect${typeof code === "string" ? ` (${code})` : ""}`, true);
    }
    let body: unknown = text;
    try {
      body = text === "" ? undefined : JSON.parse(text);
    } catch {
      // Not JSON (Slack answers "ok" or an error word): the text is the body.
    }
    if (response.status >= 200 && response.status < 300) return { status: response.status, body };
    const why = answerText(body);
    const message = `HTTP ${response.status}${why ? `: ${why}` : ""}`;
    if (response.status >= 300 && response.status < 400) throw new DeliveryError(`${message} (a redirect, not followed)`, false);
    const retry = retryable(response.status, response.headers);
    throw new DeliveryError(message, retry, retry ? retryAfterMs(response.headers, now()) : undefined);
  };
}

export interface Tries {
  policy: RetryPolicy;
  /** Tries already made (by this process or one before it). */
  made: number;
  /** Whether this process may go on trying (it still drives, and is not stopping). */
  mayGoOn: () => boolean;
  /** Waits `ms`; resolves early when the reporter stops. */
  sleep: (ms: number) => Promise<void>;
  /** After a failed try that another will follow. */
  onRetry: (tries: number, error: DeliveryError) => Promise<void>;
  random?: () => number;
}

export type TriesResult = { outcome: "delivered" | "failed" | "stopped"; tries: number; reason?: string };

/** Runs `attempt` until it delivers, fails for good, runs out of tries, or this process must stop. */
export async function tryDelivering(attempt: () => Promise<void>, o: Tries): Promise<TriesResult> {
  let tries = o.made;
  for (;;) {
    if (!o.mayGoOn()) return { outcome: "stopped", tries };
    tries++;
    try {
      await attempt();
      return { outcome: "delivered", tries };
    } catch (caught) {
      const error = caught instanceof DeliveryError ? caught : new DeliveryError((caught as Error).message, false);
      if (!error.retry) return { outcome: "failed", tries, reason: error.message };
      if (tries >= o.policy.tries) return { outcome: "failed", tries, reason: `gave up after ${tries} tries: ${error.message}` };
      await o.onRetry(tries, error);
      await o.sleep(retryDelay(tries, o.policy, error.afterMs, o.random));
    }
  }
}
