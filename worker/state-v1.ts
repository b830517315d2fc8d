/**
 * The state file as workers wrote it before the journal: one JSON object
 * (`"v": 1`), rewritten whole on every change. A worker upgraded in place reads
 * it once as the snapshot its journal starts from, so the ids it executed, the
 * commit to roll back to and the groups its queue is bound to carry over.
 */
import * as v from "valibot";
import { Event, Timestamp } from "../shared/protocol.ts";
import type { Snapshot } from "./state.ts";

const Stamp = v.object({ pid: v.number(), bootId: v.optional(v.string()), startTime: v.optional(v.string()) });

const StateV1 = v.object({
  v: v.literal(1),
  executed: v.record(v.string(), v.object({ expiresAt: Timestamp, outcome: Event })),
  lastUpdateIssuedAt: v.optional(Timestamp),
  previousCommit: v.optional(v.string()),
  groups: v.array(v.string()),
  running: v.optional(v.object({ id: v.string(), group: v.optional(Stamp) })),
});

/** The snapshot a version 1 file amounts to, or undefined when `text` is not one. */
export function readV1(text: string): Snapshot | undefined {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined; // several lines of JSON: a journal
  }
  const parsed = v.safeParse(StateV1, data);
  if (!parsed.success) return undefined;
  const { executed, lastUpdateIssuedAt, previousCommit, groups, running } = parsed.output;
  // Version 1 did not record the branch: a rollback to that commit stays on the branch the node is on.
  const previous = previousCommit ? { sha: previousCommit } : undefined;
  return { v: 2, executed, lastUpdateIssuedAt, previous, groups, running: running && { id: running.id, groups: running.group ? [running.group] : [] } };
}
