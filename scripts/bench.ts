/**
 * arbeider's benchmarks against the physical floor, all in one run
 * on one broker: fan-out, webhook rate, worker cost, a real deploy, and
 * 1,000 simulated nodes. Every figure is printed beside its floor, measured
 * in the same run, with the ratio and the goal; the table goes to stdout and
 * the same rows to bench/results.json. Each run works in a RabbitMQ vhost of
 * its own that is deleted at the end, and stops every process it started,
 * also on an error or Ctrl-C.
 *
 *   make bench      (or: bun scripts/bench.ts [--quick] [--only=fanout,rate,cost,deploy,scale] [--out=FILE])
 *
 * Needs a local RabbitMQ reachable with `rabbitmqctl`, git, and wrk (Debian:
 * apt-get install wrk); Debian's `webhook` package, if installed, is the peer.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { realDeploy } from "../bench/deploy.ts";
import { fanout } from "../bench/fanout.ts";
import { createHarness, ROOT, type Harness } from "../bench/harness.ts";
import { table, type Result } from "../bench/results.ts";
import { simulate } from "../bench/simulate.ts";
import { webhookRate } from "../bench/webhook-rate.ts";
import { workerCost } from "../bench/worker-cost.ts";

export const MEASUREMENTS: Record<string, (h: Harness) => Promise<Result[]>> = {
  fanout,
  rate: webhookRate,
  cost: workerCost,
  deploy: realDeploy,
  scale: simulate,
};

const USAGE = `usage: bun scripts/bench.ts [--quick] [--only=${Object.keys(MEASUREMENTS).join(",")}] [--out=FILE]`;

/** `--quick`, `--only=a,b` and `--out=FILE` from the command line. */
export function parseArgs(argv: string[]): { quick: boolean; only: string[]; out: string } {
  let quick = false;
  let only = Object.keys(MEASUREMENTS);
  let out = join(ROOT, "bench/results.json");
  for (const arg of argv) {
    if (arg === "--quick") quick = true;
    else if (arg.startsWith("--only=")) only = arg.slice("--only=".length).split(",");
    else if (arg.startsWith("--out=")) out = arg.slice("--out=".length);
    else throw new Error(`unknown argument ${arg}; ${USAGE}`);
  }
  const unknown = only.filter((name) => !(name in MEASUREMENTS));
  if (unknown.length > 0) throw new Error(`unknown measurement ${unknown.join(", ")}; known: ${Object.keys(MEASUREMENTS).join(", ")}`);
  return { quick, only, out };
}

export async function main(argv: string[]): Promise<number> {
  const { quick, only, out } = parseArgs(argv);
  const started = performance.now();
  const h = createHarness({ quick });
  const interrupted = (signal: NodeJS.Signals) => {
    console.error(`bench: ${signal}: stopping every process and deleting vhost ${h.vhost}`);
    void h.cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);

  const results: Result[] = [];
  let failed = 0;
  try {
    for (const name of only) {
      const t0 = performance.now();
      console.error(`bench: ${name}...`);
      try {
        results.push(...(await MEASUREMENTS[name]!(h)));
      } catch (error) {
        failed++;
        console.error(`bench: ${name} failed: ${(error as Error).stack ?? error}`);
      }
      await h.stopAll();
      console.error(`bench: ${name} took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    await h.cleanup();
  }
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(table(results));
  console.log(`\n${quick ? "quick run, " : ""}${((performance.now() - started) / 1000).toFixed(0)} s; results in ${out}`);
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
