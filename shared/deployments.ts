/**
 * What happened to a deployment, folded from its history records: the one
 * reducer the webhook's history reader feeds, in place and in constant time
 * per record (counters per state and per wave, so a 2,000-node deployment
 * costs no more per event than a 2-node one). It is order-tolerant (a node
 * may report before the `created` record lands) and idempotent (a
 * redelivered record changes nothing). What depends on the clock and on
 * heartbeats (a node marked `missing`) is shared/sweep.ts; how a record is
 * served is shared/served.ts; the rollout rules are shared/rollout.ts.
 */
import type { Command, Event } from "./protocol.ts";
import { commandKind, type Decision, type ReportDecision } from "./records.ts";
import { toleratedFailures, type Strategy } from "./strategy.ts";

export type NodeState = Exclude<Event["state"], "created">;
/** A node's state as served: its own report, or what the webhook concluded (`missing`, `unhealthy`). */
export type ServedNodeState = NodeState | "missing" | "unhealthy";

/** One node's latest word about one deployment. */
export interface NodeReport {
  state: ServedNodeState;
  at: string;
  reason?: string;
  commitBefore?: string;
  commitAfter?: string;
  durationMs?: number;
  output?: string;
}

/** A node's report with the command it is about. */
export interface Run extends NodeReport {
  command: string;
}

type Category = "running" | "good" | "bad";

interface Tally {
  running: number;
  good: number;
  bad: number;
  /** Latest `at` of a final report: when the last of them finished. */
  lastAt: number;
}

const emptyTally = (): Tally => ({ running: 0, good: 0, bad: 0, lastAt: 0 });

/** Everything known about a deployment; `spec` is absent until its `created` record arrives. */
export interface DeploymentRecord {
  id: string;
  spec?: Command;
  expected: string[];
  /** Why nothing was sent yet, from `created` (no node matched its target). */
  reason?: string;
  strategy?: Strategy;
  /** The rollout's waves of node ids, in order (updates only). */
  plan?: string[][];
  runs: Map<string, Run>;
  rollbackRuns: Map<string, Run>;
  /** When each dispatched wave started (index = wave - 1). */
  started: string[];
  pausedAfter?: number;
  approved: Set<number>;
  abort?: { at: string; reason: string; by?: string };
  superseded?: { at: string; by: string };
  /** Nodes the driver counted failed from their heartbeats. */
  counted: Map<string, { state: "missing" | "unhealthy"; reason: string; at: string }>;
  rollback?: { at: string; nodes: Map<string, string> };
  catchUps: Map<string, { attempt: number; at: string; seen: string | null }>;
  /** Reports of its states to CI providers and URLs, by target and event, in the order first recorded. */
  reports: Map<string, ReportEntry>;
  /** Missing marks of the sweep: this process's conclusion from the clock and heartbeats. */
  marks: Map<string, { at: string; reason: string }>;
  /** The latest time anything in the record happened. */
  lastAt: number;
  /** Set by the sweep once a single command is past its expiry. */
  expired: boolean;
  // Derived, kept up to date by `retally`:
  categories: Map<string, Category>;
  byState: Map<ServedNodeState, number>;
  served: Map<string, ServedNodeState>;
  total: Tally;
  waves: Tally[];
  waveOf: Map<string, number>;
  expectedSet: Set<string>;
  expectedFinal: number;
  expectedHeard: number;
}

export function createRecord(id: string): DeploymentRecord {
  return {
    id,
    expected: [],
    runs: new Map(),
    rollbackRuns: new Map(),
    started: [],
    approved: new Set(),
    counted: new Map(),
    catchUps: new Map(),
    reports: new Map(),
    marks: new Map(),
    lastAt: 0,
    expired: false,
    categories: new Map(),
    byState: new Map(),
    served: new Map(),
    total: emptyTally(),
    waves: [],
    waveOf: new Map(),
    expectedSet: new Set(),
    expectedFinal: 0,
    expectedHeard: 0,
  };
}

// How far along a report of one command is. A report only replaces one of lower rank, so a
// late `received` never hides `started`, and a `skipped` (the node saw a duplicate copy) or
// `rejected` never hides the outcome of the run itself.
const RANK: Record<NodeState, number> = { received: 1, started: 2, skipped: 3, rejected: 3, succeeded: 4, failed: 4 };
export const FINAL_STATES: ReadonlySet<ServedNodeState> = new Set(["succeeded", "failed", "rejected", "skipped", "missing", "unhealthy"]);
export const BAD_STATES: ReadonlySet<ServedNodeState> = new Set(["failed", "rejected", "missing", "unhealthy"]);

function replaces(next: Run, previous: Run | undefined): boolean {
  if (!previous) return true;
  if (next.command !== previous.command) {
    // Another command for the same node (a catch-up, a re-sent wave): a new run replaces the
    // old report; that command's refusal (a duplicate, a superseded copy) never hides it.
    return next.state !== "skipped" && next.state !== "rejected";
  }
  const a = RANK[next.state as NodeState];
  const b = RANK[previous.state as NodeState];
  // Equal ranks below the outcomes move forward (a worker restarted mid-command starts again);
  // an outcome, once there, is final.
  return a > b || (a === b && a < RANK.succeeded);
}

function runOf(event: Event): Run {
  const { state, at, reason, commitBefore, commitAfter, durationMs, output, command } = event;
  const run: Run = { state: state as NodeState, at, command };
  if (reason !== undefined) run.reason = reason;
  if (commitBefore !== undefined) run.commitBefore = commitBefore;
  if (commitAfter !== undefined) run.commitAfter = commitAfter;
  if (durationMs !== undefined) run.durationMs = durationMs;
  if (output !== undefined) run.output = output;
  return run;
}

/** Folds one event in; returns whether it changed anything. */
export function applyEvent(record: DeploymentRecord, event: Event): boolean {
  if (event.state === "created") {
    if (record.spec || !event.spec) return false;
    record.spec = event.spec;
    record.expected = [...(event.expected ?? [])].sort();
    record.expectedSet = new Set(record.expected);
    if (event.reason) record.reason = event.reason;
    if (event.strategy && event.waves) {
      record.strategy = event.strategy;
      record.plan = event.waves;
      event.waves.forEach((nodes, i) => nodes.forEach((node) => record.waveOf.set(node, i)));
    }
    touch(record, event.at);
    recount(record);
    return true;
  }
  if (!event.node) return false;
  const runs = commandKind(event.command, event.deployment) === "rollback" ? record.rollbackRuns : record.runs;
  const run = runOf(event);
  if (!replaces(run, runs.get(event.node))) return false;
  runs.set(event.node, run);
  touch(record, event.at);
  retally(record, event.node);
  return true;
}

/** Folds one driver decision in; returns whether it changed anything. */
export function applyDecision(record: DeploymentRecord, d: Decision): boolean {
  if (d.decision === "report") return foldReport(record, d);
  const changed = decide(record, d);
  if (changed) touch(record, d.at);
  return changed;
}

/** One report of one state to one target, folded from its outbox records. */
export interface ReportEntry {
  delivery: string;
  target: string;
  event: string;
  state: ReportDecision["state"];
  attempts: number;
  /** When its latest record was written, and when its first one was: the state change it reports. */
  at: string;
  since: string;
  remote?: string;
  reason?: string;
}

export const reportKey = (target: string, event: string) => `${target} ${event}`;

/**
 * A report record: the first delivery of a (target, event) is the one that
 * counts; it ends once, delivered or failed, and a pending record never
 * reopens it. It never moves the deployment's own clock (`lastAt`): when a
 * deployment finished is not when it was reported.
 */
function foldReport(record: DeploymentRecord, d: ReportDecision): boolean {
  const key = reportKey(d.target, d.event);
  const known = record.reports.get(key);
  const attempts = d.attempts ?? 0;
  if (known && known.state !== "pending") return false;
  if (known && d.state === "pending") {
    const same = d.delivery === known.delivery && attempts === known.attempts && (d.remote ?? known.remote) === known.remote && d.reason === known.reason;
    if (d.delivery !== known.delivery || attempts < known.attempts || same) return false;
  }
  const entry: ReportEntry = {
    delivery: known?.delivery ?? d.delivery,
    target: d.target,
    event: d.event,
    state: d.state,
    attempts: Math.max(attempts, known?.attempts ?? 0),
    at: d.at,
    since: known?.since ?? d.at,
  };
  const remote = d.remote ?? known?.remote;
  if (remote !== undefined) entry.remote = remote;
  if (d.reason !== undefined) entry.reason = d.reason;
  record.reports.set(key, entry);
  return true;
}

function decide(record: DeploymentRecord, d: Exclude<Decision, ReportDecision>): boolean {
  switch (d.decision) {
    case "wave":
      if (record.started.length >= d.wave) return false;
      while (record.started.length < d.wave) record.started.push(d.at);
      return true;
    case "pause":
      if (record.pausedAfter === d.wave) return false;
      record.pausedAfter = d.wave;
      return true;
    case "approve":
      if (record.approved.has(d.wave)) return false;
      record.approved.add(d.wave);
      return true;
    case "abort":
      if (record.abort) return false;
      record.abort = { at: d.at, reason: d.reason, ...(d.by ? { by: d.by } : {}) };
      return true;
    case "supersede":
      if (record.superseded) return false;
      record.superseded = { at: d.at, by: d.by };
      return true;
    case "node":
      if (record.counted.has(d.node)) return false;
      record.counted.set(d.node, { state: d.state, reason: d.reason, at: d.at });
      retally(record, d.node);
      return true;
    case "rollback": {
      record.rollback ??= { at: d.at, nodes: new Map() };
      let added = false;
      for (const [node, commit] of Object.entries(d.nodes)) {
        if (record.rollback.nodes.has(node)) continue;
        record.rollback.nodes.set(node, commit);
        added = true;
      }
      return added;
    }
    case "catch-up": {
      const known = record.catchUps.get(d.node);
      if (known && known.attempt >= d.attempt) return false;
      record.catchUps.set(d.node, { attempt: d.attempt, at: d.at, seen: d.seen });
      return true;
    }
  }
}

function touch(record: DeploymentRecord, at: string): void {
  record.lastAt = Math.max(record.lastAt, Date.parse(at));
}

/** What a node's state in this deployment is: its report, the driver's count, the sweep's mark. */
function servedState(record: DeploymentRecord, node: string): { state: ServedNodeState; at: string } | undefined {
  const run = record.runs.get(node);
  const counted = record.counted.get(node);
  if (counted && (!run || !FINAL_STATES.has(run.state) || Date.parse(counted.at) >= Date.parse(run.at))) return counted;
  if (run && FINAL_STATES.has(run.state)) return run;
  const mark = record.marks.get(node);
  if (mark) return { state: "missing", at: mark.at };
  return run;
}

const categoryOf = (state: ServedNodeState): Category => (BAD_STATES.has(state) ? "bad" : FINAL_STATES.has(state) ? "good" : "running");

/** Counts every node again: once the expected nodes and waves are known, reports that came first count. */
function recount(record: DeploymentRecord): void {
  const nodes = new Set([...record.runs.keys(), ...record.counted.keys(), ...record.marks.keys()]);
  record.categories.clear();
  record.served.clear();
  record.byState.clear();
  record.total = emptyTally();
  record.waves = (record.plan ?? []).map(emptyTally);
  record.expectedFinal = record.expectedHeard = 0;
  for (const node of nodes) retally(record, node);
}

/** Re-counts one node after its report, count or mark changed: constant time. */
export function retally(record: DeploymentRecord, node: string): void {
  const now = servedState(record, node);
  const before = record.categories.get(node);
  const beforeState = record.served.get(node);
  const wave = record.waveOf.get(node);
  const tallies = wave === undefined ? [record.total] : [record.total, record.waves[wave]];
  if (before) for (const t of tallies) t[before]--;
  if (beforeState) record.byState.set(beforeState, (record.byState.get(beforeState) ?? 1) - 1);
  const expected = record.expectedSet.has(node);
  if (before && expected) {
    record.expectedHeard--;
    if (before !== "running") record.expectedFinal--;
  }
  if (!now) {
    record.categories.delete(node);
    record.served.delete(node);
    return;
  }
  const category = categoryOf(now.state);
  record.categories.set(node, category);
  record.served.set(node, now.state);
  record.byState.set(now.state, (record.byState.get(now.state) ?? 0) + 1);
  for (const t of tallies) {
    t[category]++;
    if (category !== "running") t.lastAt = Math.max(t.lastAt, Date.parse(now.at));
  }
  if (expected) {
    record.expectedHeard++;
    if (category !== "running") record.expectedFinal++;
  }
}

/** The served report of a node, or undefined while it has said nothing and nothing was concluded. */
export function reportOf(record: DeploymentRecord, node: string): NodeReport | undefined {
  const run = record.runs.get(node);
  const served = servedState(record, node);
  if (!served) return undefined;
  if (run && served === run) return withoutCommand(run);
  const reason = record.counted.get(node)?.reason ?? record.marks.get(node)?.reason;
  return { ...(run ? withoutCommand(run) : {}), state: served.state, at: served.at, ...(reason ? { reason } : {}) };
}

function withoutCommand(run: Run): NodeReport {
  const { command: _command, ...report } = run;
  return report;
}

/** The checkout moved and this rollout moved it: a node to send back if the rollout aborts. */
const changedIt = (run: Run) => FINAL_STATES.has(run.state) && !!run.commitBefore && !!run.commitAfter && run.commitBefore !== run.commitAfter;

/** The nodes an aborted rollout (on_failure=rollback) changed and has not sent back yet. */
export function needsRollback(record: DeploymentRecord): string[] {
  if (!record.abort || record.strategy?.on_failure !== "rollback") return [];
  return [...record.runs].filter(([node, run]) => changedIt(run) && !record.rollback?.nodes.has(node)).map(([node]) => node);
}

/** Failed nodes of the rollout so far, and how many its strategy tolerates. */
export function failures(record: DeploymentRecord): { failed: number; tolerated: number } {
  const failed = record.waves.reduce((sum, wave) => sum + wave.bad, 0);
  return { failed, tolerated: record.strategy ? toleratedFailures(record.strategy, record.expected.length) : 0 };
}
