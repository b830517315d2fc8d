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
 * whether an accepted deploy waits behind that traffic.
 */
import { join } from "node:path";
import { API_KEY, codeship, makeRepos, startWebhook, startWorkers, type Webhook } from "./fleet.ts";
import type { Harness, Proc } from "./harness.ts";
import { median, percentile, result, type Result } from "./results.ts";
import { tapEvents } from "./tap.ts";

const CI_EVERY_MS = 50;
const WAVES = "waves=25%,50%,75%,100%;bake=0";

/** Codeship notifications sent every CI_EVERY_MS until stopped; resolves with each one's ms until its 202. */
function ciTraffic(webhook: Webhook, firstBuild: number): { stop(): Promise<number[]> } {
  const url = `${webhook.url}/hooks/codeship?api_key=${API_KEY}`;
  const template = codeship("success", "ci");
  const answers: Promise<number>[] = [];
  let build = firstBuild;
  const send = async () => {
    const t0 = performance.now();
    const response = await fetch(url, { method: "POST", body: template.replaceAll("{{n}}", String(build++)), headers: { "content-type": "application/json" } });
    const text = await response.text();
    if (response.status !== 202) throw new Error(`a CI deploy during a rollout answered ${response.status}: ${text}`);
    return performance.now() - t0;
  };
  const timer = setInterval(() => answers.push(send()), CI_EVERY_MS);
  return {
    stop() {
      clearInterval(timer);
      return Promise.all(answers);
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
    procs.push(...(await startWorkers(h, fleet, repos, 0, nodes)));
    await webhook.online(nodes);
    const update = (sha: string, strategy: string) => ({ command: "update", target: "all", args: { branch: "master", commit: sha }, strategy });
    const once: number[] = [];
    const waves: number[] = [];
    const accepted: number[] = [];
    for (let round = 0; round <= rounds; round++) {
      const a = await webhook.roundTrip(tap, update(repos.commit({ [`once-${round}.txt`]: "x\n" }), "waves=100%"), nodes, 120_000);
      const ci = ciTraffic(webhook, 1_000_000 * (round + 1));
      const b = await webhook.roundTrip(tap, update(repos.commit({ [`waves-${round}.txt`]: "x\n" }), WAVES), nodes, 120_000);
      const answered = await ci.stop();
      if (round === 0) continue; // warm-up
      once.push(a);
      waves.push(b);
      accepted.push(...answered);
    }
    console.error(`bench: rollout of ${nodes} nodes: 4 waves ${median(waves).toFixed(0)} ms, at once ${median(once).toFixed(0)} ms; CI 202 p99 ${percentile(accepted, 99).toFixed(1)} ms over ${accepted.length}`);
    return [
      result(`rollout p50, ${nodes} nodes: 4 waves (bake 0) vs all at once`, median(waves), "ms", median(once), { ratioAtMost: 1.5 }),
      result(`CI deploy 202 p50 during a ${nodes}-node rollout`, percentile(accepted, 50), "ms", null),
      result(`CI deploy 202 p99 during a ${nodes}-node rollout`, percentile(accepted, 99), "ms", null, { valueBelow: 100 }),
    ];
  } finally {
    await tap.close();
    await Promise.all(procs.map((p) => p.stop()));
  }
}
