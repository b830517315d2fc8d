/**
 * Benchmark 1, fan-out: `POST /api/deployments` with `ping` to `all`, until
 * every one of N worker processes' `succeeded` is seen on the events
 * exchange. Floor: one raw amqplib publish to a fanout exchange, until N bare
 * bun consumer processes (bench/bare-consumer.ts) have each replied. Rounds
 * of the two alternate, so both see the same machine; the fleets grow from
 * one size to the next instead of being restarted.
 */
import { join } from "node:path";
import { startInBatches, type Harness, type Proc } from "./harness.ts";
import { makeRepos, startWebhook, startWorker } from "./fleet.ts";
import { percentile, result, type Result } from "./results.ts";
import { replyQueue, tapEvents } from "./tap.ts";

const ROUND_TIMEOUT_MS = 30_000;

export async function fanout(h: Harness): Promise<Result[]> {
  const sizes = h.quick ? [1, 2] : [1, 10, 50];
  const rounds = h.quick ? 5 : 100;
  const fleet = h.fleet("fanout");
  const repos = makeRepos(join(h.dir, "fanout"));
  const webhook = await startWebhook(h, fleet);
  const tap = await tapEvents(h.amqpUrl, fleet);
  const replies = await replyQueue(h.amqpUrl);
  const exchange = `bench.fanout.${fleet}`;
  await replies.channel.assertExchange(exchange, "fanout", { durable: true });
  const procs: Proc[] = [webhook.proc];

  const ping = { command: "ping", target: "all" };
  const ours = (n: number) => webhook.roundTrip(tap, ping, n, ROUND_TIMEOUT_MS);
  const floor = (n: number) => replies.roundTrip(exchange, n, ROUND_TIMEOUT_MS);

  const results: Result[] = [];
  let size = 0;
  try {
    for (const n of sizes) {
      procs.push(
        ...(await startInBatches(size, n, 8, (i) => startWorker(h, fleet, `node-${i}`, repos.clone(`node-${i}`)))),
        ...(await startInBatches(size, n, 8, async (i) => {
          const proc = h.spawn(["bun", "bench/bare-consumer.ts"], { BENCH_EXCHANGE: exchange, BENCH_QUEUE: `${exchange}.${i}` });
          await proc.waitForLine("consuming");
          return proc;
        })),
      );
      size = n;
      for (let i = 0; i < 3; i++) await ours(n).then(() => floor(n)); // warm-up, not counted
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < rounds; i++) {
        a.push(await ours(n));
        b.push(await floor(n));
      }
      const goal = n >= 10 ? { ratioAtMost: 1.5 } : undefined;
      results.push(result(`fan-out ping p50, N=${n}`, percentile(a, 50), "ms", percentile(b, 50), goal));
      results.push(result(`fan-out ping p99, N=${n}`, percentile(a, 99), "ms", percentile(b, 99)));
      console.error(`bench: fan-out N=${n}: p50 ${percentile(a, 50).toFixed(1)} ms (floor ${percentile(b, 50).toFixed(1)} ms)`);
    }
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await tap.close();
    await replies.close();
  }
  return results;
}
