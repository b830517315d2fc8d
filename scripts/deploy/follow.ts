/**
 * `--wait`: follows one deployment until the webhook says it is over. It
 * listens to `GET /api/events?deployment=ID` (the deployment's full snapshot
 * first, then a snapshot after each change, merged with shared/served.ts
 * mergeSnapshot), and re-reads the deployment when the stream (re)connects
 * and every few seconds (a stream that went quiet or broke loses nothing).
 * It folds no events itself. On a terminal the view is redrawn in place;
 * elsewhere each new piece is appended as a line, which reads well in CI
 * logs. At the end: the output tail of each failed node (read from the
 * deployment: snapshots carry no output), then one line.
 */
import { mergeSnapshot, type Snapshot } from "../../shared/served.ts";
import type { Client } from "./client.ts";
import { readSse } from "./sse.ts";
import { ansi, clip, plain } from "./terminal.ts";
import { deploymentParts, failureTails, outcome, type Deployment } from "./view.ts";

export interface FollowOptions {
  write: (text: string) => void;
  /** Redraw in place with colours (a TTY) or append plain lines. */
  tty: boolean;
  columns?: number;
  timeoutMs?: number;
  pollMs?: number;
  /** Aborted on Ctrl-C: the CLI stops following, and says the deployment goes on. */
  interrupt?: AbortSignal;
}

/** Exit status after Ctrl-C, as shells report a process ended by SIGINT. */
export const INTERRUPTED = 130;

/** Follows deployment `id`; resolves with the exit status the webhook's verdict deserves. */
export function follow(client: Client, id: string, options: FollowOptions): Promise<number> {
  const { write, tty, columns, timeoutMs, pollMs = 5000 } = options;
  const abort = new AbortController();
  const timers: ReturnType<typeof setInterval>[] = [];
  let current: Deployment | undefined;
  let over = false;
  let drawnLines = 0;
  const printed = new Set<string>();
  let resolveCode!: (code: number) => void;
  const finished = new Promise<number>((resolve) => (resolveCode = resolve));

  function draw(): void {
    if (!current) return;
    const parts = deploymentParts(current, Date.now(), tty ? ansi : plain, tty ? columns : undefined);
    if (tty) {
      const lines = parts.flatMap((part) => part.lines).map((line) => (columns ? clip(line, columns - 1) : line));
      // Up to the first line we drew, then clear to the end of the screen.
      write(`${drawnLines ? `\x1b[${drawnLines}A\r\x1b[J` : ""}${lines.join("\n")}\n`);
      drawnLines = lines.length;
      return;
    }
    for (const part of parts) {
      if (part.terminalOnly || part.key === "summary" || printed.has(part.key)) continue;
      printed.add(part.key);
      write(`${part.lines.join("\n")}\n`);
    }
  }

  async function end(code: number, why: string): Promise<void> {
    if (over) return;
    over = true;
    abort.abort();
    for (const timer of timers) clearInterval(timer);
    if (code === INTERRUPTED) return resolveCode(code);
    draw();
    if (current && !tty) write(`${deploymentParts(current, Date.now(), plain).find((part) => part.key === "summary")!.lines.join("\n")}\n`);
    // Snapshots carry no output: the deployment as read has each failed node's.
    const failed = current && Object.values(current.nodes).some((r) => r.state === "failed" || r.state === "unhealthy");
    const whole = failed ? await client.deployment(id).catch(() => undefined) : undefined;
    const tails = current ? failureTails(whole ?? current, tty ? columns : undefined) : [];
    if (tails.length > 0) write(`\n${tails.join("\n")}\n\n`);
    write(`${code === 0 ? "ok" : "FAILED"}: ${why}\n`);
    resolveCode(code);
  }

  function take(next: Deployment): void {
    if (over) return;
    current = next;
    draw();
    const result = outcome(current);
    if (result.done) void end(result.code, result.why);
  }

  async function refresh(): Promise<void> {
    const served = await client.deployment(id).catch(() => undefined);
    if (served) take(served);
  }

  async function listen(): Promise<void> {
    while (!over) {
      try {
        const response = await client.events(abort.signal, id);
        void refresh();
        await readSse(response, ({ event, data }) => {
          if (over || event !== "state") return;
          let snap: Snapshot;
          try {
            snap = JSON.parse(data);
          } catch {
            return;
          }
          const merged = snap.id === id ? mergeSnapshot(current, snap) : undefined;
          if (merged) take(merged);
        }, abort.signal);
      } catch {
        // The stream broke or was refused: re-reading goes on; try the stream again shortly.
      }
      if (!over) await new Promise((resolve) => timers.push(setTimeout(resolve, 1000)));
    }
  }

  timers.push(setInterval(() => void refresh(), pollMs));
  if (tty) timers.push(setInterval(draw, 500));
  if (timeoutMs !== undefined) {
    timers.push(setTimeout(() => void end(1, `gave up waiting after ${timeoutMs / 1000} s (--timeout); the deployment goes on`), timeoutMs));
  }
  const interrupted = () => {
    write(`\ninterrupted: deployment ${id} goes on; follow it again with \`bun scripts/deploy.ts status ${id} --wait\`\n`);
    void end(INTERRUPTED, "interrupted");
  };
  if (options.interrupt?.aborted) interrupted();
  else options.interrupt?.addEventListener("abort", interrupted, { once: true });
  void refresh();
  void listen();
  return finished;
}
