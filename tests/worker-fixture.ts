/**
 * The worker tests' fixture, built on tests/helpers.ts: a fleet of its own, an
 * origin repository whose `update.sh` writes one line per run (with the
 * contract's environment) into a marker folder outside the checkouts, node
 * checkouts, and `bun worker.ts` processes for them. `withNodes` removes
 * everything it made, whether the test passed or not.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  cloneNode,
  command,
  makeKeys,
  makeOrigin,
  openFleet,
  removeDirs,
  startWorker,
  tempDir,
  waitUntil,
  type Fleet,
  type Proc,
} from "./helpers.ts";
import type { Command, Event } from "../shared/protocol.ts";

/**
 * Writes what it was run with; with `gate` in the checkout (or at the commit written in `markers/gate-at`)
 * waits for `markers/open` (or for the test folder to go, so a failed test leaves nothing behind); then
 * fails when the checkout has a file `broken` (or, on one node, at the commit written in
 * `markers/<node>.fail-at`), and hangs when it has `hang`.
 */
export const UPDATE_SH = `#!/bin/sh
echo "run deployment=$ARBEIDER_DEPLOYMENT node=$ARBEIDER_NODE_ID branch=$ARBEIDER_BRANCH commit=$ARBEIDER_COMMIT previous=$ARBEIDER_PREVIOUS_COMMIT pwd=$(pwd)" >> "$MARKER_DIR/$ARBEIDER_NODE_ID.runs"
echo "broker url: \${AMQP_URL:-not given}" > "$MARKER_DIR/$ARBEIDER_NODE_ID.amqp"
if [ -f gate ] || [ "$(cat "$MARKER_DIR/gate-at" 2>/dev/null)" = "$ARBEIDER_COMMIT" ]; then
  echo $$ > "$MARKER_DIR/$ARBEIDER_NODE_ID.script.pid"
  while [ ! -f "$MARKER_DIR/open" ] && [ -d "$MARKER_DIR" ]; do sleep 0.05; done
fi
if [ -f broken ]; then echo "boom: this build is broken" >&2; exit 3; fi
if [ "$(cat "$MARKER_DIR/$ARBEIDER_NODE_ID.fail-at" 2>/dev/null)" = "$ARBEIDER_COMMIT" ]; then echo "boom: $ARBEIDER_NODE_ID cannot run $ARBEIDER_COMMIT" >&2; exit 4; fi
if [ -f hang ]; then
  echo $$ > "$MARKER_DIR/$ARBEIDER_NODE_ID.script.pid"
  sleep 60 &
  echo $! > "$MARKER_DIR/$ARBEIDER_NODE_ID.child.pid"
  wait
fi
echo "updated to $ARBEIDER_COMMIT"
`;

export interface NodeSpec {
  id: string;
  groups?: string[];
}

export type Nodes = ReturnType<typeof makeNodes>;

function makeNodes(specs: NodeSpec[], dir: string, fleet: Fleet, workers: Map<string, Proc>) {
  const keys = makeKeys(join(dir, "keys"));
  const origin = makeOrigin(dir);
  const base = origin.commit("master", { "update.sh": UPDATE_SH }, "add update.sh");
  const markers = join(dir, "markers");
  mkdirSync(markers);
  const repos = Object.fromEntries(specs.map((spec) => [spec.id, cloneNode(origin.origin, join(dir, `node-${spec.id}`))]));
  for (const spec of specs) fleet.track(spec.id);

  /** The environment `bun worker.ts` gets for `node`, with `extra` on top. */
  const envOf = (node: string, extra: Record<string, string> = {}) => ({
    ARBEIDER_FLEET: fleet.fleet,
    ARBEIDER_NODE_ID: node,
    ARBEIDER_GROUPS: (specs.find((s) => s.id === node)?.groups ?? []).join(","),
    ARBEIDER_REPO_DIR: repos[node],
    ARBEIDER_VERIFY_KEY_FILE: keys.verifyFile,
    ARBEIDER_TIMEOUT: "20",
    ARBEIDER_HEARTBEAT_SECONDS: "60",
    MARKER_DIR: markers,
    ...extra,
  });

  return {
    dir,
    fleet,
    keys,
    origin,
    /** The commit every node starts at (master with update.sh). */
    base,
    repos,
    markers,
    envOf,
    /** Starts the worker of `node` and waits until it consumes. */
    async start(node: string, extra: Record<string, string> = {}, runtime?: string[]) {
      const proc = await startWorker(envOf(node, extra), runtime);
      workers.set(node, proc);
      return proc;
    },
    worker: (node: string) => workers.get(node)!,
    /** Signs and publishes a command built from `action`. */
    send(action: Parameters<typeof command>[1], key?: string): Promise<Command> {
      return fleet.publish(command(fleet.fleet, action), keys.key, key);
    },
    /** Waits for the outcome (or refusal) of `cmd` on `node`. */
    outcome(cmd: Command, node: string, timeoutMs = 20_000): Promise<Event> {
      return fleet.waitState(cmd.deployment, node, ["succeeded", "failed", "rejected", "skipped"], timeoutMs);
    },
    /** The lines update.sh wrote on `node`. */
    runs(node: string): string[] {
      const file = join(markers, `${node}.runs`);
      return existsSync(file) ? readFileSync(file, "utf8").trim().split("\n") : [];
    },
    marker: (name: string) => join(markers, name),
  };
}

/** Runs `body` with fresh nodes in a fleet of their own, then stops their workers and removes all of it. */
export async function withNodes(specs: NodeSpec[], body: (nodes: Nodes) => Promise<void>, prefix = "wk"): Promise<void> {
  const dir = tempDir();
  const workers = new Map<string, Proc>();
  let fleet: Fleet | undefined;
  try {
    fleet = await openFleet(prefix);
    await body(makeNodes(specs, dir, fleet, workers));
  } finally {
    await Promise.all([...workers.values()].map((proc) => proc.stop(5000)));
    await fleet?.cleanup();
    removeDirs(dir);
  }
}

/** The number in marker file `name` once it holds one (a script writes its pid there). */
export function waitForPid(t: Nodes, name: string, what: string): Promise<number> {
  return waitUntil(() => {
    try {
      return Number(readFileSync(t.marker(name), "utf8")) || undefined;
    } catch {
      return undefined;
    }
  }, what);
}

/** Sends an update to a new commit holding `files` and a `gate` file: update.sh waits until `open()`. */
export async function startGatedUpdate(t: Nodes, node: string, files: Record<string, string> = {}) {
  const gated = t.origin.commit("master", { gate: "1", ...files }, "waits for the gate");
  const cmd = await t.send({ command: "update", args: { branch: "master", commit: gated } });
  const pid = await waitForPid(t, `${node}.script.pid`, "update.sh to start");
  return { cmd, gated, pid, open: () => writeFileSync(t.marker("open"), "") };
}

/**
 * SIGKILLs the worker of `node` while `pid` (a process its command started) runs, starts the worker
 * again, and waits until the restarted worker has ended that process; returns the restarted worker.
 */
export async function crashAndRestart(t: Nodes, node: string, pid: number, env: Record<string, string> = {}): Promise<Proc> {
  const worker = t.worker(node);
  worker.child.kill("SIGKILL");
  await worker.exited;
  if (!alive(pid)) throw new Error(`process ${pid} ended with the worker: nothing was left to clean up`);
  const restarted = await t.start(node, env);
  await waitUntil(() => !alive(pid), `process ${pid}, left by the killed worker, to be ended`);
  if (!restarted.output().includes("ending the processes of a command interrupted by a crash")) throw new Error("the restarted worker did not say it ended them");
  return restarted;
}

/** Whether `pid` is a live process (a zombie, never reaped in some containers, counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** Events of `deployment` from `node`, as their states in order. */
export const statesOf = (fleet: Fleet, deployment: string, node: string) => fleet.of(deployment, node).map((e) => e.state);

export { waitUntil };
