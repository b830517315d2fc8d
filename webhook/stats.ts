/**
 * The view's counters for `/metrics`: deployments that reached a final state
 * (each counted once, when this process first sees it finished, so a restart
 * rebuilds the same totals from the history), node outcomes, commands nodes
 * rejected by reason, and the duration histogram, which only ever grows.
 */
import type { DeploymentRecord, Run } from "../shared/deployments.ts";
import { FINAL_STATES } from "../shared/deployments.ts";
import type { DeploymentState } from "../shared/served.ts";

export const DURATION_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

export type Stats = ReturnType<typeof createStats>;

const bump = (map: Map<string, number>, key: string, by = 1) => map.set(key, (map.get(key) ?? 0) + by);

/** `bad signature`, `schema`, `expired`...: the part of a rejection's reason before its details. */
export const rejectionKind = (reason: string) => reason.split(":")[0].trim().slice(0, 40) || "unknown";

export function createStats() {
  const counted = new Set<string>();
  const deployments = new Map<string, number>();
  const outcomes = new Map<string, number>();
  const rejected = new Map<string, number>();
  const buckets = DURATION_BUCKETS.map(() => 0);
  const duration = { count: 0, sum: 0 };

  return {
    /** A deployment reached `state` at `end`: counted the first time only. */
    finished(record: DeploymentRecord, state: DeploymentState, end: string): void {
      if (counted.has(record.id) || !record.spec) return;
      counted.add(record.id);
      bump(deployments, `${record.spec.command}\u0000${state}`);
      const seconds = Math.max(0, (Date.parse(end) - Date.parse(record.spec.issuedAt)) / 1000);
      DURATION_BUCKETS.forEach((le, i) => seconds <= le && buckets[i]++);
      duration.count++;
      duration.sum += seconds;
    },
    /** A node's report became `run`: counted when it is a new outcome of a command. */
    outcome(run: Run, before: Run | undefined): void {
      if (!FINAL_STATES.has(run.state)) return;
      if (before && before.command === run.command && FINAL_STATES.has(before.state)) return;
      bump(outcomes, run.state);
    },
    rejected(reason: string): void {
      bump(rejected, rejectionKind(reason));
    },
    deployments: () => deployments,
    outcomes: () => outcomes,
    rejections: () => rejected,
    histogram: () => ({ buckets: DURATION_BUCKETS.map((le, i) => [le, buckets[i]] as const), ...duration }),
  };
}
