/**
 * Server-Sent Events read from a fetch response body, as the HTML standard
 * defines them: `field: value` lines, `data` lines joined by newlines, a blank
 * line dispatches, lines starting with `:` are comments. Small enough to own,
 * so the CLI needs no EventSource polyfill under Bun or Deno.
 */
export interface SseMessage {
  event: string;
  data: string;
  id?: string;
}

/** A push parser: feed it text chunks in order; it calls `onMessage` per complete message. */
export function createSseParser(onMessage: (message: SseMessage) => void): (chunk: string) => void {
  let buffer = "";
  let event = "";
  let data: string[] = [];
  let id: string | undefined;
  const line = (text: string) => {
    if (text === "") {
      if (data.length > 0) onMessage({ event: event || "message", data: data.join("\n"), ...(id !== undefined ? { id } : {}) });
      event = "";
      data = [];
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
    else if (field === "id") id = value;
  };
  return (chunk) => {
    buffer += chunk;
    // A lone "\r" at the end may be the first half of "\r\n": keep it for the next chunk.
    const lines = buffer.split(/\r\n|\n|\r(?!$)/);
    buffer = lines.pop() ?? "";
    for (const text of lines) line(text);
  };
}

/** Reads `response`'s body as SSE until it ends or `signal` aborts. */
export async function readSse(response: Response, onMessage: (message: SseMessage) => void, signal?: AbortSignal): Promise<void> {
  if (!response.body) return;
  const feed = createSseParser(onMessage);
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  const stop = () => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", stop, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      feed(decoder.decode(value, { stream: true }));
    }
  } catch (error) {
    if (!signal?.aborted) throw error;
  } finally {
    signal?.removeEventListener("abort", stop);
  }
}
