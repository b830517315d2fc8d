/**
 * Each node's truth (docs/rollouts.md, "Convergence and drift"): the commit it
 * should run (`desired`: the newest update rollout that reached it and was not
 * rolled back, or an operator's rollback it went through), the commit it runs,
 * the last commit whose update and check succeeded there, its last outcome and
 * its drift; and the catch-up a node that missed its desired update needs.
 * Pure functions of the deployment records and what the node's heartbeats
 * said; webhook/view.ts keeps the inputs, webhook/driver.ts sends catch-ups.
 */
import type { DeploymentRecord } from "./deployments.ts";
import { expiryOf } from "./sweep.ts";
import { targetMatches } from "./protocol.ts";
import { deploymentState } from "./served.ts";

export type Drift = null | "behind" | "moved" | "dirty";

/** A node's last word on a command that moves its checkout (update, rollback). */
export interface Outcome {
  deployment: string;
  state: string;
  reason?: string;
  at: string;
  commitAfter?: string;
}

/** What a node said of itself in its latest heartbeat. */
export interface Self {
  node: string;
  groups: string[];
  commit: string | null;
  busy: boolean;
  dirty?: boolean;
  healthy?: boolean;
}

/** Where a node should be, and because of which deployment. */
export interface Desired {
  commit: string;
  deployment: string;
}

/** Two spellings of one commit: a full sha and its prefix. */
export const sameCommit = (a: string | null | undefined, b: string | null | undefined) => !!a && !!b && (a.startsWith(b) || b.startsWith(a));

/**
 * Whether rollout `d` has reached `node`: its wave was sent (or it ran a
 * catch-up of it), or, for a node that was not online when it was created,
 * the rollout is done (or had no node to wait for): then the node converges to it.
 */
export function reached(d: DeploymentRecord, node: string, groups: readonly string[]): boolean {
  if (d.runs.has(node)) return true;
  const wave = d.waveOf.get(node);
  if (wave !== undefined) return wave < d.started.length;
  if (!d.plan) return d.expectedSet.has(node);
  if (d.superseded || !targetMatches(d.spec!.target, node, groups)) return false;
  return d.plan.length === 0 || deploymentState(d) === "succeeded";
}

/** The desired commit of `self.node`, from the code-moving deployments, newest first. */
export function desiredOf(self: Pick<Self, "node" | "groups">, newestFirst: Iterable<DeploymentRecord>): Desired | undefined {
  for (const d of newestFirst) {
    const spec = d.spec;
    if (!spec) continue;
    if (spec.command === "rollback") {
      const run = d.runs.get(self.node);
      if (run?.state === "succeeded" && run.commitAfter) return { commit: run.commitAfter, deployment: d.id };
      continue;
    }
    if (spec.command !== "update" || !spec.args.commit) continue;
    if (deploymentState(d) === "rolled_back") continue;
    if (reached(d, self.node, self.groups)) return { commit: spec.args.commit, deployment: d.id };
  }
  return undefined;
}

/** How a node differs from what it should be: changed files, a HEAD moved by other hands, or not at its desired commit. */
export function driftOf(self: Self, desired: Desired | undefined, lastRun: Outcome | undefined): Drift {
  if (self.busy || !self.commit) return null;
  if (self.dirty) return "dirty";
  if (lastRun?.commitAfter && !sameCommit(self.commit, lastRun.commitAfter)) return "moved";
  if (desired && !sameCommit(self.commit, desired.commit)) return "behind";
  return null;
}

/** On the latest: its last update and check succeeded at the commit it should run, and it is there. */
export function onLatest(self: Self, desired: Desired | undefined, last: Outcome | undefined, lastGood: string | undefined): boolean {
  return (
    !!desired &&
    last?.state === "succeeded" &&
    sameCommit(self.commit, desired.commit) &&
    sameCommit(self.commit, lastGood) &&
    self.healthy !== false &&
    !self.dirty
  );
}

export type Converge = "missed" | "all" | "off";

/**
 * The catch-up `self` needs, if any: the attempt number of an `update` of its
 * desired deployment. A node that missed its desired update (it was away, even
 * past the command's expiry) gets it once; with `all`, a HEAD moved by other
 * hands is put back too. Never for a node that is busy, has changed files, or
 * still has the rollout's own command (or an earlier catch-up) waiting.
 */
export function catchUp(self: Self, desired: DeploymentRecord | undefined, drift: Drift, mode: Converge, now: number): number | undefined {
  if (mode === "off" || !desired?.spec || self.busy || self.dirty || !self.commit) return undefined;
  const commit = desired.spec.command === "update" ? desired.spec.args.commit : undefined;
  if (!commit) return undefined;
  const previous = desired.catchUps.get(self.node);
  const next = (previous?.attempt ?? 0) + 1;
  if (desired.runs.has(self.node)) {
    // It ran this update; with `all`, a HEAD moved since is put back, once per commit it was moved to.
    return mode === "all" && drift === "moved" && previous?.seen !== self.commit ? next : undefined;
  }
  if (sameCommit(self.commit, commit)) return undefined;
  const wave = desired.waveOf.get(self.node);
  if (wave !== undefined && wave < desired.started.length && now < expiryOf(desired, self.node)) return undefined;
  if (previous && now < Date.parse(previous.at) + lifetime(desired)) return undefined;
  return next;
}

const lifetime = (d: DeploymentRecord) => Date.parse(d.spec!.expiresAt) - Date.parse(d.spec!.issuedAt);
