/**
 * arbeider's benchmarks against the physical floor and its peers, all in one
 * run on one broker: fan-out, webhook rate, worker cost, a real deploy beside
 * a webhook per node and Ansible, rollouts, the webhook's tracking, and
 * 1,000 simulated nodes. Every figure is printed beside its floor, measured
 * in the same run, with the ratio and the goal; the table goes to stdout and
 * the same rows to bench/results.json. A full run as root works on a private
 * broker it starts (bench/brokers.ts), otherwise in a vhost of its own on the
 * shared one; either is removed at the end, with every process the run
 * started, also on an error or Ctrl-C.
 *
 *   make bench      (or: bun scripts/bench.ts [--quick] [--only=fanout,rate,...] [--out=FILE])
 *
 * Needs a local RabbitMQ reachable with `rabbitmqctl` and git. wrk, Debian's
 * `webhook`, Ansible and sshd are installed as root when missing (never by a
 * quick run); a part that lacks one is skipped and says why.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { chooseBroker } from "../bench/brokers.ts";
import { realDeploy } from "../bench/deploy.ts";
import { fanout } from "../bench/fanout.ts";
import { createHarness, ROOT, type Harness } from "../bench/harness.ts";
import { table, type Result } from "../bench/results.ts";
import { rollouts } from "../bench/rollout.ts";
import { simulate } from "../bench/simulate.ts";
import { tracking } from "../bench/tracking.ts";
import { webhookRate } from "../bench/webhook-rate.ts";
import { workerCost } from "../bench/worker-cost.ts";

export const MEASUREMENTS: Record<string, (h: Harness) => Promise<Result[]>> = {
  fanout,
  rate: webhookRate,
  cost: workerCost,
  deploy: realDeploy,
  rollout: rollouts,
  tracking,
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
    await chooseBroker(h);
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
