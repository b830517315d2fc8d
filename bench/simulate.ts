/**
 * Benchmark 7, scale by simulation: 1,000 nodes in a few processes
 * (bench/virtual-nodes.ts), each with its own connection, queue, heartbeats
 * and the worker's real command handling. Once the webhook counts all 1,000
 * online, and with one SSE client following the whole fleet, measures `ping`
 * to all 1,000 from `POST /api/deployments` to the last `succeeded`, then closes every
 * connection of the run's vhost (as a broker restart does) and measures the
 * time until all 1,000 consume again and the peak reconnect rate over any
 * one-second window. Floors: the same number of bare consumers in the same
 * number of processes, answering a raw fanout publish: alone first (the
 * floor the goal is judged by), then in rounds alternating with arbeider's
 * (CPU per round beside wall time for both); and, for the
 * reconnect, how long those bare consumers took to connect all at once.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { freeSockets } from "./brokers.ts";
import { cpuMeter } from "./cpu.ts";
import { makeRepos, startWebhook } from "./fleet.ts";
import type { Harness, Proc } from "./harness.ts";
import { median, percentile, result, type Result } from "./results.ts";
import { followEvents } from "./sse-client.ts";
import { createTally, replyQueue, tapEvents } from "./tap.ts";

/** The most timestamps (ms) that fall in any window of `windowMs`, scaled to per second. */
export function peakRate(times: readonly number[], windowMs = 1000): number {
  const sorted = [...times].sort((a, b) => a - b);
  let peak = 0;
  for (let lo = 0, hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi]! - sorted[lo]! >= windowMs) lo++;
    peak = Math.max(peak, hi - lo + 1);
  }
  return (peak * 1000) / windowMs;
}

interface Hosts {
  procs: Proc[];
  /** Resolves with the time at which every node announced its consumer for the `epoch`-th time. */
  allConsuming(epoch: number, timeoutMs: number): Promise<number>;
  /** Arrival times of the announcements of `epoch`, and of the first lost connection. */
  times(epoch: number): number[];
  firstLost(): number | undefined;
}

/** Starts `total` virtual nodes split over `count` processes in `mode`. */
function startHosts(h: Harness, mode: "real" | "bare", total: number, count: number, env: Record<string, string>): Hosts {
  const tally = createTally();
  const seen = new Map<string, number>();
  const times = new Map<number, number[]>();
  let lost: number | undefined;
  const procs = Array.from({ length: count }, (_, k) => {
    const range = { BENCH_FROM: String(Math.floor((k * total) / count)), BENCH_TO: String(Math.floor(((k + 1) * total) / count)) };
    const proc = h.spawn(["bun", "bench/virtual-nodes.ts"], { BENCH_MODE: mode, ...range, ...env }, { quiet: true });
    proc.onLine((line, at) => {
      const [word, node] = line.split(" ");
      if (word === "lost") lost ??= at;
      if (word !== "consuming" || !node) return;
      const epoch = seen.get(node) ?? 0;
      seen.set(node, epoch + 1);
      (times.get(epoch) ?? times.set(epoch, []).get(epoch)!).push(at);
      tally.arrive(`epoch-${epoch}`, node, at);
    });
    return proc;
  });
  return {
    procs,
    allConsuming: (epoch, timeoutMs) => tally.wait(`epoch-${epoch}`, total, timeoutMs),
    times: (epoch) => times.get(epoch) ?? [],
    firstLost: () => lost,
  };
}

export async function simulate(h: Harness): Promise<Result[]> {
  const total = h.quick ? 20 : 1000;
  const count = h.quick ? 1 : 4;
  const rounds = h.quick ? 2 : 10;
  const fleet = h.fleet("scale");
  const repos = makeRepos(join(h.dir, "scale"));
  const stateDir = join(h.dir, "scale/state");
  mkdirSync(stateDir);
  const broker = h.broker;
  if (broker.kind === "shared" && freeSockets() < total + 50) console.error(`bench: the shared broker can take ${freeSockets()} more connections, fewer than ${total + 50}; expect refusals`);
  const url = { AMQP_URL: broker.amqpUrl };
  const procs: Proc[] = [];
  try {
    // The floor: bare consumers, connected all at once, answering raw publishes.
    const replies = await replyQueue(broker.amqpUrl);
    const exchange = `bench.scale.${fleet}`;
    await replies.channel.assertExchange(exchange, "fanout", { durable: true });
    const t0 = performance.now();
    const bare = startHosts(h, "bare", total, count, { ...url, BENCH_EXCHANGE: exchange });
    procs.push(...bare.procs);
    const floorConnectMs = (await bare.allConsuming(0, 120_000)) - t0;
    // Alone first: beside arbeider's 1,000 connected, heartbeating nodes the floor itself gets slower.
    const alone: number[] = [];
    for (let round = 0; round <= rounds; round++) {
      const ms = await replies.roundTrip(exchange, total, 60_000);
      if (round > 0) alone.push(ms);
    }

    // arbeider: the worker's handling in every node.
    const webhook = await startWebhook(h, fleet, url);
    procs.push(webhook.proc);
    const tap = await tapEvents(broker.amqpUrl, fleet);
    const nodes = startHosts(h, "real", total, count, {
      ...url,
      ARBEIDER_FLEET: fleet,
      ARBEIDER_VERIFY_KEY_FILE: h.keys.verifyFile,
      ARBEIDER_REPO_DIR: repos.clone("shared"),
      BENCH_STATE_DIR: stateDir,
    });
    procs.push(...nodes.procs);
    await nodes.allConsuming(0, 300_000);
    await webhook.online(total);
    const sse = await followEvents(webhook.url);
    // Rounds alternate between the two; each system's CPU is counted over its own rounds.
    const meters = {
      webhook: cpuMeter({ roots: () => [webhook.proc.pid] }),
      nodes: cpuMeter({ roots: () => nodes.procs.map((p) => p.pid) }),
      bare: cpuMeter({ roots: () => bare.procs.map((p) => p.pid) }),
      broker: cpuMeter({ roots: () => broker.pids }),
    };
    const lap = () => Object.fromEntries(Object.entries(meters).map(([name, m]) => [name, m.lap()]));
    const ping: number[] = [];
    const floorPing: number[] = [];
    const cpu = { ours: [] as number[], floor: [] as number[], webhook: [] as number[], broker: [] as number[] };
    for (let round = 0; round <= rounds; round++) {
      lap();
      const ms = await webhook.roundTrip(tap, { command: "ping", target: "all" }, total, 120_000);
      const a = lap();
      const floorMs = await replies.roundTrip(exchange, total, 60_000);
      const b = lap();
      if (round === 0) continue; // warm-up
      ping.push(ms);
      floorPing.push(floorMs);
      cpu.ours.push(a.webhook! + a.nodes! + a.broker!);
      cpu.floor.push(b.bare! + b.broker!);
      cpu.webhook.push(a.webhook!);
      cpu.broker.push(a.broker!);
    }
    sse.close();
    await tap.close();
    await replies.close();
    await webhook.proc.stop();
    await Promise.all(bare.procs.map((p) => p.stop()));
    console.error(`bench: ${total} virtual nodes: CPU per ping round ${median(cpu.ours).toFixed(0)} ms (webhook ${median(cpu.webhook).toFixed(0)}, broker ${median(cpu.broker).toFixed(0)}), floor ${median(cpu.floor).toFixed(0)} ms`);

    // Every connection of the vhost closed at once; the nodes' jittered backoff brings them back.
    const closing = performance.now();
    broker.closeAllConnections();
    const back = await nodes.allConsuming(1, 120_000);
    const reconnectS = (back - (nodes.firstLost() ?? closing)) / 1000;
    const peak = peakRate(nodes.times(1));
    console.error(`bench: ${total} virtual nodes: ping p50 ${percentile(ping, 50).toFixed(0)} ms, all back in ${reconnectS.toFixed(1)} s, peak ${peak}/s`);
    return [
      result(`ping p50, ${total} virtual nodes, one SSE client`, percentile(ping, 50), "ms", percentile(floorPing, 50), { valueBelow: 1000 }),
      result(`ping p50 vs floor alone, ${total} virtual nodes, one SSE client`, percentile(ping, 50), "ms", percentile(alone, 50), { ratioAtMost: 3 }),
      result(`CPU per ping round, ${total} virtual nodes (nodes, webhook${broker.kind === "private" ? ", broker" : ""})`, median(cpu.ours), "ms", median(cpu.floor)),
      result(`all ${total} consuming again after a forced close`, reconnectS, "s", floorConnectMs / 1000, { valueAtMost: 30 }),
      result(`peak reconnect rate, ${total} nodes`, peak, "conn/s", null),
    ];
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}
