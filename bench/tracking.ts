/**
 * Benchmark 6, the webhook's tracking: one `update` (a rollout, all nodes in
 * one wave) to every node of a fleet of virtual nodes (bench/event-fleet.ts),
 * from `POST /api/deployments` until the SSE client (a dashboard open on the
 * whole fleet) is told the deployment succeeded. Per node event (three per
 * node: received, started, succeeded): the wall time, the webhook's CPU and
 * the bytes sent to the SSE client. At 20 and at 2,000 nodes, by two webhooks
 * with fleets of their own, rounds alternating between them; the CPU at
 * 2,000 nodes is judged against the CPU at 20: a webhook whose cost per event
 * grows with the deployment's size is quadratic in it.
 */
import { cpuMeter } from "./cpu.ts";
import { startWebhook, type Webhook } from "./fleet.ts";
import type { Harness, Proc } from "./harness.ts";
import { median, result, type Result } from "./results.ts";
import { followEvents, type SseClient } from "./sse-client.ts";

const EVENTS_PER_NODE = 3;

interface Side {
  nodes: number;
  webhook: Webhook;
  sse: SseClient;
  fleet: Proc;
  perEvent: { wallMs: number[]; cpuMs: number[]; brokerMs: number[]; sseBytes: number[] };
}

async function side(h: Harness, nodes: number): Promise<Side> {
  const fleet = h.fleet(`track${nodes}`);
  const webhook = await startWebhook(h, fleet);
  const proc = h.spawn(["bun", "bench/event-fleet.ts"], { ARBEIDER_FLEET: fleet, BENCH_NODES: String(nodes) });
  await proc.waitForLine("ready", 60_000);
  await webhook.online(nodes);
  return { nodes, webhook, sse: await followEvents(webhook.url), fleet: proc, perEvent: { wallMs: [], cpuMs: [], brokerMs: [], sseBytes: [] } };
}

/** One deployment to every node of `s`; records its figures per node event. */
async function round(h: Harness, s: Side, record: boolean): Promise<void> {
  const meter = cpuMeter({ roots: () => [s.webhook.proc.pid] });
  const broker = cpuMeter({ roots: () => h.broker.pids });
  const bytes = s.sse.bytes;
  const t0 = performance.now();
  const id = await s.webhook.deploy({ command: "update", target: "all", args: { branch: "master", commit: "1".repeat(40) } });
  const end = await s.sse.finished(id, 120_000);
  if (end.state !== "succeeded") throw new Error(`deployment ${id} of ${s.nodes} virtual nodes ended ${end.state}`);
  if (!record) return;
  const events = s.nodes * EVENTS_PER_NODE;
  s.perEvent.wallMs.push((end.at - t0) / events);
  s.perEvent.cpuMs.push(meter.lap() / events);
  s.perEvent.brokerMs.push(broker.lap() / events);
  s.perEvent.sseBytes.push((s.sse.bytes - bytes) / events);
}

export async function tracking(h: Harness): Promise<Result[]> {
  const [small, large] = h.quick ? [2, 20] : [20, 2000];
  const rounds = h.quick ? 2 : 4;
  // A small deployment's CPU is a few clock ticks: many of them make one figure.
  const smallPerLarge = h.quick ? 1 : 25;
  const sides: Side[] = [];
  try {
    sides.push(await side(h, small), await side(h, large));
    const [a, b] = sides as [Side, Side];
    for (let r = 0; r <= rounds; r++) {
      for (let i = 0; i < smallPerLarge; i++) await round(h, a, r > 0);
      await round(h, b, r > 0);
    }
    const mean = (samples: number[]) => samples.reduce((x, y) => x + y, 0) / samples.length;
    const cpu = (s: Side) => mean(s.perEvent.cpuMs);
    console.error(`bench: tracking: CPU per node event ${(cpu(b) * 1000).toFixed(0)} µs at ${large} nodes, ${(cpu(a) * 1000).toFixed(0)} µs at ${small}`);
    return [
      result(`tracking: webhook CPU per node event, ${large} vs ${small} nodes`, cpu(b) * 1000, "µs", cpu(a) * 1000, { ratioAtMost: 1.5 }),
      result(`tracking: time per node event, ${large} vs ${small} nodes`, median(b.perEvent.wallMs) * 1000, "µs", median(a.perEvent.wallMs) * 1000),
      result(`tracking: SSE bytes per node event, ${large} nodes`, median(b.perEvent.sseBytes), "B", median(a.perEvent.sseBytes), { valueBelow: 2048 }),
      ...(h.broker.kind === "private" ? [result(`tracking: broker CPU per node event, ${large} vs ${small} nodes`, mean(b.perEvent.brokerMs) * 1000, "µs", mean(a.perEvent.brokerMs) * 1000)] : []),
    ];
  } finally {
    for (const s of sides) s.sse.close();
    await Promise.all(sides.flatMap((s) => [s.webhook.proc.stop(), s.fleet.stop()]));
  }
}
