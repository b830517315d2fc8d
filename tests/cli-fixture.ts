/**
 * Served deployments for the CLI's unit tests, written short: node reports
 * with plain-string states at fixed times, counted as the server counts
 * them; and a recorded client that serves reads in order and pushes
 * Server-Sent Events on demand.
 */
import type { Client } from "../scripts/deploy/client.ts";
import type { Deployment } from "../scripts/deploy/view.ts";

export const T0 = Date.parse("2030-01-01T00:00:00Z");
export const at = (ms: number) => new Date(T0 + ms).toISOString();
export type Loose = Record<string, { state: string; at: string; reason?: string; durationMs?: number; commitBefore?: string; commitAfter?: string; output?: string }>;
/** A served deployment, with states as plain strings for short tables; counts as the server would count them. */
export function deployment(nodes: Loose, fields: Partial<Omit<Deployment, "nodes">> = {}): Deployment {
  const counts: Record<string, number> = {};
  for (const report of Object.values(nodes)) counts[report.state] = (counts[report.state] ?? 0) + 1;
  const expected = fields.expected ?? ["n1", "n2"];
  const waiting = expected.filter((node) => !nodes[node]).length;
  if (waiting > 0 && !fields.waves) counts.waiting = waiting;
  return {
    id: "api-1", command: "update", target: "all", args: { branch: "master" }, source: { provider: "api" },
    createdAt: at(0), expiresAt: at(3_600_000), state: "running", expected, counts, nodes, ...fields,
  } as Deployment;
}
export const ok = (ms = 1200) => ({ state: "succeeded", at: at(ms), commitBefore: "1111111aaaa", commitAfter: "2222222bbbb", durationMs: ms });

/** A client whose reads of the deployment return `reads` in order (the last one again), and whose stream the test writes. */
export function recordedClient(reads: (Deployment | undefined)[]) {
  let push!: (text: string) => void;
  let reading = 0;
  const requests: string[] = [];
  const client: Client = {
    create: async () => ({ deployment: "api-1", duplicate: false }),
    decide: async () => ({}),
    deployment: async () => reads[Math.min(reading++, reads.length - 1)],
    deployments: async () => [],
    nodes: async () => [],
    events: async (_signal, deployment) => {
      requests.push(deployment);
      return new Response(new ReadableStream<Uint8Array>({ start: (c) => void (push = (text) => c.enqueue(new TextEncoder().encode(text))) }));
    },
  };
  const send = (event: string, body: unknown) => push(`event: ${event}\ndata: ${JSON.stringify(body)}\n\n`);
  /** From now on, reads return `d`. */
  const serve = (d: Deployment) => void reads.splice(0, reads.length, d);
  return { client, send, serve, push: (text: string) => push(text), reads: () => reading, requests, connected: () => push !== undefined };
}
