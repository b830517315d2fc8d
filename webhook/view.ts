/**
 * The webhook's memory, rebuilt from the broker at every start: deployments
 * folded from the history stream (shared/deployments.ts), nodes from their
 * heartbeats, and per node its truth (shared/fleet.ts). The history reader
 * (webhook/history.ts) is its only writer. Listeners hear what changed, once
 * the history has been replayed: the SSE hub, the rollout driver, metrics.
 * It holds no broker code, so the HTTP app and its tests can use it alone.
 */
import { applyDecision, applyEvent, createRecord, type DeploymentRecord } from "../shared/deployments.ts";
import { sweep, type Presence } from "../shared/sweep.ts";
import { desiredOf, driftOf, onLatest, type Desired, type Drift, type Outcome } from "../shared/fleet.ts";
import { targetMatches, type Event, type Heartbeat } from "../shared/protocol.ts";
import { commandKind, type HistoryRecord } from "../shared/records.ts";
import { deploymentState, finishedAt, present, type Deployment } from "../shared/served.ts";
import { createPresence } from "./presence.ts";
import { createStats } from "./stats.ts";

/** A node as `/api/nodes` serves it. */
export interface NodeStatus {
  node: string;
  groups: string[];
  commit: string | null;
  branch: string | null;
  busy: boolean;
  version: string;
  lastSeen: string;
  online: boolean;
  healthy?: boolean;
  stopping?: boolean;
  desired: string | null;
  lastGood: string | null;
  lastOutcome: { deployment: string; state: string; reason?: string } | null;
  drift: Drift;
  /** Its last update and check succeeded at the commit it should run, and it runs it. */
  latest: boolean;
}

/** A command a node refused: shown and counted even when it names no deployment anyone created. */
export interface Rejection {
  node: string;
  deployment: string;
  command: string;
  reason: string;
  at: string;
}

export type ViewMessage =
  | { kind: "record"; record: HistoryRecord }
  | { kind: "change"; id: string; nodes: readonly string[]; full?: boolean }
  | { kind: "heartbeat"; heartbeat: Heartbeat }
  | { kind: "node"; node: string };

export type View = ReturnType<typeof createView>;

const REJECTIONS_KEPT = 50;

/** An empty view; `now` is the clock in ms (tests pass their own). */
export function createView(options: { now?: () => number } = {}) {
  const now = options.now ?? Date.now;
  const records = new Map<string, DeploymentRecord>();
  /** Created deployments, newest first; and those that move code, for each node's desired commit. */
  const ordered: DeploymentRecord[] = [];
  const codeMoving: DeploymentRecord[] = [];
  const open = new Set<DeploymentRecord>();
  const ledger = new Map<string, { last?: Outcome; lastGood?: string }>();
  const rejections: Rejection[] = [];
  const presence = createPresence(now);
  const stats = createStats();
  const listeners = new Set<(message: ViewMessage) => void>();
  let live = false;

  const tell = (message: ViewMessage) => {
    if (!live) return;
    for (const listener of listeners) listener(message);
  };

  function recordOf(id: string): DeploymentRecord {
    let record = records.get(id);
    if (!record) records.set(id, (record = createRecord(id)));
    return record;
  }

  /** Notes a created deployment in the ordered lists (usually at their front: the newest). */
  function index(record: DeploymentRecord): void {
    insertNewestFirst(ordered, record);
    if (record.spec!.command === "update" || record.spec!.command === "rollback") {
      insertNewestFirst(codeMoving, record);
      for (const [node, run] of record.runs) note(node, record, run);
    }
  }

  /** Keeps a node's last outcome and last good commit, from outcomes of commands that move code. */
  function note(node: string, record: DeploymentRecord, run: { state: string; at: string; reason?: string; commitAfter?: string }): void {
    const command = record.spec?.command;
    if ((command !== "update" && command !== "rollback") || (run.state !== "succeeded" && run.state !== "failed")) return;
    const entry = ledger.get(node) ?? {};
    if (entry.last && Date.parse(entry.last.at) > Date.parse(run.at)) return;
    entry.last = { deployment: record.id, state: run.state, at: run.at, ...(run.reason ? { reason: run.reason } : {}), ...(run.commitAfter ? { commitAfter: run.commitAfter } : {}) };
    if (run.state === "succeeded" && run.commitAfter) entry.lastGood = run.commitAfter;
    ledger.set(node, entry);
  }

  /** After a record changed: finished ones are counted once and leave the sweep; changes are told. */
  function changed(record: DeploymentRecord, nodes: readonly string[], full = false): void {
    if (!record.spec) return;
    const state = deploymentState(record);
    const end = finishedAt(record, state);
    if (end) {
      open.delete(record);
      stats.finished(record, state, end);
    } else open.add(record);
    tell({ kind: "change", id: record.id, nodes, full });
  }

  function applyNodeEvent(record: DeploymentRecord, event: Event & { node: string }): void {
    // A rollout's rollback of a node is kept beside its update (as applyEvent does): its outcome is the node's latest.
    const runs = commandKind(event.command, event.deployment) === "rollback" ? record.rollbackRuns : record.runs;
    const before = runs.get(event.node);
    if (!applyEvent(record, event)) return;
    const run = runs.get(event.node)!;
    stats.outcome(run, before);
    if (event.state === "rejected") {
      rejections.unshift({ node: event.node, deployment: event.deployment, command: event.command, reason: event.reason ?? "", at: event.at });
      rejections.length = Math.min(rejections.length, REJECTIONS_KEPT);
      stats.rejected(event.reason ?? "");
    }
    note(event.node, record, run);
    changed(record, [event.node]);
    tell({ kind: "node", node: event.node });
  }

  function truth(node: string): NodeStatus | undefined {
    const seen = presence.get(node);
    if (!seen) return undefined;
    const hb = seen.heartbeat;
    const entry = ledger.get(node) ?? {};
    // An outcome newer than the last heartbeat (both stamped by the node) says where HEAD is now.
    const newer = entry.last?.commitAfter && Date.parse(entry.last.at) > Date.parse(hb.at);
    const commit = newer ? entry.last!.commitAfter! : hb.commit;
    const self = { node, groups: hb.groups, commit, busy: newer ? false : hb.busy, dirty: hb.dirty, healthy: hb.healthy };
    const desired: Desired | undefined = desiredOf(self, codeMoving);
    const { commitAfter: _after, at: _at, ...lastOutcome } = entry.last ?? ({} as Outcome);
    return {
      node,
      groups: hb.groups,
      commit,
      branch: hb.branch,
      busy: self.busy,
      version: hb.version,
      lastSeen: new Date(seen.lastSeen).toISOString(),
      online: presence.online(seen),
      ...(hb.healthy !== undefined ? { healthy: hb.healthy } : {}),
      ...(hb.stopping ? { stopping: true } : {}),
      desired: desired?.commit ?? null,
      lastGood: entry.lastGood ?? null,
      lastOutcome: entry.last ? lastOutcome : null,
      drift: driftOf(self, desired, entry.last),
      latest: onLatest(self, desired, entry.last, entry.lastGood),
    };
  }

  return {
    /** Folds one history record in: the history reader calls this, nobody else. */
    apply(item: HistoryRecord): void {
      if (item.kind === "decision") {
        const record = recordOf(item.decision.deployment);
        if (!applyDecision(record, item.decision)) return;
        tell({ kind: "record", record: item });
        const node = item.decision.decision === "node" || item.decision.decision === "catch-up" ? [item.decision.node] : [];
        changed(record, node);
        return;
      }
      const event = item.event;
      const record = recordOf(event.deployment);
      if (event.state === "created") {
        if (!applyEvent(record, event)) return;
        index(record);
        tell({ kind: "record", record: item });
        changed(record, [], true);
        return;
      }
      if (!event.node) return;
      tell({ kind: "record", record: item });
      applyNodeEvent(record, event as Event & { node: string });
    },
    /** Records a heartbeat seen at `at` (ms). */
    heartbeat(heartbeat: Heartbeat, at = now()): void {
      if (!presence.heartbeat(heartbeat, at)) return;
      tell({ kind: "heartbeat", heartbeat });
      tell({ kind: "node", node: heartbeat.node });
    },
    /** Marks awaited nodes that will not report, and nodes gone silent offline; tells what changed. Run every second or so. */
    tick(): void {
      const at = now();
      // Listeners hear of a node that went silent when it goes offline, not when someone next asks.
      for (const node of presence.wentSilent(at)) tell({ kind: "node", node });
      for (const record of [...open]) {
        const state = deploymentState(record);
        const nodes = sweep(record, at, (node) => presence.of(node, at));
        if (nodes.length > 0 || deploymentState(record) !== state) changed(record, nodes);
      }
    },
    /** Whether a deployment with this id was created (its `created` record is known). */
    has: (id: string) => records.get(id)?.spec !== undefined,
    /** Resolves true once deployment `id` is known, or false after `timeoutMs`. */
    whenKnown(id: string, timeoutMs: number): Promise<boolean> {
      if (records.get(id)?.spec) return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = (known: boolean) => {
          clearTimeout(timer);
          listeners.delete(listener);
          resolve(known);
        };
        const listener = (message: ViewMessage) => message.kind === "change" && message.id === id && message.full && done(true);
        const timer = setTimeout(() => done(false), timeoutMs);
        listeners.add(listener);
      });
    },
    record: (id: string) => records.get(id),
    get(id: string): Deployment | undefined {
      const record = records.get(id);
      return record && present(record, now());
    },
    /** Deployments, newest first. */
    list(limit: number): Deployment[] {
      const at = now();
      return ordered.slice(0, limit).map((record) => present(record, at)!);
    },
    /** Every created deployment, newest first: for the driver and metrics. */
    all: (): readonly DeploymentRecord[] => ordered,
    /** Deployments not finished yet. */
    unfinished: (): DeploymentRecord[] => [...open],
    nodes(): NodeStatus[] {
      return presence.ids().map((node) => truth(node)!);
    },
    node: truth,
    /** What the sweep knows of a node (online, stopping, last seen, period). */
    presence: (node: string): Presence | undefined => presence.of(node, now()),
    /** The desired deployment record of a node, for catch-ups. */
    desiredRecord(node: string): DeploymentRecord | undefined {
      const hb = presence.get(node)?.heartbeat;
      const desired = hb && desiredOf({ node, groups: hb.groups }, codeMoving);
      return desired && records.get(desired.deployment);
    },
    /** The online nodes `target` names, with their groups: a deployment's `expected`. */
    expectedFor(target: string): { node: string; groups: string[] }[] {
      return presence.onlineNodes().filter((n) => targetMatches(target, n.node, n.groups));
    },
    rejections: (): readonly Rejection[] => rejections,
    stats,
    /** From now on, listeners hear every change: history has been replayed. */
    goLive(): void {
      live = true;
      // What the clock decided while the history was replayed (expiries) is settled at once.
      for (const record of ordered) if (!finishedAt(record, deploymentState(record))) open.add(record);
      this.tick();
    },
    subscribe(listener: (message: ViewMessage) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

function insertNewestFirst(list: DeploymentRecord[], record: DeploymentRecord): void {
  const issued = Date.parse(record.spec!.issuedAt);
  const newer = (other: DeploymentRecord) => {
    const at = Date.parse(other.spec!.issuedAt);
    return at > issued || (at === issued && other.id > record.id);
  };
  let i = 0;
  while (i < list.length && newer(list[i])) i++;
  list.splice(i, 0, record);
}
