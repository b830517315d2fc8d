/**
 * What the CI doors (webhook/hooks.ts) and the API (webhook/api.ts) both do
 * with a request body: read it within ARBEIDER_MAX_BODY (a larger one is a 413
 * the client gets to read), insist it is JSON, and parse it as a JSON object.
 * Every refusal is an HTTPException with its status and a message naming what
 * is wrong; webhook/app.ts answers them all in one place.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";

/**
 * How much of a too-large body is read and dropped before the 413 is sent:
 * a client that writes its whole body before it reads the answer (most do)
 * then reads the 413 instead of a broken pipe, and no client can keep the
 * webhook reading for ever.
 */
const DRAIN_BOUND = 64 * 1024 * 1024;

async function drain(reader: ReadableStreamDefaultReader<Uint8Array>, bound: number): Promise<void> {
  let read = 0;
  try {
    while (read < bound) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.byteLength;
    }
  } catch {
    // The client went away: nothing left to read.
  }
  await reader.cancel().catch(() => {});
}

function tooLarge(maxBytes: number): HTTPException {
  return new HTTPException(413, { message: `body is larger than ARBEIDER_MAX_BODY (${maxBytes} bytes)` });
}

/** The request's body, at most `maxBytes`; a larger one is drained (up to a bound) and refused with 413. */
export async function readBody(c: Context, maxBytes: number): Promise<Uint8Array> {
  const stream = c.req.raw.body;
  if (!stream) return new Uint8Array();
  const declared = Number(c.req.header("content-length") ?? "NaN");
  // A declared length within the limit bounds the body (the server frames it by that length): read it whole,
  // which costs the runtime a fraction of reading it chunk by chunk.
  if (declared <= maxBytes) return new Uint8Array(await c.req.raw.arrayBuffer());
  const reader = stream.getReader();
  if (declared > maxBytes) {
    await drain(reader, DRAIN_BOUND);
    throw tooLarge(maxBytes);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await drain(reader, DRAIN_BOUND - size);
      throw tooLarge(maxBytes);
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

const JSON_TYPE = /^\s*application\/([\w.-]+\+)?json\s*(;|$)/i;

/**
 * A body in another format (GitHub's form encoding, say) is refused clearly.
 * The API demands the header (a form in another site cannot send it without
 * the browser asking first); a CI door reads a body without one as JSON.
 */
export function requireJson(c: Context, options: { required: boolean }): void {
  const type = c.req.header("content-type");
  if (type === undefined && !options.required) return;
  if (type !== undefined && JSON_TYPE.test(type)) return;
  const given = type === undefined ? "none was given" : `not ${type.split(";")[0].slice(0, 100)}`;
  throw new HTTPException(415, { message: `content type must be application/json, ${given}` });
}

/** The body as a JSON object, or a 400 saying what is wrong with it. */
export function parseJsonObject(body: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(body));
  } catch {
    // The parser's message quotes the body; the body is not ours to repeat in answers and logs.
    throw new HTTPException(400, { message: "body is not valid JSON" });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new HTTPException(400, { message: "body: must be a JSON object" });
  return value as Record<string, unknown>;
}

/**
 * A browser that holds the dashboard's HTTP Basic credentials sends them to
 * any page's request to this webhook: a change asked for by a page of
 * another origin is refused (403). The webhook's own origin is the one the
 * request was addressed to, or ARBEIDER_PUBLIC_URL's behind a proxy.
 */
export function requireSameOrigin(c: Context, publicUrl: string | undefined): void {
  const origin = c.req.header("origin");
  const site = c.req.header("sec-fetch-site");
  if (site === "cross-site" || site === "same-site") throw new HTTPException(403, { message: "requests from another site are refused" });
  if (origin === undefined) return;
  const own = [new URL(c.req.url).origin, publicUrl && new URL(publicUrl).origin].filter(Boolean);
  const host = c.req.header("host");
  let given: URL | undefined;
  try {
    given = new URL(origin);
  } catch {
    // "null" (a sandboxed page) or nonsense: not ours.
  }
  if (given && (own.includes(given.origin) || given.host === host)) return;
  throw new HTTPException(403, { message: `Origin ${origin.slice(0, 100)} is not this webhook's` });
}
