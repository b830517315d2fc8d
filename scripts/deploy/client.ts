/**
 * The webhook's HTTP API (docs/api.md) as seen from the command line:
 * each call returns parsed JSON or throws a CliError that already knows the
 * exit status it deserves (2 when the webhook cannot be reached, refuses the
 * key or calls the request malformed; 1 when it refuses the deployment, e.g.
 * 409 for a target no online node matches, or an approve of a rollout that
 * is not paused).
 */
import type { DeployRequest } from "./args.ts";
import type { NodeStatus } from "./tables.ts";
import type { Deployment } from "./view.ts";

/** A failure the CLI reports in one line and exits with `exit`. */
export class CliError extends Error {
  constructor(readonly exit: 1 | 2, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface Client {
  create(request: DeployRequest): Promise<{ deployment: string; duplicate: boolean }>;
  /** Approves a paused rollout, or aborts a running one (409 when that does not apply: exit 1). */
  decide(id: string, action: "approve" | "abort"): Promise<Record<string, unknown>>;
  /** One deployment, or undefined while the webhook does not know it (yet). */
  deployment(id: string): Promise<Deployment | undefined>;
  deployments(limit: number): Promise<Deployment[]>;
  nodes(): Promise<NodeStatus[]>;
  /** The open `GET /api/events?deployment=ID` stream: that deployment's full snapshot first, then its changes. */
  events(signal: AbortSignal, deployment: string): Promise<Response>;
}

export function createClient(options: { url: string; apiKey: string; fetch?: typeof fetch }): Client {
  const { url, apiKey } = options;
  const fetcher = options.fetch ?? fetch;

  async function call(path: string, init: RequestInit = {}): Promise<Response> {
    let response: Response;
    try {
      response = await fetcher(`${url}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${apiKey}`, accept: "application/json", ...(init.headers as Record<string, string>) },
      });
    } catch (error) {
      if (init.signal?.aborted) throw error;
      throw new CliError(2, `Cannot reach the webhook at ${url}: ${(error as Error).message} (is ARBEIDER_URL right?)`, { cause: error });
    }
    if (response.status === 401) throw new CliError(2, `The webhook at ${url} refused ARBEIDER_API_KEY (401 Unauthorized)`);
    return response;
  }

  async function json<T>(path: string, init?: RequestInit): Promise<T> {
    const response = await call(path, init);
    const body = (await response.json().catch(() => ({}))) as T & { error?: string };
    if (!response.ok) {
      const why = body.error ?? response.statusText;
      const retry = response.headers.get("retry-after");
      throw new CliError(response.status === 400 ? 2 : 1, `${init?.method ?? "GET"} ${url}${path}: ${response.status} ${why}${retry ? ` (retry after ${retry} s)` : ""}`);
    }
    return body;
  }

  const post = <T>(path: string, body: unknown) =>
    json<T>(path, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });

  return {
    create: (request) => post("/api/deployments", request),
    decide: (id, action) => post(`/api/deployments/${encodeURIComponent(id)}/${action}`, {}),
    async deployment(id) {
      const response = await call(`/api/deployments/${encodeURIComponent(id)}`);
      if (response.status === 404) return undefined;
      if (!response.ok) throw new CliError(1, `GET ${url}/api/deployments/${id}: ${response.status} ${response.statusText}`);
      return (await response.json()) as Deployment;
    },
    deployments: async (limit) => (await json<{ deployments: Deployment[] }>(`/api/deployments?limit=${limit}`)).deployments,
    nodes: async () => (await json<{ nodes: NodeStatus[] }>("/api/nodes")).nodes,
    async events(signal, deployment) {
      const response = await call(`/api/events?deployment=${encodeURIComponent(deployment)}`, { signal, headers: { accept: "text/event-stream" } });
      if (!response.ok) throw new CliError(1, `GET ${url}/api/events: ${response.status} ${response.statusText}`);
      return response;
    },
  };
}
