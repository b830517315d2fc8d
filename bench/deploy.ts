/**
 * Benchmark 4, a real deploy: a newly pushed commit with a trivial update.sh,
 * until every node runs it, at 20 and then 50 nodes, by four contenders on
 * clones of their own: the floor (the same `git fetch`, `git checkout` and
 * `update.sh` a worker runs, straight on each clone, all at once), arbeider
 * (`update` from `POST /api/deployments` until every node's `succeeded` is
 * seen), one Debian `webhook` per node with the CI calling every URL, and
 * Ansible over a private sshd (bench/peers.ts; each skipped with its reason
 * when it cannot run here). Each round pushes one commit and lets every
 * contender deploy it, in an order that rotates from round to round, so all
 * see the same machine; the medians of wall time and of the CPU each spent
 * on its round are reported.
 */
import { join } from "node:path";
import { cpuMeter, exitedCpuMs } from "./cpu.ts";
import { makeRepos, startWebhook, startWorkers, type Repos } from "./fleet.ts";
import type { Harness, Proc } from "./harness.ts";
import { ansiblePeer, webhookPeer } from "./peers.ts";
import { median, result, type Result } from "./results.ts";
import { tapEvents } from "./tap.ts";

export interface Round {
  wallMs: number;
  cpuMs: number;
  /** Where the CPU went, for the log. */
  parts?: Record<string, number>;
}

/** One way of getting a commit onto every node. */
export interface Contender {
  name: string;
  /** Rounds counted per size, when fewer than the others' (Ansible's take half a minute each at 50 nodes). */
  rounds?: (nodes: number) => number;
  /** Gives it nodes up to `n`, each on a new clone of the origin. */
  grow(n: number): Promise<void>;
  /** Deploys `sha` (the tip of master) to all its nodes; resolves once every one runs it. */
  deploy(sha: string): Promise<Round>;
  close(): Promise<void>;
}

/** What the floor runs on one clone, as argument lists: the worker's fetch and checkout, then the update script. */
export const NODE_STEPS = (sha: string) => [
  ["git", "fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "origin", "--", "+refs/heads/master:refs/remotes/origin/master"],
  ["git", "checkout", "--quiet", "--force", "-B", "master", sha, "--"],
  ["./update.sh"],
];

/** Runs `argv` in `cwd` and resolves with the CPU it and its children used; rejects on a non-zero exit. */
export async function runCounted(argv: string[], cwd: string, env: Record<string, string> = {}): Promise<number> {
  const proc = Bun.spawn(argv, { cwd, env: { ...process.env, GIT_TERMINAL_PROMPT: "0", ...env }, stdout: "ignore", stderr: "pipe" });
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`${argv.join(" ")} in ${cwd} exited with ${code}: ${stderr.slice(-2000)}`);
  return exitedCpuMs(proc);
}

function floor(repos: Repos): Contender {
  const clones: string[] = [];
  return {
    name: "floor",
    async grow(n) {
      while (clones.length < n) clones.push(repos.clone(`floor-${clones.length}`));
    },
    async deploy(sha) {
      const t0 = performance.now();
      const cpu = await Promise.all(clones.map(async (repo) => {
        let ms = 0;
        for (const step of NODE_STEPS(sha)) ms += await runCounted(step, repo);
        return ms;
      }));
      return { wallMs: performance.now() - t0, cpuMs: cpu.reduce((a, b) => a + b, 0) };
    },
    close: async () => {},
  };
}

/** arbeider: the webhook and one worker per node; its CPU is theirs and, on a private broker, the broker's. */
async function arbeider(h: Harness, repos: Repos): Promise<Contender> {
  const fleet = h.fleet("deploy");
  const webhook = await startWebhook(h, fleet);
  const tap = await tapEvents(h.broker.amqpUrl, fleet);
  const workers: Proc[] = [];
  const meters = {
    webhook: cpuMeter({ roots: () => [webhook.proc.pid] }),
    workers: cpuMeter({ roots: () => workers.map((w) => w.pid) }),
    broker: cpuMeter({ roots: () => h.broker.pids }),
  };
  return {
    name: "arbeider",
    async grow(n) {
      workers.push(...(await startWorkers(h, fleet, repos, workers.length, n)));
      await webhook.online(n);
    },
    async deploy(sha) {
      for (const meter of Object.values(meters)) meter.lap();
      const update = { command: "update", target: "all", args: { branch: "master", commit: sha } };
      const wallMs = await webhook.roundTrip(tap, update, workers.length, 120_000);
      const parts = Object.fromEntries(Object.entries(meters).map(([name, meter]) => [name, meter.lap()]));
      return { wallMs, cpuMs: Object.values(parts).reduce((a, b) => a + b, 0), parts };
    },
    async close() {
      await tap.close();
      await Promise.all([webhook.proc, ...workers].map((p) => p.stop()));
    },
  };
}

export async function realDeploy(h: Harness): Promise<Result[]> {
  const sizes = h.quick ? [2] : [20, 50];
  const rounds = h.quick ? 1 : 8;
  const repos = makeRepos(join(h.dir, "deploy"));
  const contenders: Contender[] = [floor(repos), await arbeider(h, repos)];
  for (const peer of [webhookPeer, ansiblePeer]) {
    const started = await peer(h, repos);
    if (typeof started === "string") console.error(`bench: real deploy: ${started}`);
    else contenders.push(started);
  }
  const results: Result[] = [];
  try {
    for (const n of sizes) {
      for (const c of contenders) await c.grow(n);
      const seen = new Map(contenders.map((c) => [c.name, [] as Round[]]));
      for (let round = 0; round <= rounds; round++) {
        const sha = repos.commit({ [`release-${n}-${round}.txt`]: `${round}\n` });
        // Each round starts with another contender, so none always runs first (or last) on a warm machine.
        const order = contenders.map((_, i) => contenders[(i + round) % contenders.length]!);
        for (const c of order) {
          if (round > (c.rounds?.(n) ?? rounds)) continue;
          const r = await c.deploy(sha);
          if (round > 0 || h.quick) seen.get(c.name)!.push(r); // round 0 warms up (Ansible's SSH connections, git's caches)
        }
      }
      results.push(...report(n, seen));
    }
  } finally {
    await Promise.all(contenders.map((c) => c.close()));
  }
  return results;
}

/** The figures of one size: each contender's wall and CPU beside the floor's, and the issue's comparisons. */
function report(n: number, seen: Map<string, Round[]>): Result[] {
  const wall = (name: string) => median(seen.get(name)!.map((r) => r.wallMs));
  const cpu = (name: string) => median(seen.get(name)!.map((r) => r.cpuMs));
  const out: Result[] = [result(`real deploy p50, ${n} nodes: arbeider vs floor`, wall("arbeider"), "ms", wall("floor"), { ratioAtMost: 1.2 })];
  if (seen.has("one webhook per node")) {
    out.push(result(`real deploy p50, ${n} nodes: arbeider vs one webhook per node`, wall("arbeider"), "ms", wall("one webhook per node"), { ratioAtMost: 1.1 }));
  }
  if (seen.has("Ansible")) out.push(result(`real deploy p50, ${n} nodes: Ansible vs arbeider`, wall("Ansible"), "ms", wall("arbeider"), { ratioAtLeast: 25 }));
  for (const name of seen.keys()) {
    if (name !== "floor" && name !== "arbeider") out.push(result(`real deploy p50, ${n} nodes: ${name} vs floor`, wall(name), "ms", wall("floor")));
  }
  for (const name of seen.keys()) {
    if (name !== "floor") out.push(result(`real deploy CPU per round, ${n} nodes: ${name} vs floor`, cpu(name), "ms", cpu("floor")));
  }
  const parts = (name: string) => {
    const known = seen.get(name)![0]?.parts;
    if (!known) return "";
    return `: ${Object.keys(known).map((part) => `${part} ${median(seen.get(name)!.map((r) => r.parts![part]!)).toFixed(0)}`).join(", ")}`;
  };
  const summary = [...seen.keys()].map((name) => `${name} ${wall(name).toFixed(0)} ms (CPU ${cpu(name).toFixed(0)} ms${parts(name)})`).join(", ");
  console.error(`bench: real deploy to ${n} nodes: ${summary}`);
  return out;
}
