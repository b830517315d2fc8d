/**
 * Benchmark 4, a real deploy: 20 workers on 20 clones, `update` to a newly
 * pushed commit with a trivial update.sh, from `POST /api/deployments` until
 * every node's `succeeded` is seen. Floor: the same git fetch and checkout
 * commands the worker runs (worker/git.ts `fetchBranch` and `checkoutAt`),
 * run directly on 20 other clones of the same origin, all 20 at once, as the
 * 20 workers run at once. Each round pushes one commit and deploys it both
 * ways, floor first.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { startInBatches, type Harness, type Proc } from "./harness.ts";
import { makeRepos, startWebhook, startWorker } from "./fleet.ts";
import { median, result, type Result } from "./results.ts";
import { tapEvents } from "./tap.ts";

/** git with an argument list in `cwd`; rejects with its stderr. */
function git(cwd: string, args: string[]): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn("git", args, { cwd, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, GIT_TERMINAL_PROMPT: "0" } });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", fail);
    child.on("exit", (code) => (code === 0 ? done() : fail(new Error(`git ${args.join(" ")} in ${cwd}: ${stderr}`))));
  });
}

/** The floor's work on one clone: fetch the branch, check the commit out on it. */
async function fetchAndCheckout(repo: string, sha: string): Promise<void> {
  await git(repo, ["fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "origin", "--", "+refs/heads/master:refs/remotes/origin/master"]);
  await git(repo, ["checkout", "--quiet", "--force", "-B", "master", sha, "--"]);
}

export async function realDeploy(h: Harness): Promise<Result[]> {
  const nodes = h.quick ? 2 : 20;
  const rounds = h.quick ? 1 : 10;
  const fleet = h.fleet("deploy");
  const repos = makeRepos(join(h.dir, "deploy"));
  const floorClones = Array.from({ length: nodes }, (_, i) => repos.clone(`floor-${i}`));
  const webhook = await startWebhook(h, fleet);
  const tap = await tapEvents(h.amqpUrl, fleet);
  const procs: Proc[] = [webhook.proc];
  try {
    procs.push(...(await startInBatches(0, nodes, 8, (i) => startWorker(h, fleet, `node-${i}`, repos.clone(`node-${i}`)))));
    const ours: number[] = [];
    const floor: number[] = [];
    for (let round = 0; round <= rounds; round++) {
      const sha = repos.commit({ [`release-${round}.txt`]: `${round}\n` });
      const t0 = performance.now();
      await Promise.all(floorClones.map((repo) => fetchAndCheckout(repo, sha)));
      const t1 = performance.now();
      const update = { command: "update", target: "all", args: { branch: "master", commit: sha } };
      const ms = await webhook.roundTrip(tap, update, nodes, 120_000);
      if (round === 0) continue; // warm-up
      floor.push(t1 - t0);
      ours.push(ms);
    }
    console.error(`bench: real deploy to ${nodes} nodes: ${median(ours).toFixed(0)} ms (floor ${median(floor).toFixed(0)} ms)`);
    return [result(`real deploy p50, ${nodes} nodes`, median(ours), "ms", median(floor), { ratioAtMost: 1.5 })];
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await tap.close();
  }
}
