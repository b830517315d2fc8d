/**
 * Benchmark 1, fan-out: `POST /api/deployments` with `ping` to `all`, until
 * every one of N worker processes' `succeeded` is seen on the events
 * exchange. Floor: one raw amqplib publish to a fanout exchange, until N bare
 * bun consumer processes (bench/bare-consumer.ts) have each replied. Rounds
 * of the two alternate, so both see the same machine; the fleets grow from
 * one size to the next instead of being restarted. Beside the wall time, the
 * CPU the workers spent per ping against what the bare consumers spent per
 * message, and on a private broker the broker's per node for each, every
 * figure counted over its own half of the rounds only.
 */
import { join } from "node:path";
import { cpuMeter } from "./cpu.ts";
import { startInBatches, type Harness, type Proc } from "./harness.ts";
import { makeRepos, startWebhook, startWorkers } from "./fleet.ts";
import { percentile, result, type Result } from "./results.ts";
import { replyQueue, tapEvents } from "./tap.ts";

const ROUND_TIMEOUT_MS = 30_000;

export async function fanout(h: Harness): Promise<Result[]> {
  const sizes = h.quick ? [1, 2] : [1, 10, 50];
  const rounds = h.quick ? 5 : 100;
  const fleet = h.fleet("fanout");
  const repos = makeRepos(join(h.dir, "fanout"));
  const webhook = await startWebhook(h, fleet);
  const tap = await tapEvents(h.broker.amqpUrl, fleet);
  const replies = await replyQueue(h.broker.amqpUrl);
  const exchange = `bench.fanout.${fleet}`;
  await replies.channel.assertExchange(exchange, "fanout", { durable: true });
  const procs: Proc[] = [webhook.proc];
  const workers: Proc[] = [];
  const bare: Proc[] = [];

  const ping = { command: "ping", target: "all" };
  const ours = (n: number) => webhook.roundTrip(tap, ping, n, ROUND_TIMEOUT_MS);
  const floor = (n: number) => replies.roundTrip(exchange, n, ROUND_TIMEOUT_MS);

  const results: Result[] = [];
  let size = 0;
  try {
    for (const n of sizes) {
      workers.push(...(await startWorkers(h, fleet, repos, size, n)));
      bare.push(
        ...(await startInBatches(size, n, 8, async (i) => {
          const proc = h.spawn(["bun", "bench/bare-consumer.ts"], { BENCH_EXCHANGE: exchange, BENCH_QUEUE: `${exchange}.${i}` });
          await proc.waitForLine("consuming");
          return proc;
        })),
      );
      procs.push(...workers.slice(size), ...bare.slice(size));
      size = n;
      await webhook.online(n);
      for (let i = 0; i < 3; i++) await ours(n).then(() => floor(n)); // warm-up, not counted
      const a: number[] = [];
      const b: number[] = [];
      const workerCpu = cpuMeter({ roots: () => workers.map((p) => p.pid) });
      const bareCpu = cpuMeter({ roots: () => bare.map((p) => p.pid) });
      const brokerCpu = cpuMeter({ roots: () => h.broker.pids });
      const cpu = { workers: 0, bare: 0, brokerOurs: 0, brokerFloor: 0 };
      for (let i = 0; i < rounds; i++) {
        workerCpu.lap();
        brokerCpu.lap();
        a.push(await ours(n));
        cpu.workers += workerCpu.lap();
        cpu.brokerOurs += brokerCpu.lap();
        bareCpu.lap();
        b.push(await floor(n));
        cpu.bare += bareCpu.lap();
        cpu.brokerFloor += brokerCpu.lap();
      }
      const goal = n >= 10 ? { ratioAtMost: 2 } : undefined;
      results.push(result(`fan-out ping p50, N=${n}`, percentile(a, 50), "ms", percentile(b, 50), goal));
      results.push(result(`fan-out ping p99, N=${n}`, percentile(a, 99), "ms", percentile(b, 99)));
      const perPing = (ms: number) => ms / (rounds * n);
      results.push(result(`worker CPU per ping vs bare consumer, N=${n}`, perPing(cpu.workers), "ms", perPing(cpu.bare), goal));
      if (h.broker.kind === "private") results.push(result(`broker CPU per node and ping vs per bare message, N=${n}`, perPing(cpu.brokerOurs), "ms", perPing(cpu.brokerFloor)));
      console.error(`bench: fan-out N=${n}: p50 ${percentile(a, 50).toFixed(1)} ms (floor ${percentile(b, 50).toFixed(1)} ms), CPU per ping ${perPing(cpu.workers).toFixed(2)} ms (bare ${perPing(cpu.bare).toFixed(2)} ms)`);
    }
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await tap.close();
    await replies.close();
  }
  return results;
}
