/**
 * What the history stream holds besides the nodes' events: the rollout
 * driver's decisions (a wave started, a pause, an approval, an abort, a node
 * counted failed, a rollback, a newer rollout taking over, a catch-up sent),
 * each its own signed message on `deployment.<id>`, so a restarted webhook or
 * a second replica folds the same rollout from the same records. The outbox
 * of reports to CI providers and notification URLs lives here too: a
 * delivery is recorded `pending` before it is tried and `delivered` or
 * `failed` after. Pure: the schemas and the parse of one stream message body.
 */
import * as v from "valibot";
import { createHash } from "node:crypto";
import { Commit, DEPLOYMENT_PATTERN, Event, NodeId, PROTOCOL_VERSION, Timestamp, describeIssues } from "./protocol.ts";

const Id = v.pipe(v.string(), v.regex(DEPLOYMENT_PATTERN, "must match [A-Za-z0-9_-]{1,128}"));
const Wave = v.pipe(v.number(), v.integer(), v.minValue(1));
const Reason = v.pipe(v.string(), v.maxLength(500));

/** Where a report goes: a CI provider's API, or the n-th URL of ARBEIDER_NOTIFY_URLS (from 1). */
export const REPORT_TARGET_PATTERN = /^(github|github-status|gitlab|(notify|slack):[1-9][0-9]{0,2})$/;

const common = { v: v.literal(PROTOCOL_VERSION), deployment: Id, at: Timestamp };

/** One decision about one rollout, tagged by its kind. */
export const Decision = v.variant("decision", [
  /** Wave `wave` was dispatched: its nodes got their commands. */
  v.object({ ...common, decision: v.literal("wave"), wave: Wave }),
  /** Wave `wave` is done and the rollout waits for an approval. */
  v.object({ ...common, decision: v.literal("pause"), wave: Wave }),
  /** Someone approved going on after wave `wave`. */
  v.object({ ...common, decision: v.literal("approve"), wave: Wave, by: v.optional(Reason) }),
  /** Dispatching stops; the strategy's on_failure applies. */
  v.object({ ...common, decision: v.literal("abort"), reason: Reason, by: v.optional(Reason) }),
  /** A node counted failed from what its heartbeats said (gone, stopping, unhealthy). */
  v.object({ ...common, decision: v.literal("node"), node: NodeId, state: v.picklist(["missing", "unhealthy"]), reason: Reason }),
  /** These nodes are sent back to these commits. */
  v.object({ ...common, decision: v.literal("rollback"), nodes: v.record(NodeId, Commit) }),
  /** A newer rollout to some of the same nodes took over. */
  v.object({ ...common, decision: v.literal("supersede"), by: Id }),
  /** A node that missed this update was sent it (attempt n, seen at commit `seen`). */
  v.object({ ...common, decision: v.literal("catch-up"), node: NodeId, attempt: Wave, seen: v.nullable(v.string()) }),
  /** A report of the deployment's state `event` to `target`: about to be tried (again), or done (webhook/reporter.ts). */
  v.object({
    ...common,
    decision: v.literal("report"),
    delivery: v.pipe(v.string(), v.uuid("must be a UUID")),
    target: v.pipe(v.string(), v.regex(REPORT_TARGET_PATTERN, "must be github, github-status, gitlab, notify:<n> or slack:<n>")),
    event: v.pipe(v.string(), v.regex(/^deployment\.[a-z_]{1,20}$/, "must be deployment.<state>")),
    state: v.picklist(["pending", "delivered", "failed"]),
    attempts: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(1000))),
    /** The provider's id of what the report created (the GitHub deployment), for the reports that follow. */
    remote: v.optional(v.pipe(v.string(), v.maxLength(200))),
    reason: v.optional(Reason),
  }),
]);
export type Decision = v.InferOutput<typeof Decision>;
export type ReportDecision = Extract<Decision, { decision: "report" }>;

/** A history message: a node's (or the webhook's `created`) event, or a decision. */
export type HistoryRecord = { kind: "event"; event: Event } | { kind: "decision"; decision: Decision };

/** Parses a history message body; decisions are told apart by their `decision` field. */
export function parseRecord(bytes: Uint8Array): { ok: true; record: HistoryRecord } | { ok: false; error: string } {
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    return { ok: false, error: `malformed JSON: ${(error as Error).message}` };
  }
  const isDecision = typeof data === "object" && data !== null && "decision" in data;
  const result = isDecision ? v.safeParse(Decision, data) : v.safeParse(Event, data);
  if (!result.success) return { ok: false, error: describeIssues(result.issues) };
  return { ok: true, record: isDecision ? { kind: "decision", decision: result.output as Decision } : { kind: "event", event: result.output as Event } };
}

/** What a command of a deployment is for: its own single command, a node's update in a rollout, a rollback, a catch-up. */
export type CommandKind = "direct" | "update" | "rollback" | "catch-up";

const PREFIX = { update: "u", rollback: "r", "catch-up": "c" } as const;

/**
 * The id of the command a rollout sends one node: the same every time it is
 * worked out (a driver that restarts re-sends the same id, which the node runs
 * once), distinct per deployment, node, purpose and attempt, and within the
 * protocol's id charset and length whatever the deployment id and node are.
 */
export function commandId(kind: Exclude<CommandKind, "direct">, deployment: string, node: string, attempt = 1): string {
  const hash = createHash("sha256").update(`${deployment}\n${node}`).digest("base64url").slice(0, 22);
  return `${PREFIX[kind]}${attempt > 1 ? attempt : ""}-${hash}`;
}

/** The purpose of command `id` of `deployment`, from its id alone (commandId's prefix). */
export function commandKind(id: string, deployment: string): CommandKind {
  if (id === deployment) return "direct";
  if (/^r\d*-/.test(id)) return "rollback";
  if (/^c\d*-/.test(id)) return "catch-up";
  return "update";
}
