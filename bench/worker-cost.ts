/**
 * Benchmark 3, what the agent costs on every node: resident memory 3 s after
 * spawn, when it sits idle on its queue, and the time from spawn to the log
 * line saying it consumes, for `bun worker.ts` and `bun dist/worker.js`.
 * Floor: a bare bun process with one amqplib consumer (bench/bare-consumer.ts).
 * The three start one after another (never two starting at once), then idle
 * side by side; the median over the repetitions is reported.
 */
import amqp from "amqplib";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT, rssKiB, type Harness, type Proc } from "./harness.ts";
import { CONSUMING, makeRepos, startWorker } from "./fleet.ts";
import { median, result, type Result } from "./results.ts";
import { declareExchanges } from "../shared/topology.ts";

const IDLE_MS = 3000;

interface Variant {
  name: string;
  start(rep: number): Promise<Proc>;
  spawnMs: number[];
  rssMiB: number[];
}

export async function workerCost(h: Harness): Promise<Result[]> {
  const reps = h.quick ? 1 : 5;
  const fleet = h.fleet("cost");
  // No webhook runs here, and workers declare no exchange: declare the fleet's as the webhook would.
  const connection = await amqp.connect(h.broker.amqpUrl);
  await declareExchanges(await connection.createConfirmChannel(), fleet);
  await connection.close();
  const repos = makeRepos(join(h.dir, "cost"));
  const variant = (name: string, start: (rep: number) => Promise<Proc>): Variant => ({ name, start, spawnMs: [], rssMiB: [] });
  const variants = [
    variant("bare consumer", async (rep) => {
      const proc = h.spawn(["bun", "bench/bare-consumer.ts"], { BENCH_EXCHANGE: `bench.cost.${fleet}`, BENCH_QUEUE: `bench.cost.${fleet}.${rep}` });
      await proc.waitForLine("consuming");
      return proc;
    }),
    variant("bun worker.ts", () => startWorker(h, fleet, "source", worktree("source"))),
  ];
  if (existsSync(join(ROOT, "dist/worker.js"))) {
    variants.push(variant("bun dist/worker.js", () => startWorker(h, fleet, "bundle", worktree("bundle"), ["bun", "dist/worker.js"])));
  } else {
    console.error("bench: dist/worker.js is missing (make dist); measuring bun worker.ts only");
  }
  const clones = new Map<string, string>();
  function worktree(name: string): string {
    if (!clones.has(name)) clones.set(name, repos.clone(name));
    return clones.get(name)!;
  }

  for (let rep = 0; rep < reps; rep++) {
    const procs: Proc[] = [];
    try {
      for (const v of variants) {
        const proc = await v.start(rep);
        procs.push(proc);
        v.spawnMs.push((await proc.waitForLine(v === variants[0] ? "consuming" : CONSUMING)) - proc.spawnedAt);
      }
      for (const [i, v] of variants.entries()) {
        await Bun.sleep(Math.max(0, procs[i]!.spawnedAt + IDLE_MS - performance.now()));
        v.rssMiB.push(rssKiB(procs[i]!.pid) / 1024);
      }
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
    }
  }

  const [floor, ...workers] = variants as [Variant, ...Variant[]];
  return workers.flatMap((v) => [
    result(`idle RSS, ${v.name}`, median(v.rssMiB), "MiB", median(floor.rssMiB), { ratioAtMost: 1.15 }),
    result(`spawn to consuming, ${v.name}`, median(v.spawnMs), "ms", median(floor.spawnMs), { valueAtMost: 100 }),
  ]);
}
