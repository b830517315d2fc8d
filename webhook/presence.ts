/**
 * Which nodes are there, from their heartbeats: each node's latest heartbeat,
 * when it came, and its period: the one each heartbeat states, or (from a
 * worker that does not state it) learned from the gaps between heartbeats. A
 * node is online while its last heartbeat is younger than three periods, and
 * offline at once when its worker said it is stopping; a node that just goes
 * silent is named once, by `wentSilent`, when it crosses that line.
 */
import type { Presence } from "../shared/sweep.ts";
import type { Heartbeat } from "../shared/protocol.ts";

export interface Seen {
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

export function createPresence(now: () => number) {
  const seen = new Map<string, Seen>();
  /** Nodes counted online when last looked at: a heartbeat, or `wentSilent`. */
  const wasOnline = new Set<string>();
  const online = (s: Seen, at = now()) => !s.heartbeat.stopping && at - s.lastSeen <= ONLINE_PERIODS * s.periodMs;

  return {
    /** Records a heartbeat seen at `at` (ms); false when it is older than what is known. */
    heartbeat(heartbeat: Heartbeat, at: number): boolean {
      const previous = seen.get(heartbeat.node);
      if (previous && at < previous.lastSeen) return false;
      const gaps = previous ? nextGaps(previous, at - previous.lastSeen) : [];
      // A stated period wins: extra beats after commands make short gaps that would shrink a learned one.
      const periodMs = heartbeat.period ? heartbeat.period * 1000 : gaps.length > 0 ? Math.max(...gaps) : DEFAULT_PERIOD_MS;
      const next = { heartbeat, lastSeen: at, gaps, periodMs };
      seen.set(heartbeat.node, next);
      if (online(next, at)) wasOnline.add(heartbeat.node);
      else wasOnline.delete(heartbeat.node);
      return true;
    },
    /** The nodes that were online and are not by now, with no heartbeat saying so: their silence did. */
    wentSilent(at: number): string[] {
      const gone: string[] = [];
      for (const node of wasOnline) {
        if (online(seen.get(node)!, at)) continue;
        wasOnline.delete(node);
        gone.push(node);
      }
      return gone;
    },
    get: (node: string) => seen.get(node),
    online,
    /** What the deployment sweep needs to know of a node. */
    of(node: string, at: number): Presence | undefined {
      const s = seen.get(node);
      if (!s) return undefined;
      const { stopping, healthy, at: sent } = s.heartbeat;
      return { online: online(s, at), stopping: stopping === true, lastSeen: s.lastSeen, periodMs: s.periodMs, healthy, heartbeatAt: Date.parse(sent) };
    },
    ids: () => [...seen.keys()].sort(),
    onlineNodes(): { node: string; groups: string[] }[] {
      const at = now();
      return [...seen.values()].filter((s) => online(s, at)).map((s) => ({ node: s.heartbeat.node, groups: s.heartbeat.groups }));
    },
  };
}
