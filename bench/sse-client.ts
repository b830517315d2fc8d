/**
 * A client of the webhook's `GET /api/events`, as a dashboard left open on
 * the whole fleet is: it reads every Server-Sent Event, counts the bytes it
 * was sent, and tells when a deployment's `state` snapshot says it finished,
 * timed when the message arrived.
 */
import { FINISHED } from "../shared/served.ts";
import { API_KEY } from "./fleet.ts";

export interface SseClient {
  /** Bytes received so far. */
  readonly bytes: number;
  /** Resolves with the time (performance.now()) and state of the snapshot that says `deployment` finished. */
  finished(deployment: string, timeoutMs: number): Promise<{ at: number; state: string }>;
  close(): void;
}

/** Connects to `webhookUrl`'s event stream; resolves once the webhook answered. */
export async function followEvents(webhookUrl: string): Promise<SseClient> {
  const abort = new AbortController();
  const response = await fetch(`${webhookUrl}/api/events`, { headers: { authorization: `Bearer ${API_KEY}` }, signal: abort.signal });
  if (response.status !== 200 || !response.body) throw new Error(`GET /api/events answered ${response.status}`);
  const ended = new Map<string, { at: number; state: string }>();
  const waiters = new Map<string, (end: { at: number; state: string }) => void>();
  let bytes = 0;
  let pending = "";

  const onMessage = (text: string, at: number) => {
    if (!text.startsWith("event: state\n")) return;
    const data = text.slice(text.indexOf("\ndata: ") + 7);
    const snap = JSON.parse(data) as { id: string; state?: string };
    if (!snap.state || !FINISHED.has(snap.state as never) || ended.has(snap.id)) return;
    ended.set(snap.id, { at, state: snap.state });
    waiters.get(snap.id)?.(ended.get(snap.id)!);
  };

  void (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body!) {
        const at = performance.now();
        bytes += chunk.byteLength;
        const messages = (pending + decoder.decode(chunk, { stream: true })).split("\n\n");
        pending = messages.pop()!;
        for (const message of messages) onMessage(message, at);
      }
    } catch {
      // closed by close(), or the webhook went away: the waiters time out
    }
  })();

  return {
    get bytes() {
      return bytes;
    },
    finished(deployment, timeoutMs) {
      const known = ended.get(deployment);
      if (known) return Promise.resolve(known);
      return new Promise((done, fail) => {
        const timer = setTimeout(() => {
          waiters.delete(deployment);
          fail(new Error(`no final state snapshot of ${deployment} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.set(deployment, (end) => {
          clearTimeout(timer);
          waiters.delete(deployment);
          done(end);
        });
      });
    },
    close: () => abort.abort(),
  };
}
