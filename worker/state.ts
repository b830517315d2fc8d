/**
 * What a worker must remember across restarts, in one file (by default
 * `.git/arbeider-state.json` of its checkout) of JSON lines: a snapshot, then
 * one line per change since, each a named operation of this module: `begin`
 * (a command started, from this commit and branch), `spawned` (the process
 * group of a child it started), `finish` (its outcome, recorded before it is
 * published, and for an update what a rollback returns to) and `bound` (the
 * groups the node queue is bound to).
 *
 * A change costs one appended line, whatever the history holds. Only `finish`
 * of a command that can change something is synced to disk, once per command
 * (and the rare `bound`): exactly-once after a power loss needs the outcome. `begin` and `spawned` are
 * kept by the page cache across a crash of the worker, which is what they are
 * for; after a power loss the processes they name are gone anyway (and an
 * update started then is taken to start from HEAD again). The file is compacted
 * into a fresh snapshot (temporary file, sync, rename) at start and once as
 * many lines were appended as it kept live entries; expired ids are dropped
 * then, so the cost per command stays constant.
 */
import * as v from "valibot";
import { closeSync, fdatasyncSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { ConfigError } from "../shared/config.ts";
import { Event, Timestamp } from "../shared/protocol.ts";
import type { ProcessStamp } from "./proc.ts";
import { readV1 } from "./state-v1.ts";

/** A commit and the branch it was checked out on (none: detached). */
export const Position = v.object({ sha: v.string(), branch: v.optional(v.string()) });
export type Position = v.InferOutput<typeof Position>;

const Stamp = v.object({ pid: v.number(), bootId: v.optional(v.string()), startTime: v.optional(v.string()) });
export const Entry = v.object({ expiresAt: Timestamp, outcome: Event });
const Running = v.object({ id: v.string(), from: v.optional(Position), groups: v.array(Stamp) });
/** What an update's outcome changes: older updates are superseded; `previous` is where `rollback` goes. */
const Remember = { lastUpdateIssuedAt: v.optional(Timestamp), previous: v.optional(Position) };

const Snapshot = v.object({
  v: v.literal(2),
  executed: v.record(v.string(), Entry),
  ...Remember,
  groups: v.array(v.string()),
  running: v.optional(Running),
});

export const Change = v.union([
  v.object({ begin: v.object({ id: v.string(), from: v.optional(Position) }) }),
  v.object({ spawned: Stamp }),
  v.object({ finish: v.object({ id: v.string(), ...Entry.entries, ...Remember }) }),
  v.object({ bound: v.array(v.string()) }),
]);
export type Change = v.InferOutput<typeof Change>;
export type Finish = Extract<Change, { finish: unknown }>["finish"];

export interface State {
  /** Executed command ids with their outcomes; `expires` is `expiresAt` parsed once. */
  executed: Map<string, v.InferOutput<typeof Entry> & { expires: number }>;
  lastUpdateIssuedAt?: string;
  previous?: Position;
  groups: string[];
  /** The command in progress, where it started from, and the process groups of its children. */
  running?: v.InferOutput<typeof Running>;
}

export const emptyState = (): State => ({ executed: new Map(), groups: [] });

/** Applies one change to `state` in place (a Map and small fields: constant cost). */
export function applyChange(state: State, change: Change): void {
  if ("begin" in change) state.running = { id: change.begin.id, from: change.begin.from, groups: [] };
  else if ("spawned" in change) state.running?.groups.push(change.spawned);
  else if ("bound" in change) state.groups = [...change.bound];
  else {
    const { id, expiresAt, outcome, lastUpdateIssuedAt, previous } = change.finish;
    state.executed.set(id, { expiresAt, outcome, expires: Date.parse(expiresAt) });
    if (lastUpdateIssuedAt) state.lastUpdateIssuedAt = lastUpdateIssuedAt;
    if (previous) state.previous = previous;
    if (state.running?.id === id) state.running = undefined;
  }
}

/** Drops the executed ids whose command has expired by `now` (a copy would be rejected as expired anyway). */
export function pruneExecuted(state: State, now: number): void {
  for (const [id, entry] of state.executed) if (entry.expires <= now) state.executed.delete(id);
}

export type Snapshot = v.InferOutput<typeof Snapshot>;

export function snapshotOf(state: State): Snapshot {
  const executed = Object.fromEntries([...state.executed].map(([id, { expiresAt, outcome }]) => [id, { expiresAt, outcome }]));
  const { lastUpdateIssuedAt, previous, groups, running } = state;
  return { v: 2, executed, lastUpdateIssuedAt, previous, groups, running };
}

function fromSnapshot(snapshot: Snapshot): State {
  const executed = new Map(Object.entries(snapshot.executed).map(([id, entry]) => [id, { ...entry, expires: Date.parse(entry.expiresAt) }]));
  const { lastUpdateIssuedAt, previous, groups, running } = snapshot;
  return { executed, lastUpdateIssuedAt, previous, groups, running };
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
  const invalid = (why: string) => new ConfigError("ARBEIDER_STATE_FILE", `${file} is not a state file (${why}); move it away to start afresh`);
  const old = readV1(text);
  if (old) return fromSnapshot(old);
  const lines = text.split("\n").filter((line) => line !== "");
  const parse = <S extends v.GenericSchema>(schema: S, line: string | undefined) => {
    try {
      const result = v.safeParse(schema, JSON.parse(line ?? ""));
      return result.success ? (result.output as v.InferOutput<S>) : undefined;
    } catch {
      return undefined;
    }
  };
  const snapshot = parse(Snapshot, lines[0]);
  if (!snapshot) throw invalid("its first line is no snapshot");
  const state = fromSnapshot(snapshot);
  for (const [i, line] of lines.entries()) {
    if (i === 0) continue;
    const change = parse(Change, line);
    // The last line may be one a crash cut short: it was never synced, so nothing was published on its word.
    if (change) applyChange(state, change);
    else if (i < lines.length - 1) throw invalid(`line ${i + 1} is not a change`);
  }
  return state;
}

function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done);
}

/** Prunes `state`, then replaces the file with its snapshot, atomically: temporary file, sync, rename. */
function compact(file: string, state: State, now: number): void {
  pruneExecuted(state, now);
  const temporary = `${file}.${process.pid}.tmp`;
  const fd = openSync(temporary, "w", 0o600);
  try {
    writeAll(fd, `${JSON.stringify(snapshotOf(state))}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, file);
}

/** The state in memory and on disk, changed only through its named operations. */
export interface Store {
  readonly state: Readonly<State>;
  /** A command starts (not a ping): it runs now, from `from`. */
  begin(id: string, from?: Position): void;
  /** A child of the running command started, in its own process group. */
  spawned(stamp: ProcessStamp): void;
  /** A command's outcome, recorded before it is published; synced to disk when `durable`. */
  finish(entry: Finish, durable: boolean): void;
  /** The node queue is bound to these groups now. */
  bound(groups: readonly string[]): void;
}

/** Lines appended before the file is compacted, at the least: compaction then costs little per command. */
const COMPACT_AFTER = 256;

export function openStore(file: string, now = Date.now): Store {
  const state = readState(file);
  compact(file, state, now());
  let fd = openSync(file, "a", 0o600);
  let appended = 0;
  // Compacting costs the live entries; doing it only after as many lines keeps the cost per line constant.
  let kept = state.executed.size;

  function append(change: Change, durable: boolean): void {
    writeAll(fd, `${JSON.stringify(change)}\n`);
    if (durable) fdatasyncSync(fd);
    applyChange(state, change);
    if (++appended >= Math.max(COMPACT_AFTER, kept)) {
      closeSync(fd);
      compact(file, state, now());
      fd = openSync(file, "a", 0o600);
      appended = 0;
      kept = state.executed.size;
    }
  }

  return {
    state,
    begin: (id, from) => append({ begin: { id, from } }, false),
    spawned: (stamp) => append({ spawned: stamp }, false),
    finish: (entry, durable) => append({ finish: entry }, durable),
    bound: (groups) => append({ bound: [...groups] }, true),
  };
}
