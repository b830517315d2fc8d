/**
 * The one place that knows which runtime serves HTTP: `Bun.serve` under Bun,
 * `Deno.serve` under Deno. Everything else speaks Web `Request`/`Response`.
 */
type Fetch = (request: Request) => Response | Promise<Response>;

export interface Server {
  port: number;
  close(): Promise<void>;
}

interface Runtimes {
  Bun?: {
    serve(options: { port: number; hostname: string; fetch: Fetch; idleTimeout: number }): { port: number; stop(force?: boolean): Promise<void> };
  };
  Deno?: {
    serve(
      options: { port: number; hostname: string; signal: AbortSignal; onListen?: () => void },
      handler: Fetch,
    ): { addr: { port: number }; finished: Promise<void> };
  };
}

/** Serves `fetch` on `hostname:port` (0 picks a free port, reported as `port`). */
export function serve(fetch: Fetch, options: { port: number; hostname: string }): Server {
  const { Bun, Deno } = globalThis as unknown as Runtimes;
  if (Bun) {
    // Server-Sent Events stay quiet between keep-alives: allow longer idle than Bun's 10 s default.
    const server = Bun.serve({ ...options, fetch, idleTimeout: 60 });
    return { port: server.port, close: () => server.stop(true) };
  }
  if (Deno) {
    // Aborting closes open connections too; a graceful shutdown would wait for SSE clients forever.
    const abort = new AbortController();
    const server = Deno.serve({ ...options, signal: abort.signal, onListen: () => {} }, fetch);
    return {
      port: server.addr.port,
      close: () => {
        abort.abort();
        return server.finished;
      },
    };
  }
  throw new Error("Cannot serve HTTP: run webhook.ts with bun or deno");
}
