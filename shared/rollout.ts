/**
 * The rollout driver's rules (docs/rollouts.md), as pure functions of a
 * deployment record and the clock: what to decide next (start a wave, pause,
 * abort, roll back the nodes the rollout changed), what a heartbeat or a
 * sweep means for it (a node gone or unhealthy counts as failed), which older
 * rollouts a new one supersedes, and what to send again after a takeover.
 * webhook/driver.ts records each decision in the history and sends the
 * commands it names; nothing here talks to the broker.
 */
import { failures, needsRollback, type DeploymentRecord } from "./deployments.ts";
import { awaited, expiryOf, type Presence } from "./sweep.ts";
import type { Decision } from "./records.ts";
import { deploymentState, finishedAt } from "./served.ts";

/** A command the driver sends one node for a deployment. */
export interface Send {
  node: string;
  kind: "update" | "rollback" | "catch-up";
  /** rollback: the commit to go back to. */
  commit?: string;
  /** catch-up: the how-many-th. */
  attempt?: number;
}

export type Step =
  | { do: "decide"; decision: Decision; send: Send[] }
  | { do: "wait"; until: number }
  | { do: "none" };

const NONE: Step = { do: "none" };

/** Whether this is a rollout the driver still has work on. */
export function isOpenRollout(record: DeploymentRecord, now: number): boolean {
  if (!record.spec || !record.plan || record.superseded) return false;
  return finishedAt(record, deploymentState(record)) === undefined || needsRollback(record).length > 0;
}

const decide = (decision: Decision, send: Send[] = []): Step => ({ do: "decide", decision, send });
const base = (record: DeploymentRecord, now: number) => ({ v: 1 as const, deployment: record.id, at: new Date(now).toISOString() });

/** What the driver does next for `record`, at `now` (ms). */
export function nextStep(record: DeploymentRecord, now: number): Step {
  if (!record.spec || !record.plan || record.superseded) return NONE;
  const plan = record.plan;
  if (record.abort) {
    const back = needsRollback(record);
    if (back.length === 0) return NONE;
    const nodes = Object.fromEntries(back.map((node) => [node, record.runs.get(node)!.commitBefore!]));
    return decide({ ...base(record, now), decision: "rollback", nodes }, back.map((node) => ({ node, kind: "rollback", commit: nodes[node] })));
  }
  const { failed, tolerated } = failures(record);
  if (failed > tolerated) return decide({ ...base(record, now), decision: "abort", reason: abortReason(record, failed, tolerated) });
  const started = record.started.length;
  if (started === 0) return plan.length === 0 ? NONE : startWave(record, 1, now);
  const wave = record.waves[started - 1];
  if (wave.good + wave.bad < plan[started - 1].length || started === plan.length) return NONE;
  if (record.strategy!.approve.includes(started) && !record.approved.has(started)) {
    return record.pausedAfter === started ? NONE : decide({ ...base(record, now), decision: "pause", wave: started });
  }
  const bakeEnd = wave.lastAt + record.strategy!.bake * 1000;
  if (now < bakeEnd) return { do: "wait", until: bakeEnd };
  return startWave(record, started + 1, now);
}

function startWave(record: DeploymentRecord, wave: number, now: number): Step {
  const send = record.plan![wave - 1].map((node): Send => ({ node, kind: "update" }));
  return decide({ ...base(record, now), decision: "wave", wave }, send);
}

function abortReason(record: DeploymentRecord, failed: number, tolerated: number): string {
  const bad = awaited(record).filter((node) => record.categories.get(node) === "bad").slice(0, 5);
  const names = bad.map((node) => `${node} ${record.served.get(node)}`).join(", ");
  return `${failed} node${failed === 1 ? "" : "s"} failed, ${tolerated} tolerated (max_failures): ${names}${failed > bad.length ? ", ..." : ""}`;
}

/**
 * What a node's presence means for a rollout it is part of: once its wave
 * started, a node that is missing (the sweep's mark) counts as failed, and so
 * does one that reports unhealthy after it succeeded, until the rollout ends.
 */
export function presenceStep(record: DeploymentRecord, node: string, presence: Presence | undefined, now: number): Step {
  if (!record.plan || record.abort || record.superseded || record.counted.has(node)) return NONE;
  const wave = record.waveOf.get(node);
  if (wave === undefined || wave >= record.started.length || !isOpenRollout(record, now)) return NONE;
  const mark = record.marks.get(node);
  if (mark) return decide({ ...base(record, now), decision: "node", node, state: "missing", reason: mark.reason });
  const run = record.runs.get(node);
  // Only a heartbeat sent after the node's outcome speaks of the new commit: the one before it may still say unhealthy.
  const fresh = presence?.heartbeatAt !== undefined && run !== undefined && presence.heartbeatAt > Date.parse(run.at);
  if (presence?.healthy === false && run?.state === "succeeded" && fresh) {
    return decide({ ...base(record, now), decision: "node", node, state: "unhealthy", reason: "unhealthy: its health check failed after the update" });
  }
  // A finished node must stay up while its wave is the last one started (and bakes): gone then, it failed.
  if (run?.state === "succeeded" && presence && !presence.online && wave === record.started.length - 1) {
    return decide({ ...base(record, now), decision: "node", node, state: "missing", reason: "went offline before the next wave started" });
  }
  return NONE;
}

/** The older, unfinished rollouts that `newer` takes over: some of the same nodes, or the same target with none yet. */
export function superseded(newer: DeploymentRecord, others: Iterable<DeploymentRecord>, now: number): DeploymentRecord[] {
  if (!newer.spec || !newer.plan) return [];
  const mine = new Set(newer.expected);
  const issued = Date.parse(newer.spec.issuedAt);
  const out: DeploymentRecord[] = [];
  for (const other of others) {
    if (other === newer || !other.spec || !other.plan || other.superseded || other.abort) continue;
    if (Date.parse(other.spec.issuedAt) > issued || !isOpenRollout(other, now)) continue;
    // A rollout does not supersede one that has already sent its last wave: nothing is left to stop.
    if (other.plan.length > 0 && other.started.length === other.plan.length) continue;
    const overlap = other.expected.some((node) => mine.has(node));
    const sameTarget = other.expected.length === 0 && (other.spec.target === newer.spec.target || newer.spec.target === "all");
    if (overlap || sameTarget) out.push(other);
  }
  return out;
}

/**
 * The commands a driver that just took over sends again: those of dispatched
 * waves, of the rollback and of catch-ups that no node has answered yet and
 * whose commands have not expired. A node that already has the command runs it once: the
 * copy is a duplicate of the same id.
 */
export function resend(record: DeploymentRecord, now: number): Send[] {
  if (!record.spec || !record.plan || record.superseded) return [];
  const out: Send[] = [];
  if (!record.abort) {
    for (const node of awaited(record)) {
      if (!record.runs.has(node) && !record.marks.has(node) && now < expiryOf(record, node)) out.push({ node, kind: "update" });
    }
  }
  for (const [node, commit] of record.rollback?.nodes ?? []) {
    if (!record.rollbackRuns.has(node)) out.push({ node, kind: "rollback", commit });
  }
  // A catch-up sent but not answered while its command may still run.
  const lifetime = Date.parse(record.spec.expiresAt) - Date.parse(record.spec.issuedAt);
  for (const [node, sent] of record.catchUps) {
    const run = record.runs.get(node);
    const answered = run !== undefined && Date.parse(run.at) >= Date.parse(sent.at);
    if (!answered && now < Date.parse(sent.at) + lifetime) out.push({ node, kind: "catch-up", attempt: sent.attempt });
  }
  return out;
}
