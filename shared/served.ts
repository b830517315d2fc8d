/**
 * A deployment record (shared/deployments.ts) as the API serves it: its
 * state, waves, rollback and node reports, whole for `GET /api/deployments/:id`
 * and as a small snapshot for Server-Sent Events (the top-level fields and
 * only the nodes that changed, so a 2,000-node deployment sends a few hundred
 * bytes per node event). Clients merge a snapshot into what they hold with
 * `mergeSnapshot`; they never fold events themselves. Pure.
 */
import type { Command } from "./protocol.ts";
import { failures, FINAL_STATES, BAD_STATES, needsRollback, reportOf, type DeploymentRecord, type NodeReport } from "./deployments.ts";
import type { Strategy } from "./strategy.ts";

export type DeploymentState = "queued" | "running" | "paused" | "succeeded" | "failed" | "rolled_back" | "superseded";
export type WaveState = "pending" | "running" | "baking" | "succeeded" | "failed";

export interface ServedWave {
  nodes: string[];
  state: WaveState;
  startedAt?: string;
  finishedAt?: string;
}

export interface ServedRollback {
  state: "running" | "succeeded" | "failed";
  nodes: Record<string, { state: string; commit: string; commitAfter?: string; reason?: string }>;
}

/** A deployment as the API serves it. */
export interface Deployment {
  id: string;
  command: Command["command"];
  target: string;
  args: Command["args"];
  source: Command["source"];
  createdAt: string;
  expiresAt: string;
  state: DeploymentState;
  expected: string[];
  nodes: Record<string, NodeReport>;
  /** Nodes by served state, and `waiting` for awaited nodes that said nothing yet. */
  counts: Record<string, number>;
  /** When nothing is running any more and the state is final. */
  finishedAt?: string;
  /** Why it is queued (no node matched), or why it was aborted. */
  reason?: string;
  strategy?: Strategy;
  waves?: ServedWave[];
  /** The wave after which it waits for an approval. */
  pausedAfter?: number;
  rollback?: ServedRollback;
  supersededBy?: string;
  /** Where its states were reported (CI providers, notification URLs) and how that went. */
  reports?: ServedReport[];
}

/** One state reported to one target: `pending` while it is tried, then `delivered` or `failed`. */
export interface ServedReport {
  target: string;
  event: string;
  state: "pending" | "delivered" | "failed";
  attempts: number;
  at: string;
  reason?: string;
}

/** A snapshot sent over SSE: top-level fields, and the nodes that changed (all of them when `full`). */
export type Snapshot = Partial<Omit<Deployment, "waves">> & { id: string; full?: boolean; waves?: Partial<ServedWave>[] };

export const FINISHED: ReadonlySet<DeploymentState> = new Set(["succeeded", "failed", "rolled_back", "superseded"]);

const isoOrUndefined = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : undefined);

/** The rollback's state: running until every node it sends back is done, failed if one could not go back. */
function rollbackState(record: DeploymentRecord): ServedRollback["state"] | undefined {
  if (!record.rollback) return undefined;
  let done = 0;
  for (const node of record.rollback.nodes.keys()) {
    const run = record.rollbackRuns.get(node);
    if (!run || !FINAL_STATES.has(run.state)) continue;
    if (BAD_STATES.has(run.state)) return "failed";
    done++;
  }
  return done === record.rollback.nodes.size ? "succeeded" : "running";
}

/** Nodes of the deployment still at work: for a rollout, of its waves only (a late node catching up does not reopen it). */
export function runningNodes(record: DeploymentRecord): number {
  return record.plan && record.plan.length > 0 ? record.waves.reduce((sum, w) => sum + w.running, 0) : record.total.running;
}

/** The deployment's state at `now` (ms). */
export function deploymentState(record: DeploymentRecord): DeploymentState {
  const t = record.total;
  if (!record.plan) {
    // A single command: failed as soon as a node failed; succeeded once every expected node is done.
    if (t.bad > 0) return "failed";
    if (t.running + t.good === 0) return record.expired ? "failed" : "queued";
    return record.expectedFinal === record.expected.length && t.running === 0 ? "succeeded" : "running";
  }
  if (record.superseded) return "superseded";
  if (record.abort) {
    if (record.strategy?.on_failure === "halt") return "failed";
    const rollback = rollbackState(record);
    if (rollback === "failed") return "failed";
    if (runningNodes(record) > 0 || rollback === "running" || needsRollback(record).length > 0) return "running";
    return rollback === "succeeded" ? "rolled_back" : "failed";
  }
  if (record.plan.length === 0) {
    // Nobody was online for it: the nodes that converge to it later tell.
    if (t.running + t.good + t.bad === 0) return "queued";
    return t.bad > 0 ? "failed" : t.running > 0 ? "running" : "succeeded";
  }
  if (record.started.length === 0) return "queued";
  if (record.pausedAfter !== undefined && record.started.length === record.pausedAfter && !record.approved.has(record.pausedAfter)) return "paused";
  const { failed, tolerated } = failures(record);
  const eligibleDone = record.waves.every((w, i) => w.good + w.bad === record.plan![i].length);
  if (record.started.length === record.plan.length && eligibleDone && failed <= tolerated) return "succeeded";
  return "running";
}

/** When a finished deployment finished: the last thing that happened to it. */
export function finishedAt(record: DeploymentRecord, state: DeploymentState): string | undefined {
  if (!FINISHED.has(state) || runningNodes(record) > 0) return undefined;
  return isoOrUndefined(record.lastAt) ?? record.spec?.issuedAt;
}

export function waveStates(record: DeploymentRecord, now: number): Omit<ServedWave, "nodes">[] {
  const plan = record.plan ?? [];
  const bakeMs = (record.strategy?.bake ?? 0) * 1000;
  return plan.map((nodes, i) => {
    const startedAt = record.started[i];
    if (!startedAt) return { state: "pending" as const };
    const t = record.waves[i];
    const done = t.good + t.bad === nodes.length;
    const end = done ? { finishedAt: new Date(t.lastAt || Date.parse(startedAt)).toISOString() } : {};
    let state: WaveState = "running";
    if (done) {
      const next = i + 1 < plan.length && record.started.length === i + 1;
      const stopped = record.abort || record.superseded;
      // A wave with failures beyond what the strategy tolerates failed, also before the driver's abort is recorded.
      const failedBeyond = t.bad > 0 && (record.abort !== undefined || failures(record).failed > failures(record).tolerated);
      state = failedBeyond ? "failed" : next && !stopped && now < t.lastAt + bakeMs ? "baking" : "succeeded";
    }
    return { state, startedAt, ...end };
  });
}

function servedRollback(record: DeploymentRecord): ServedRollback | undefined {
  const state = rollbackState(record);
  if (!record.rollback || !state) return undefined;
  const nodes: ServedRollback["nodes"] = {};
  for (const [node, commit] of record.rollback.nodes) {
    const run = record.rollbackRuns.get(node);
    nodes[node] = { state: run?.state ?? "waiting", commit, ...(run?.commitAfter ? { commitAfter: run.commitAfter } : {}), ...(run?.reason ? { reason: run.reason } : {}) };
  }
  return { state, nodes };
}

/** Nodes by served state, and the awaited ones that said nothing yet as `waiting`. */
function counts(record: DeploymentRecord): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [state, n] of record.byState) if (n > 0) out[state] = n;
  const started = record.plan?.slice(0, record.started.length);
  const awaited = started ? started.reduce((sum, w) => sum + w.length, 0) : record.expected.length;
  const heard = started ? record.waves.slice(0, started.length).reduce((sum, w) => sum + w.good + w.bad + w.running, 0) : record.expectedHeard;
  if (awaited > heard) out.waiting = awaited - heard;
  return out;
}

/** What a deployment was created as: it never changes, so snapshots after the first leave it out. */
function origin(record: DeploymentRecord) {
  const spec = record.spec!;
  const out = { command: spec.command, target: spec.target, args: spec.args, source: spec.source, createdAt: spec.issuedAt, expiresAt: spec.expiresAt };
  return record.strategy ? { ...out, strategy: record.strategy } : out;
}

/** The fields that change: every snapshot carries all of them (one it lacks is no longer true). */
export const CHANGING = ["state", "counts", "finishedAt", "reason", "waves", "pausedAfter", "rollback", "supersededBy", "reports"] as const;

function changing(record: DeploymentRecord, now: number): Pick<Deployment, "state" | "counts" | "finishedAt" | "reason" | "pausedAfter" | "rollback" | "supersededBy" | "reports"> & { waves?: Omit<ServedWave, "nodes">[] } {
  const state = deploymentState(record);
  const out: ReturnType<typeof changing> = { state, counts: counts(record) };
  const end = finishedAt(record, state);
  if (end) out.finishedAt = end;
  const reason = record.abort?.reason ?? (state === "queued" ? record.reason : undefined);
  if (reason) out.reason = reason;
  if (record.plan) out.waves = waveStates(record, now);
  if (state === "paused") out.pausedAfter = record.pausedAfter;
  const rollback = servedRollback(record);
  if (rollback) out.rollback = rollback;
  if (record.superseded) out.supersededBy = record.superseded.by;
  const reports = servedReports(record);
  if (reports) out.reports = reports;
  return out;
}

/** The reports in the order they were first recorded; undefined when there are none. */
function servedReports(record: DeploymentRecord): ServedReport[] | undefined {
  if (record.reports.size === 0) return undefined;
  return [...record.reports.values()].map(({ target, event, state, attempts, at, reason }) => ({ target, event, state, attempts, at, ...(reason ? { reason } : {}) }));
}

/** The served deployment at `now` (ms), or undefined while its `created` record is unknown. */
export function present(record: DeploymentRecord, now: number): Deployment | undefined {
  if (!record.spec) return undefined;
  const { waves, ...top } = changing(record, now);
  const nodes: Record<string, NodeReport> = {};
  for (const node of [...record.served.keys()].sort()) nodes[node] = reportOf(record, node)!;
  const deployment: Deployment = { id: record.id, ...origin(record), ...top, expected: record.expected, nodes };
  if (waves) deployment.waves = waves.map((w, i) => ({ nodes: record.plan![i], ...w }));
  return deployment;
}

/**
 * The SSE snapshot after a change to `changed` nodes: the whole deployment
 * when `full`, else the fields that change and those nodes' reports without
 * their output (a failed node's output is in its event and in the deployment).
 */
export function snapshot(record: DeploymentRecord, now: number, changed: readonly string[], full = false): Snapshot | undefined {
  if (!record.spec) return undefined;
  if (full) return { ...present(record, now)!, full: true };
  const nodes: Record<string, NodeReport> = {};
  for (const node of changed) {
    const report = reportOf(record, node);
    if (!report) continue;
    const { output: _output, ...small } = report;
    nodes[node] = small;
  }
  return { id: record.id, ...changing(record, now), nodes };
}

/**
 * `current` with `snap` merged in: what a client of the SSE stream holds. A
 * full snapshot replaces it. Otherwise the fields that change are taken from
 * the snapshot (one it lacks is no longer true), what the deployment was
 * created as is kept, the nodes' reports it carries replace those held
 * (without output: read the deployment for that), and wave states replace
 * those held, keeping each wave's nodes.
 */
export function mergeSnapshot(current: Deployment | undefined, snap: Snapshot): Deployment | undefined {
  const { nodes = {}, waves, full, ...top } = snap;
  if (full) return { ...top, nodes, ...(waves ? { waves } : {}) } as Deployment;
  if (!current) return undefined;
  const merged = { ...current } as Deployment & Record<string, unknown>;
  for (const key of CHANGING) delete merged[key];
  Object.assign(merged, top, { nodes: { ...current.nodes, ...nodes } });
  if (current.waves) merged.waves = current.waves.map((w, i) => ({ nodes: w.nodes, ...(waves?.[i] ?? { state: w.state }) }) as ServedWave);
  return merged;
}
