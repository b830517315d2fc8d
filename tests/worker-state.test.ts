/**
 * The worker's state file, without a broker: its named operations as a table,
 * the journal read back by a new store, a change costing one appended line
 * however long the history, compaction dropping expired ids, a torn last line
 * forgiven, a broken file refused, and the single-object file of earlier
 * workers carried over.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../shared/config.ts";
import type { Event } from "../shared/protocol.ts";
import { applyChange, emptyState, openStore, readState, type Change, type State } from "../worker/state.ts";
import { removeDirs, tempDir } from "./helpers.ts";

const dirs: string[] = [];
const file = () => {
  const made = tempDir();
  dirs.push(made);
  return join(made, "state.json");
};
afterAll(() => removeDirs(...dirs));

const NOW = Date.parse("2026-01-01T10:30:00Z");
const at = (minutes: number) => new Date(NOW + minutes * 60_000).toISOString();
const outcome = (id: string): Event => ({ v: 1, deployment: "d", command: id, node: "web-1", state: "succeeded", at: at(-5) });
const finish = (id: string, minutes = 30, extra = {}): Change => ({ finish: { id, expiresAt: at(minutes), outcome: outcome(id), ...extra } });
const stamp = { pid: 4242, bootId: "b", startTime: "7" };
const lines = (path: string) => readFileSync(path, "utf8").trim().split("\n");

describe("named operations", () => {
  const table: [string, Change[], Partial<State>][] = [
    ["begin records the command and where it started", [{ begin: { id: "c1", from: { sha: "a1", branch: "master" } } }], { running: { id: "c1", from: { sha: "a1", branch: "master" }, groups: [] } }],
    ["spawned adds a process group to the running command", [{ begin: { id: "c1" } }, { spawned: stamp }, { spawned: { ...stamp, pid: 7 } }], { running: { id: "c1", groups: [stamp, { ...stamp, pid: 7 }] } }],
    ["spawned without a running command changes nothing", [{ spawned: stamp }], { running: undefined }],
    ["finish of the running command ends it", [{ begin: { id: "c1" } }, finish("c1")], { running: undefined }],
    ["finish of another command (a ping) leaves it", [{ begin: { id: "c1" } }, finish("p1")], { running: { id: "c1", groups: [] } }],
    [
      "finish of an update records what it remembers",
      [finish("u1", 30, { lastUpdateIssuedAt: at(-1), previous: { sha: "a1", branch: "master" } }), finish("u2")],
      { lastUpdateIssuedAt: at(-1), previous: { sha: "a1", branch: "master" } },
    ],
    ["bound replaces the groups", [{ bound: ["web"] }, { bound: ["db", "eu"] }], { groups: ["db", "eu"] }],
  ];
  for (const [name, changes, expected] of table) {
    test(name, () => {
      const state = emptyState();
      for (const change of changes) applyChange(state, change);
      const named = Object.fromEntries(Object.keys(expected).map((key) => [key, state[key as keyof State]]));
      expect(named).toEqual(expected);
    });
  }

  test("finish keeps the outcome under the id, with its expiry parsed once", () => {
    const state = emptyState();
    applyChange(state, finish("constructor"));
    expect(state.executed.get("constructor")).toEqual({ expiresAt: at(30), expires: NOW + 30 * 60_000, outcome: outcome("constructor") });
    expect(state.executed.get("toString")).toBeUndefined();
  });
});

describe("the journal", () => {
  test("every operation appends one line; a new store reads the same state back", () => {
    const path = file();
    const store = openStore(path, () => NOW);
    expect(lines(path)).toHaveLength(1); // the snapshot written at start
    store.bound(["web"]);
    store.begin("u1", { sha: "a1", branch: "master" });
    store.spawned(stamp);
    expect(lines(path)).toHaveLength(4);
    store.finish({ id: "u1", expiresAt: at(30), outcome: outcome("u1"), previous: { sha: "a1", branch: "master" } }, true);
    expect(lines(path)).toHaveLength(5);
    expect(readdirSync(join(path, ".."))).toEqual(["state.json"]);
    expect(readState(path)).toEqual(store.state as State);
    expect(readState(path).previous).toEqual({ sha: "a1", branch: "master" });
  });

  test("a change costs the same one line whether the history holds one id or two thousand", () => {
    const path = file();
    const store = openStore(path, () => NOW);
    const grows = (id: string) => {
      const before = statSync(path).size;
      store.finish({ id, expiresAt: at(30), outcome: outcome("x") }, false);
      return statSync(path).size - before;
    };
    const first = grows("id-0000");
    for (let i = 1; i < 2000; i++) store.finish({ id: `id-${String(i).padStart(4, "0")}`, expiresAt: at(30), outcome: outcome("x") }, false);
    expect(grows("id-2000")).toBe(first);
  });

  test("compaction rewrites the file as one snapshot once as many lines were appended as it kept, dropping the expired", () => {
    const path = file();
    let now = NOW;
    const store = openStore(path, () => now);
    for (let i = 0; i < 200; i++) store.finish({ id: `old-${i}`, expiresAt: at(1), outcome: outcome("x") }, false);
    now = NOW + 2 * 60_000; // the old ones have expired, nothing has pruned them yet
    expect(store.state.executed.size).toBe(200);
    for (let i = 0; i < 56; i++) store.finish({ id: `new-${i}`, expiresAt: at(30), outcome: outcome("x") }, false);
    expect(lines(path)).toHaveLength(1);
    expect(store.state.executed.size).toBe(56);
    expect(Object.keys(JSON.parse(lines(path)[0]!).executed)).toHaveLength(56);
  });

  test("a last line cut short by a crash is left out; the store goes on from the state before it", () => {
    const path = file();
    openStore(path, () => NOW).finish({ id: "u1", expiresAt: at(30), outcome: outcome("u1") }, true);
    writeFileSync(path, `${readFileSync(path, "utf8")}{"finish":{"id":"u2","expi`);
    const store = openStore(path, () => NOW);
    expect([...store.state.executed.keys()]).toEqual(["u1"]);
    store.begin("u3");
    expect(readState(path).running?.id).toBe("u3");
  });

  const broken: [string, string][] = [
    ["a file whose first line is no snapshot", '{"v":1,"executed":[]}'],
    ["a journal with a broken line before the last", `${JSON.stringify({ v: 2, executed: {}, groups: [] })}\nnot json\n{"bound":[]}\n`],
  ];
  for (const [name, text] of broken) {
    test(`${name} is a ConfigError naming ARBEIDER_STATE_FILE, not a silent fresh start`, () => {
      const path = file();
      writeFileSync(path, text);
      expect(() => readState(path)).toThrow(ConfigError);
      expect(() => readState(path)).toThrow(/^ARBEIDER_STATE_FILE: .* is not a state file/);
    });
  }

  test("the single-object file of earlier workers is read as the journal's first snapshot", () => {
    const path = file();
    const v1 = {
      v: 1,
      executed: { u1: { expiresAt: at(30), outcome: outcome("u1") } },
      lastUpdateIssuedAt: at(-2),
      previousCommit: "abc1234",
      groups: ["web"],
      running: { id: "u2", group: stamp },
    };
    writeFileSync(path, JSON.stringify(v1, null, 1));
    const store = openStore(path, () => NOW);
    expect(store.state).toMatchObject({ lastUpdateIssuedAt: at(-2), previous: { sha: "abc1234" }, groups: ["web"], running: { id: "u2", groups: [stamp] } });
    expect(store.state.executed.get("u1")?.outcome).toEqual(outcome("u1"));
    expect(JSON.parse(lines(path)[0]!).v).toBe(2);
  });
});
