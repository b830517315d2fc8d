/**
 * A whole installation on a broker of the test's own (a private TLS broker,
 * a three-node cluster), started the way users start it: `bun webhook.ts`,
 * then one `bun worker.ts` per node on a clone of an origin whose update.sh
 * records every run (tests/worker-fixture.ts), all talking to the broker only
 * through their environment. The test reads outcomes through the webhook's
 * API and counts update.sh runs in the marker folder, so it needs no broker
 * connection of its own, which a test that kills broker nodes would lose.
 * The broker is thrown away with its queues by the test that made it.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cloneNode, makeKeys, makeOrigin, startWorker, waitUntil, type Proc } from "./helpers.ts";
import { startWebhook } from "./stack.ts";
import { UPDATE_SH } from "./worker-fixture.ts";

export interface RemoteStackOptions {
  dir: string;
  fleet: string;
  /** Environment of every process: AMQP_URL, TLS files, queue type. */
  shared: Record<string, string>;
  webhook?: Record<string, string>;
  /** Node ids and what each worker gets on top of `shared`. */
  nodes: Record<string, Record<string, string>>;
  /** Another runtime's argv for some nodes (`deno run -A worker.ts`). */
  runtimes?: Record<string, string[]>;
}

/** JSON from a webhook's API with the bearer key: GET, or POST of `body`; at most 20 s per request. */
export function apiClient(url: string, apiKey: string) {
  return async <T = any>(path: string, body?: unknown): Promise<T> => {
    const response = await fetch(`${url}${path}`, {
      method: body ? "POST" : "GET",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(20_000),
    });
    return (await response.json()) as T;
  };
}

const FINAL = ["succeeded", "failed", "rolled_back", "superseded"];

interface Deployment {
  id: string;
  state: string;
  nodes: Record<string, { state: string; reason?: string }>;
}

export type RemoteStack = Awaited<ReturnType<typeof startRemoteStack>>;

/** Starts the webhook, then the workers (the webhook declares the exchanges), and waits until every node is online. */
export async function startRemoteStack(o: RemoteStackOptions) {
  const keys = makeKeys(join(o.dir, "keys"));
  const origin = makeOrigin(o.dir);
  origin.commit("master", { "update.sh": UPDATE_SH }, "add update.sh");
  const markers = join(o.dir, "markers");
  mkdirSync(markers);
  const apiKey = `rs-${crypto.randomUUID()}`;
  const common = { ...o.shared, ARBEIDER_FLEET: o.fleet };
  const webhook = await startWebhook({ ...common, ...o.webhook, ARBEIDER_SIGNING_KEY_FILE: keys.signingFile, ARBEIDER_API_KEY: apiKey });
  const api = apiClient(webhook.url, apiKey);
  const repos: Record<string, string> = {};
  const workers: Record<string, Proc> = {};
  await Promise.all(
    Object.entries(o.nodes).map(async ([id, env]) => {
      repos[id] = cloneNode(origin.origin, join(o.dir, `node-${id}`));
      const base = { ARBEIDER_NODE_ID: id, ARBEIDER_REPO_DIR: repos[id]!, ARBEIDER_VERIFY_KEY_FILE: keys.verifyFile, MARKER_DIR: markers };
      workers[id] = await startWorker({ ...common, ARBEIDER_HEARTBEAT_SECONDS: "2", ...base, ...env }, o.runtimes?.[id]);
    }),
  );
  const ids = Object.keys(o.nodes);
  await waitUntil(async () => {
    const { nodes } = await api<{ nodes: { node: string; online: boolean }[] }>("/api/nodes");
    return ids.every((id) => nodes.some((n) => n.node === id && n.online));
  }, "every node online at the webhook", 30_000, 200);

  return {
    webhook,
    apiKey,
    api,
    origin,
    repos,
    workers,
    markers,
    /** Posts a deployment; returns its id. (A rollout strategy goes into `request` as well.) */
    async deploy(request: Record<string, unknown>): Promise<string> {
      const answer = await api<{ deployment?: string; error?: string }>("/api/deployments", request);
      if (!answer.deployment) throw new Error(`deployment refused: ${JSON.stringify(answer)}`);
      return answer.deployment;
    },
    /** Waits until deployment `id` is in a final state and returns it. */
    finished(id: string, timeoutMs = 60_000): Promise<Deployment> {
      return waitUntil(async () => {
        const d = await api<Deployment>(`/api/deployments/${id}`).catch(() => undefined);
        return d && FINAL.includes(d.state) ? d : undefined;
      }, `deployment ${id} to finish`, timeoutMs, 250);
    },
    /** How many times update.sh ran on `node` for `deployment`. */
    runs(node: string, deployment: string): number {
      const file = join(markers, `${node}.runs`);
      return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter((line) => line.includes(`deployment=${deployment} `)).length : 0;
    },
  };
}
