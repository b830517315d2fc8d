/**
 * The webhook's memory, rebuilt from the broker at every start: deployments
 * folded from the history stream and nodes from their heartbeats. It holds no
 * broker code (webhook/history.ts feeds it) so the HTTP app and its tests can
 * use it alone. Listeners hear every live event and heartbeat, for SSE.
 */
import { applyEvent, present, type Deployment, type DeploymentRecord } from "../shared/deployments.ts";
import { targetMatches, type Event, type Heartbeat } from "../shared/protocol.ts";

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
}

export type ViewMessage =
  | { kind: "event"; event: Event; deployment: Deployment | undefined }
  | { kind: "heartbeat"; heartbeat: Heartbeat };

interface Seen {
  heartbeat: Heartbeat;
  lastSeen: number;
  /** The last few gaps between heartbeats: the node's period is the largest. */
  gaps: number[];
  periodMs: number;
}

/** A node is online while its last heartbeat is younger than this many of its periods. */
export const ONLINE_PERIODS = 3;
const DEFAULT_PERIOD_MS = 15_000;
const MAX_PERIOD_MS = 3_600_000;

/**
 * The gaps that tell a node's period. An extra beat (a worker may report a
 * change at once) makes a short gap, so the period is the largest recent gap;
 * a gap longer than the online window was an outage, not a period.
 */
function nextGaps(previous: Seen, gap: number): number[] {
  const outage = previous.gaps.length > 0 ? ONLINE_PERIODS * previous.periodMs : MAX_PERIOD_MS;
  if (gap < 250 || gap > outage) return previous.gaps;
  return [...previous.gaps, gap].slice(-3);
}

export type View = ReturnType<typeof createView>;

/** An empty view; `now` is the clock in ms (tests pass their own). */
export function createView(options: { now?: () => number } = {}) {
  const now = options.now ?? Date.now;
  const records = new Map<string, DeploymentRecord>();
  const seen = new Map<string, Seen>();
  const listeners = new Set<(message: ViewMessage) => void>();
  // The exact bytes of the created records this process is publishing now, by deployment id.
  const ownRecords = new Map<string, Uint8Array>();
  let live = false;

  const tell = (message: ViewMessage) => {
    if (!live) return;
    for (const listener of listeners) listener(message);
  };
  const isOnline = (s: Seen, at: number) => at - s.lastSeen <= ONLINE_PERIODS * s.periodMs;

  return {
    /** Folds one deployment event in. */
    apply(event: Event): void {
      const before = records.get(event.deployment);
      const record = applyEvent(before, event);
      records.set(event.deployment, record);
      // The deployer folds its own `created` in at once; the stream's copy of it is no news.
      if (event.state === "created" && record === before) return;
      tell({ kind: "event", event, deployment: present(record, now()) });
    },
    /** Records a heartbeat seen at `at` (ms); the node's period is learned from the gap to its previous one. */
    heartbeat(heartbeat: Heartbeat, at = now()): void {
      const previous = seen.get(heartbeat.node);
      // A replayed heartbeat older than what is known already adds nothing.
      if (previous && at < previous.lastSeen) return;
      const gaps = previous ? nextGaps(previous, at - previous.lastSeen) : [];
      const periodMs = gaps.length > 0 ? Math.max(...gaps) : DEFAULT_PERIOD_MS;
      seen.set(heartbeat.node, { heartbeat, lastSeen: at, gaps, periodMs });
      tell({ kind: "heartbeat", heartbeat });
    },
    /** Notes (or, with undefined, forgets) the created record this process is publishing for `id`. */
    publishing(id: string, record: Uint8Array | undefined): void {
      if (record) ownRecords.set(id, record);
      else ownRecords.delete(id);
    },
    /** Whether `bytes` are the created record this process is publishing for `id`. */
    isOwnRecord(id: string, bytes: Uint8Array): boolean {
      const own = ownRecords.get(id);
      return own !== undefined && Buffer.from(own).equals(bytes);
    },
    /** Whether a deployment with this id was created (its `created` record is known). */
    has(id: string): boolean {
      return records.get(id)?.spec !== undefined;
    },
    get(id: string): Deployment | undefined {
      const record = records.get(id);
      return record && present(record, now());
    },
    /** Deployments, newest first. */
    list(limit: number): Deployment[] {
      const at = now();
      const all: Deployment[] = [];
      for (const record of records.values()) {
        const deployment = present(record, at);
        if (deployment) all.push(deployment);
      }
      all.sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt) || b.id.localeCompare(a.id));
      return all.slice(0, limit);
    },
    nodes(): NodeStatus[] {
      const at = now();
      return [...seen.values()]
        .map((s) => ({
          node: s.heartbeat.node,
          groups: s.heartbeat.groups,
          commit: s.heartbeat.commit,
          branch: s.heartbeat.branch,
          busy: s.heartbeat.busy,
          version: s.heartbeat.version,
          lastSeen: new Date(s.lastSeen).toISOString(),
          online: isOnline(s, at),
        }))
        .sort((a, b) => a.node.localeCompare(b.node));
    },
    /** The online nodes `target` names: a deployment's `expected`. */
    expectedFor(target: string): string[] {
      const at = now();
      return [...seen.values()]
        .filter((s) => isOnline(s, at) && targetMatches(target, s.heartbeat.node, s.heartbeat.groups))
        .map((s) => s.heartbeat.node)
        .sort();
    },
    /** From now on, listeners hear every event: history has been replayed. */
    goLive(): void {
      live = true;
    },
    subscribe(listener: (message: ViewMessage) => void): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
