/**
 * What a worker must remember across restarts, in one JSON file (by default
 * `.git/arbeider-state.json` of its checkout): the commands it executed with
 * their outcomes (replay protection, and the answer to a redelivered message),
 * the last applied update, the commit to roll back to, the groups its queue was
 * bound to, and the command running right now with its process group. Every
 * write goes to a temporary file that is synced and renamed over the old one,
 * so a crash leaves either the old state or the new, never half of one.
 */
import * as v from "valibot";
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { ConfigError } from "../shared/config.ts";
import { Event, Timestamp, parseJson } from "../shared/protocol.ts";

const Stamp = v.object({ pid: v.number(), bootId: v.optional(v.string()), startTime: v.optional(v.string()) });

export const State = v.object({
  v: v.literal(1),
  /** Executed command ids, each kept until its command expires (an expired replay is rejected anyway). */
  executed: v.record(v.string(), v.object({ expiresAt: Timestamp, outcome: Event })),
  /** `issuedAt` of the last update that succeeded: older updates are superseded. */
  lastUpdateIssuedAt: v.optional(Timestamp),
  /** HEAD before the last successful update that moved it: where `rollback` goes. */
  previousCommit: v.optional(v.string()),
  /** The groups the node queue was last bound to, so bindings of groups left can be removed. */
  groups: v.array(v.string()),
  /** The command in progress and its process group, cleared when it ends. */
  running: v.optional(v.object({ id: v.string(), group: v.optional(Stamp) })),
});
export type State = v.InferOutput<typeof State>;

export const emptyState = (): State => ({ v: 1, executed: {}, groups: [] });

/** `state` without the executed ids whose command has expired by `now`. */
export function pruneExecuted(state: State, now: number): State {
  const executed = Object.fromEntries(Object.entries(state.executed).filter(([, entry]) => Date.parse(entry.expiresAt) > now));
  return { ...state, executed };
}

/** Reads the state file; a missing file is a fresh state, an unreadable or invalid one a ConfigError. */
export function readState(file: string): State {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return emptyState();
    throw new ConfigError("ARBEIDER_STATE_FILE", `cannot read ${file}: ${(error as Error).message}`);
  }
  const parsed = parseJson(State, text);
  if (!parsed.ok) throw new ConfigError("ARBEIDER_STATE_FILE", `${file} is not a state file (${parsed.error}); move it away to start afresh`);
  return parsed.value;
}

/** Replaces the state file atomically: write a temporary file, sync it, rename it over the old one. */
export function writeState(file: string, state: State, durable = true): void {
  const temporary = `${file}.${process.pid}.tmp`;
  const fd = openSync(temporary, "w", 0o600);
  try {
    writeSync(fd, `${JSON.stringify(state, null, 1)}\n`);
    if (durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
}

/** The state in memory and on disk, kept the same. */
export interface Store {
  readonly state: State;
  /** Applies `change`, prunes expired ids, writes the file. */
  update(change: (state: State) => State, durable?: boolean): void;
}

export function openStore(file: string, now = Date.now): Store {
  let state = readState(file);
  return {
    get state() {
      return state;
    },
    update(change, durable = true) {
      state = pruneExecuted(change(state), now());
      writeState(file, state, durable);
    },
  };
}
