/**
 * `--wait`: follows one deployment until it is decided. Live events come from
 * `GET /api/events` (`deployment`: one event, `state`: the whole deployment
 * after it); the deployment is also re-read after the stream opens (so an
 * event from before it is never missed) and every few seconds (the webhook
 * alone decides when a node is `missing`). On a
 * terminal the view is redrawn in place; elsewhere each node's new state is
 * appended as a line.
 */
import type { Client } from "./client.ts";
import { readSse } from "./sse.ts";
import { ansi, clip, mergeDeployments, mergeEvent, nodeIds, outcome, plain, renderDeployment, renderNode, type Deployment } from "./view.ts";

export interface FollowOptions {
  write: (text: string) => void;
  /** Redraw in place with colours (a TTY) or append plain lines. */
  tty: boolean;
  columns?: number;
  timeoutMs?: number;
  pollMs?: number;
}

/** Follows deployment `id`; resolves with the exit status its outcome deserves. */
export function follow(client: Client, id: string, options: FollowOptions): Promise<number> {
  const { write, tty, columns = 120, timeoutMs, pollMs = 2000 } = options;
  const abort = new AbortController();
  const timers: ReturnType<typeof setInterval>[] = [];
  let current: Deployment | undefined;
  let over = false;
  let drawnLines = 0;
  const printed = new Map<string, string>();
  let resolveCode!: (code: number) => void;
  const finished = new Promise<number>((resolve) => (resolveCode = resolve));

  function draw(): void {
    if (!current) return;
    if (tty) {
      const lines = renderDeployment(current, Date.now(), ansi).map((line) => clip(line, columns - 1));
      // Up to the first line we drew, then clear to the end of the screen.
      write(`${drawnLines ? `\x1b[${drawnLines}A\r\x1b[J` : ""}${lines.join("\n")}\n`);
      drawnLines = lines.length;
      return;
    }
    if (printed.size === 0) write(`${renderDeployment(current, Date.now(), plain)[0]}\n`);
    const ids = nodeIds(current);
    const width = Math.max(4, ...ids.map((node) => node.length));
    for (const node of ids) {
      const state = current.nodes[node]?.state ?? "waiting";
      if (printed.get(node) === state) continue;
      printed.set(node, state);
      write(`${renderNode(node, current.nodes[node], width, Date.now(), plain)}\n`);
    }
  }

  function end(code: number, why: string): void {
    if (over) return;
    over = true;
    abort.abort();
    for (const timer of timers) clearInterval(timer);
    draw();
    if (!tty && current) write(`${renderDeployment(current, Date.now(), plain).at(-1)}\n`);
    write(`${code === 0 ? "ok" : "FAILED"}: ${why}\n`);
    resolveCode(code);
  }

  function settle(): void {
    draw();
    const result = current && outcome(current);
    if (result?.done) end(result.code, result.why);
  }

  let reading = false;
  let again = false;
  async function refresh(): Promise<void> {
    if (reading) return void (again = true);
    reading = true;
    try {
      do {
        again = false;
        const served = await client.deployment(id).catch(() => undefined);
        if (served && !over) {
          current = mergeDeployments(served, current);
          settle();
        }
      } while (again && !over);
    } finally {
      reading = false;
    }
  }

  async function listen(): Promise<void> {
    while (!over) {
      try {
        const response = await client.events(abort.signal);
        void refresh();
        await readSse(response, ({ event: name, data }) => {
          if (over || (name !== "deployment" && name !== "state")) return;
          let body: Deployment & { deployment?: string; node?: string; state: string; at: string };
          try {
            body = JSON.parse(data);
          } catch {
            return;
          }
          // `state` carries the whole deployment after an event; `deployment` the event itself.
          if (name === "state" && body.id === id && body.nodes) current = mergeDeployments(body, current);
          else if (name === "deployment" && body.deployment === id && current) current = mergeEvent(current, body as { state: string; at: string });
          else return;
          settle();
        }, abort.signal);
      } catch {
        // The stream broke or was refused: polling goes on; try the stream again shortly.
      }
      if (!over) await new Promise((resolve) => timers.push(setTimeout(resolve, 1000)));
    }
  }

  timers.push(setInterval(() => void refresh(), pollMs));
  if (tty) timers.push(setInterval(draw, 500));
  if (timeoutMs !== undefined) {
    timers.push(setTimeout(() => end(1, `gave up waiting after ${timeoutMs / 1000} s (--timeout); the deployment goes on`), timeoutMs));
  }
  void refresh();
  void listen();
  return finished;
}
