/**
 * Benchmark 5, rollouts: 50 workers updated to a newly pushed commit in four
 * waves with no bake time (`waves=25%,50%,75%,100%;bake=0`), against the same
 * update all at once (`waves=100%`), rounds alternating; from `POST
 * /api/deployments` until every node's `succeeded` is seen. The waves cost
 * what the driver needs to see each wave finish and start the next. While
 * each four-wave rollout runs, a CI sends Codeship `success` notifications
 * (20 a second, not waiting for answers) for a branch whose target has no
 * node online, so they are accepted, recorded and answered 202 beside the
 * rollout's history traffic without changing it: their answer times tell
 * whether an accepted deploy waits behind that traffic. Beside each, a `GET
 * /healthz` (no broker, no work) is the floor: how long any answer of the
 * webhook took at that moment.
 */
import { join } from "node:path";
import { API_KEY, codeship, makeRepos, startWebhook, startWorkers, type Webhook } from "./fleet.ts";
import type { Harness, Proc } from "./harness.ts";
import { median, percentile, result, type Result } from "./results.ts";
import { tapEvents } from "./tap.ts";

const CI_EVERY_MS = 50;
const WAVES = "waves=25%,50%,75%,100%;bake=0";

/** Milliseconds until `url` answered `status`. */
async function timed(url: string, status: number, init?: RequestInit): Promise<number> {
  const t0 = performance.now();
  const response = await fetch(url, init);
  const text = await response.text();
  if (response.status !== status) throw new Error(`${url} answered ${response.status} during a rollout: ${text}`);
  return performance.now() - t0;
}

/** Codeship notifications, each beside a /healthz, sent every CI_EVERY_MS until stopped; resolves with each one's ms until its answer. */
function ciTraffic(webhook: Webhook, firstBuild: number): { stop(): Promise<{ accepted: number[]; health: number[] }> } {
  const hook = `${webhook.url}/hooks/codeship?api_key=${API_KEY}`;
  const template = codeship("success", "ci");
  const accepted: Promise<number>[] = [];
  const health: Promise<number>[] = [];
  let build = firstBuild;
  const timer = setInterval(() => {
    const body = template.replaceAll("{{n}}", String(build++));
    accepted.push(timed(hook, 202, { method: "POST", body, headers: { "content-type": "application/json" } }));
    health.push(timed(`${webhook.url}/healthz`, 200));
  }, CI_EVERY_MS);
  return {
    async stop() {
      clearInterval(timer);
      return { accepted: await Promise.all(accepted), health: await Promise.all(health) };
    },
  };
}

export async function rollouts(h: Harness): Promise<Result[]> {
  const nodes = h.quick ? 2 : 50;
  const rounds = h.quick ? 1 : 8;
  const fleet = h.fleet("rollout");
  const repos = makeRepos(join(h.dir, "rollout"));
  // Branch `ci` goes to a group no node is in: its deploys are recorded queued and change nothing else.
  const webhook = await startWebhook(h, fleet, { ARBEIDER_BRANCHES: "master,ci=group:nobody" });
  const tap = await tapEvents(h.broker.amqpUrl, fleet);
  const procs: Proc[] = [webhook.proc];
  try {
    procs.push(...(await startWorkers(h, fleet, repos, 0, nodes, { niced: true })));
    await webhook.online(nodes);
    const update = (sha: string, strategy: string) => ({ command: "update", target: "all", args: { branch: "master", commit: sha }, strategy });
    const once: number[] = [];
    const waves: number[] = [];
    const accepted: number[] = [];
    const health: number[] = [];
    for (let round = 0; round <= rounds; round++) {
      const a = await webhook.roundTrip(tap, update(repos.commit({ [`once-${round}.txt`]: "x\n" }), "waves=100%"), nodes, 120_000);
      const ci = ciTraffic(webhook, 1_000_000 * (round + 1));
      const b = await webhook.roundTrip(tap, update(repos.commit({ [`waves-${round}.txt`]: "x\n" }), WAVES), nodes, 120_000);
      const answered = await ci.stop();
      if (round === 0) continue; // warm-up
      once.push(a);
      waves.push(b);
      accepted.push(...answered.accepted);
      health.push(...answered.health);
    }
    console.error(`bench: rollout of ${nodes} nodes: 4 waves ${median(waves).toFixed(0)} ms, at once ${median(once).toFixed(0)} ms; CI 202 p99 ${percentile(accepted, 99).toFixed(1)} ms over ${accepted.length}`);
    return [
      result(`rollout p50, ${nodes} nodes: 4 waves (bake 0) vs all at once`, median(waves), "ms", median(once), { ratioAtMost: 1.5 }),
      result(`CI deploy 202 p50 during a ${nodes}-node rollout vs /healthz`, percentile(accepted, 50), "ms", percentile(health, 50)),
      result(`CI deploy 202 p99 during a ${nodes}-node rollout vs /healthz`, percentile(accepted, 99), "ms", percentile(health, 99), { valueBelow: 100 }),
    ];
  } finally {
    await tap.close();
    await Promise.all(procs.map((p) => p.stop()));
  }
}
