/**
 * What happened to a deployment, folded from its events: the pure reducer the
 * webhook replays the history stream through, and the served view of the
 * result. `applyEvent` is order-tolerant (a node may report before the
 * `created` record lands) and idempotent (a redelivered event changes
 * nothing); `present` adds what depends on the clock: once the command has
 * expired, an expected node that never reported is `missing`.
 */
import type { Command, Event } from "./protocol.ts";

export type NodeState = Exclude<Event["state"], "created">;
export type ServedNodeState = NodeState | "missing";
export type DeploymentState = "queued" | "running" | "succeeded" | "failed";

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

/** Everything known about a deployment; `spec` is absent until its `created` event arrives. */
export interface DeploymentRecord {
  id: string;
  spec?: Command;
  expected: string[];
  nodes: Record<string, NodeReport>;
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
  /** When the deployment reached succeeded or failed. */
  finishedAt?: string;
}

// How far along a report is. A report only replaces one of lower rank, so a
// late `received` never hides `started`, and a `skipped` (the node saw a
// duplicate copy) or `rejected` never hides the outcome of the run itself.
const RANK: Record<NodeState, number> = { received: 1, started: 2, skipped: 3, rejected: 3, succeeded: 4, failed: 4 };
const FINAL = new Set<ServedNodeState>(["succeeded", "failed", "rejected", "skipped", "missing"]);
const BAD = new Set<ServedNodeState>(["failed", "rejected", "missing"]);

/** The record after `event`; `record` is not changed. */
export function applyEvent(record: DeploymentRecord | undefined, event: Event): DeploymentRecord {
  const current = record ?? { id: event.deployment, expected: [], nodes: {} };
  if (event.state === "created") {
    if (current.spec || !event.spec) return current;
    return { ...current, spec: event.spec, expected: [...(event.expected ?? [])].sort() };
  }
  if (!event.node) return current;
  const before = reportOf(current.nodes, event.node);
  if (before && !replaces(event.state, before.state as NodeState)) return current;
  return { ...current, nodes: { ...current.nodes, [event.node]: report(event) } };
}

/** A node's report; own keys only, so nodes named `constructor` or `toString` are nodes like any other. */
function reportOf(nodes: Record<string, NodeReport>, node: string): NodeReport | undefined {
  return Object.hasOwn(nodes, node) ? nodes[node] : undefined;
}

function replaces(next: NodeState, previous: NodeState): boolean {
  // Equal ranks below the outcomes move forward (a worker restarted mid-command
  // starts again); an outcome, once there, is final.
  return RANK[next] > RANK[previous] || (RANK[next] === RANK[previous] && RANK[next] < RANK.succeeded);
}

function report(event: Event): NodeReport {
  const { state, at, reason, commitBefore, commitAfter, durationMs, output } = event;
  const entry: NodeReport = { state: state as NodeState, at };
  if (reason !== undefined) entry.reason = reason;
  if (commitBefore !== undefined) entry.commitBefore = commitBefore;
  if (commitAfter !== undefined) entry.commitAfter = commitAfter;
  if (durationMs !== undefined) entry.durationMs = durationMs;
  if (output !== undefined) entry.output = output;
  return entry;
}

/** The served deployment at time `now` (ms), or undefined while its `created` record is unknown. */
export function present(record: DeploymentRecord, now: number): Deployment | undefined {
  const spec = record.spec;
  if (!spec) return undefined;
  const nodes = { ...record.nodes };
  const expired = now >= Date.parse(spec.expiresAt);
  if (expired) {
    for (const node of record.expected) {
      if (!reportOf(nodes, node)) nodes[node] = { state: "missing", at: spec.expiresAt, reason: "did not report before the command expired" };
    }
  }
  // A node that started but went silent (its worker died and never came back) would keep the
  // deployment running forever. Once the command is past twice its lifetime, long after any
  // sensible ARBEIDER_TIMEOUT, it can no longer finish: it is missing too.
  const issued = Date.parse(spec.issuedAt);
  const expiresAt = Date.parse(spec.expiresAt);
  if (now >= expiresAt + (expiresAt - issued)) {
    for (const [node, report] of Object.entries(nodes)) {
      if (!FINAL.has(report.state)) nodes[node] = { ...report, state: "missing", reason: `stopped reporting after ${report.state}` };
    }
  }
  const state = deploymentState(record.expected, nodes, expired);
  const deployment: Deployment = {
    id: record.id,
    command: spec.command,
    target: spec.target,
    args: spec.args,
    source: spec.source,
    createdAt: spec.issuedAt,
    expiresAt: spec.expiresAt,
    state,
    expected: record.expected,
    nodes,
  };
  if (state === "succeeded" || state === "failed") deployment.finishedAt = finishedAt(spec, nodes);
  return deployment;
}

/** queued: nobody reported; failed: a node failed, was rejected or is missing; succeeded: every expected node is done well and nobody is still busy. */
export function deploymentState(expected: readonly string[], nodes: Record<string, NodeReport>, expired: boolean): DeploymentState {
  const reports = Object.values(nodes);
  if (reports.some((r) => BAD.has(r.state))) return "failed";
  if (reports.length === 0) return expired ? "failed" : "queued";
  const allExpectedDone = expected.every((node) => {
    const report = reportOf(nodes, node);
    return report !== undefined && FINAL.has(report.state);
  });
  if (allExpectedDone && reports.every((r) => FINAL.has(r.state))) return "succeeded";
  return "running";
}

function finishedAt(spec: Command, nodes: Record<string, NodeReport>): string {
  const times = Object.values(nodes).filter((r) => FINAL.has(r.state)).map((r) => r.at);
  if (times.length === 0) return spec.expiresAt;
  return times.reduce((latest, at) => (Date.parse(at) > Date.parse(latest) ? at : latest));
}
