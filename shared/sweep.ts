/**
 * What the clock and the heartbeats tell about a deployment's nodes: which
 * nodes it awaits now (its expected ones, or those of its dispatched waves),
 * when each one's command expires, and the sweep that marks an awaited node
 * `missing` once it will not report: past its command's expiry, gone (no
 * heartbeat for three periods), stopping before it began, or silent after
 * starting for twice the command's lifetime. Pure: the view runs the sweep
 * every second with its clock and its nodes' presence.
 */
import { FINAL_STATES, retally, type DeploymentRecord, type Run } from "./deployments.ts";

/** The nodes a deployment waits for right now: its expected ones, or those of its dispatched waves. */
export function awaited(record: DeploymentRecord): string[] {
  if (!record.plan) return record.expected;
  return record.plan.slice(0, record.started.length).flat();
}

/** When the command a node of this deployment got expires (a wave's commands live from its start). */
export function expiryOf(record: DeploymentRecord, node: string): number {
  const spec = record.spec!;
  const lifetime = Date.parse(spec.expiresAt) - Date.parse(spec.issuedAt);
  const wave = record.waveOf.get(node);
  const since = wave !== undefined && record.started[wave] ? Date.parse(record.started[wave]) : Date.parse(spec.issuedAt);
  return since + lifetime;
}

/** What the sweep knows of a node from its heartbeats. */
export interface Presence {
  online: boolean;
  stopping: boolean;
  lastSeen: number;
  periodMs: number;
  /** With a health check: what the latest heartbeat's probe said, and when the node sent it (its own clock). */
  healthy?: boolean;
  heartbeatAt?: number;
}

/**
 * Marks (or unmarks) awaited nodes that will not report: past their command's
 * expiry, gone (no heartbeat for three periods), stopping before they began,
 * or silent after starting for twice the command's lifetime. Returns the
 * nodes whose mark changed.
 */
export function sweep(record: DeploymentRecord, now: number, presence: (node: string) => Presence | undefined): string[] {
  if (!record.spec) return [];
  const changed: string[] = [];
  if (!record.plan && now >= Date.parse(record.spec.expiresAt)) record.expired = true;
  const silent = [...record.runs].filter(([, run]) => !FINAL_STATES.has(run.state)).map(([node]) => node);
  for (const node of new Set([...awaited(record), ...silent])) {
    const run = record.runs.get(node);
    if (run && FINAL_STATES.has(run.state)) {
      if (record.marks.delete(node)) changed.push(node);
      continue;
    }
    const why = missingReason(record, node, run, now, presence(node));
    const mark = record.marks.get(node);
    if (why && !mark) {
      record.marks.set(node, { at: new Date(why.since).toISOString(), reason: why.reason });
      record.lastAt = Math.max(record.lastAt, why.since);
    } else if (!why && mark) record.marks.delete(node);
    else continue;
    changed.push(node);
    retally(record, node);
  }
  return changed;
}

/** Why an awaited node will not report, and since when; undefined while it still may. */
function missingReason(record: DeploymentRecord, node: string, run: Run | undefined, now: number, seen: Presence | undefined): { reason: string; since: number } | undefined {
  const expiry = expiryOf(record, node);
  if (!run && now >= expiry) return { reason: "did not report before the command expired", since: expiry };
  // A node silent after it started, long after any sensible ARBEIDER_TIMEOUT, will not finish.
  const silentFor = expiry + (expiry - Date.parse(record.spec!.issuedAt));
  if (run && now >= silentFor) return { reason: `stopped reporting after ${run.state}`, since: silentFor };
  if (!seen || seen.online) return undefined;
  if (seen.stopping && !run) return { reason: "its worker stopped before running the command", since: seen.lastSeen };
  // A stopping worker finishes the command in hand: it gets its three periods to report.
  const gone = seen.lastSeen + 3 * seen.periodMs;
  if (seen.stopping && now <= gone) return undefined;
  return { reason: `stopped sending heartbeats (last seen ${new Date(seen.lastSeen).toISOString()})`, since: Math.min(now, gone) };
}
