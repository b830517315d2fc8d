/**
 * The deployment reducer (shared/deployments.ts) and how it is served
 * (shared/served.ts) as tables: events in, the served deployment out, with and
 * without the command having expired.
 */
import { describe, expect, test } from "bun:test";
import { applyEvent, createRecord, type DeploymentRecord } from "../shared/deployments.ts";
import { sweep } from "../shared/sweep.ts";
import type { Command, Event } from "../shared/protocol.ts";
import { present } from "../shared/served.ts";

const CREATED_AT = Date.parse("2026-01-01T10:00:00.000Z");
const EXPIRES_AT = CREATED_AT + 60_000;
const BEFORE_EXPIRY = CREATED_AT + 30_000;
const AFTER_EXPIRY = EXPIRES_AT + 1;

const spec: Command = {
  v: 1,
  id: "d1",
  deployment: "d1",
  fleet: "shop",
  target: "all",
  command: "update",
  args: { branch: "master", commit: "abcdef0" },
  issuedAt: new Date(CREATED_AT).toISOString(),
  expiresAt: new Date(EXPIRES_AT).toISOString(),
  source: { provider: "api" },
};

const at = (seconds: number) => new Date(CREATED_AT + seconds * 1000).toISOString();
const created = (expected: string[]): Event => ({ v: 1, deployment: "d1", command: "d1", state: "created", at: at(0), spec, expected });
const node = (name: string, state: Event["state"], seconds: number, extra: Partial<Event> = {}): Event => ({
  v: 1,
  deployment: "d1",
  command: "d1",
  node: name,
  state,
  at: at(seconds),
  ...extra,
});

/** The record after `events`, swept at `now` (no node's heartbeats known: only the clock decides). */
function fold(events: Event[], now = BEFORE_EXPIRY): DeploymentRecord {
  const record = createRecord("d1");
  for (const event of events) applyEvent(record, event);
  sweep(record, now, () => undefined);
  return record;
}

type Case = [name: string, events: Event[], now: number, state: string, nodes: Record<string, string>];

const cases: Case[] = [
  ["nobody reported yet: queued", [created(["a", "b"])], BEFORE_EXPIRY, "queued", {}],
  ["one node received: running", [created(["a", "b"]), node("a", "received", 1)], BEFORE_EXPIRY, "running", { a: "received" }],
  [
    "every expected node succeeded: succeeded",
    [created(["a", "b"]), node("a", "succeeded", 2), node("b", "succeeded", 3)],
    BEFORE_EXPIRY,
    "succeeded",
    { a: "succeeded", b: "succeeded" },
  ],
  [
    "succeeded and skipped count alike",
    [created(["a", "b"]), node("a", "succeeded", 2), node("b", "skipped", 3, { reason: "superseded" })],
    BEFORE_EXPIRY,
    "succeeded",
    { a: "succeeded", b: "skipped" },
  ],
  [
    "one expected node still running: running",
    [created(["a", "b"]), node("a", "succeeded", 2), node("b", "started", 3)],
    BEFORE_EXPIRY,
    "running",
    { a: "succeeded", b: "started" },
  ],
  [
    "a failed node fails the deployment",
    [created(["a", "b"]), node("a", "failed", 2), node("b", "succeeded", 3)],
    BEFORE_EXPIRY,
    "failed",
    { a: "failed", b: "succeeded" },
  ],
  [
    "a rejected node fails the deployment",
    [created(["a"]), node("a", "rejected", 2, { reason: "expired" })],
    BEFORE_EXPIRY,
    "failed",
    { a: "rejected" },
  ],
  [
    "a later duplicate 'skipped' does not hide the outcome",
    [created(["a"]), node("a", "succeeded", 2), node("a", "skipped", 9, { reason: "duplicate" })],
    BEFORE_EXPIRY,
    "succeeded",
    { a: "succeeded" },
  ],
  [
    "a later 'rejected' does not hide a failure",
    [created(["a"]), node("a", "failed", 2), node("a", "rejected", 9)],
    BEFORE_EXPIRY,
    "failed",
    { a: "failed" },
  ],
  [
    "a late 'received' does not move a node back",
    [created(["a"]), node("a", "started", 2), node("a", "received", 1)],
    BEFORE_EXPIRY,
    "running",
    { a: "started" },
  ],
  [
    "a node that is not expected is shown too",
    [created(["a"]), node("a", "succeeded", 2), node("z", "succeeded", 3)],
    BEFORE_EXPIRY,
    "succeeded",
    { a: "succeeded", z: "succeeded" },
  ],
  [
    "an unexpected node still busy keeps it running",
    [created(["a"]), node("a", "succeeded", 2), node("z", "started", 3)],
    BEFORE_EXPIRY,
    "running",
    { a: "succeeded", z: "started" },
  ],
  [
    "after expiry an expected node that never reported is missing",
    [created(["a", "b"]), node("a", "succeeded", 2)],
    AFTER_EXPIRY,
    "failed",
    { a: "succeeded", b: "missing" },
  ],
  [
    "before expiry the silent node is just waited for",
    [created(["a", "b"]), node("a", "succeeded", 2)],
    BEFORE_EXPIRY,
    "running",
    { a: "succeeded" },
  ],
  [
    "a node that reported before expiry is not missing",
    [created(["a"]), node("a", "started", 2)],
    AFTER_EXPIRY,
    "running",
    { a: "started" },
  ],
  [
    "a node silent after started is missing once the command is past twice its lifetime",
    [created(["a", "b"]), node("a", "succeeded", 2), node("b", "started", 3), node("z", "received", 4)],
    EXPIRES_AT + (EXPIRES_AT - CREATED_AT),
    "failed",
    { a: "succeeded", b: "missing", z: "missing" },
  ],
  ["expired with no node expected and none reporting: failed", [created([])], AFTER_EXPIRY, "failed", {}],
  [
    "nodes named like Object's own methods are nodes like any other",
    [created(["constructor", "toString"]), node("constructor", "received", 1), node("constructor", "succeeded", 2)],
    AFTER_EXPIRY,
    "failed",
    { constructor: "succeeded", toString: "missing" },
  ],
  [
    "a node named constructor that succeeded is done",
    [created(["constructor"]), node("constructor", "succeeded", 2)],
    BEFORE_EXPIRY,
    "succeeded",
    { constructor: "succeeded" },
  ],
  [
    "node reports before the created record are kept",
    [node("a", "received", 1), node("a", "succeeded", 2), created(["a"])],
    BEFORE_EXPIRY,
    "succeeded",
    { a: "succeeded" },
  ],
];

describe("deployment reducer", () => {
  for (const [name, events, now, state, nodes] of cases) {
    test(name, () => {
      const deployment = present(fold(events, now), now)!;
      expect(deployment.state).toBe(state as never);
      const states: Record<string, string> = Object.fromEntries(Object.entries(deployment.nodes).map(([id, r]) => [id, r.state]));
      expect(states).toEqual(nodes);
    });
  }

  test("a redelivered outcome changes nothing", () => {
    const record = fold([created(["a"]), node("a", "succeeded", 2, { commitAfter: "abcdef0", durationMs: 40 })]);
    expect(applyEvent(record, node("a", "succeeded", 7, { commitAfter: "abcdef0", durationMs: 99 }))).toBe(false);
    expect(present(record, BEFORE_EXPIRY)!.nodes.a.durationMs).toBe(40);
  });

  test("a repeated created record keeps the first spec and expected list", () => {
    const record = fold([created(["a"])]);
    expect(applyEvent(record, created(["a", "b"]))).toBe(false);
    expect(present(record, BEFORE_EXPIRY)!.expected).toEqual(["a"]);
  });

  test("a deployment without its created record is not served", () => {
    expect(present(fold([node("a", "received", 1)]), BEFORE_EXPIRY)).toBeUndefined();
  });

  test("the served deployment has the contract's fields and the node's details", () => {
    const events = [created(["b", "a"]), node("a", "succeeded", 2, { commitBefore: "1111111", commitAfter: "abcdef0", durationMs: 40, output: "ok\n" })];
    const deployment = present(fold(events, AFTER_EXPIRY), AFTER_EXPIRY)!;
    expect(deployment).toMatchObject({
      id: "d1",
      command: "update",
      target: "all",
      args: { branch: "master", commit: "abcdef0" },
      source: { provider: "api" },
      createdAt: at(0),
      expected: ["a", "b"],
      state: "failed",
      finishedAt: new Date(EXPIRES_AT).toISOString(),
    });
    expect(deployment.nodes.a).toEqual({ state: "succeeded", at: at(2), commitBefore: "1111111", commitAfter: "abcdef0", durationMs: 40, output: "ok\n" });
    expect(deployment.nodes.b).toMatchObject({ state: "missing" });
  });

  test("a failed deployment with nodes still running is not finished: no finishedAt, and its nodes keep running", () => {
    const deployment = present(fold([created(["a", "b", "c"]), node("a", "failed", 2), node("b", "started", 3)]), BEFORE_EXPIRY)!;
    expect(deployment.state).toBe("failed");
    expect(deployment.finishedAt).toBeUndefined();
    expect(deployment.counts).toEqual({ failed: 1, started: 1, waiting: 1 });
  });

  test("a finished deployment says when it finished: its last outcome", () => {
    const deployment = present(fold([created(["a", "b"]), node("a", "succeeded", 2), node("b", "succeeded", 5)]), BEFORE_EXPIRY)!;
    expect(deployment.finishedAt).toBe(at(5));
  });
});
