/**
 * The wire protocol both processes agree on: the Command the webhook signs and
 * the workers execute, the Event every party reports, the Heartbeat each node
 * sends, and the names of the exchanges, queues and routing keys that carry
 * them. Pure: imports only valibot, so tests and both entrypoints share it.
 */
import * as v from "valibot";
import { StrategySchema } from "./strategy.ts";

export const PROTOCOL_VERSION = 1;

/** The message header holding the base64 Ed25519 signature of the exact body bytes. */
export const SIGNATURE_HEADER = "x-arbeider-signature";

/** Characters allowed in node ids and group names. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
export const FLEET_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const DEPLOYMENT_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
export const COMMIT_PATTERN = /^[0-9a-f]{7,40}$/;
export const HOOK_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const SIGNALS = ["HUP", "USR1", "USR2", "TERM", "INT", "QUIT"] as const;
export const COMMANDS = ["update", "rollback", "signal", "hook", "ping"] as const;
export const PROVIDERS = ["codeship", "github", "gitlab", "api"] as const;

/**
 * A branch name that can never be read by git as an option, a revision
 * expression or a path outside refs/heads: the rules of
 * `git check-ref-format --branch`, plus no leading dash.
 */
export function isSafeBranch(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 200 &&
    /^[A-Za-z0-9._\/-]+$/.test(name) &&
    !name.startsWith("-") &&
    !name.startsWith("/") &&
    !name.endsWith("/") &&
    !name.endsWith(".") &&
    !name.endsWith(".lock") &&
    !name.includes("..") &&
    !name.includes("//") &&
    !name.split("/").some((part) => part.startsWith(".")) &&
    name !== "HEAD"
  );
}

export const NodeId = v.pipe(v.string(), v.regex(NAME_PATTERN, "must match [A-Za-z0-9][A-Za-z0-9_-]{0,62}"));
export const Branch = v.pipe(v.string(), v.check(isSafeBranch, "is not a safe branch name"));
export const Commit = v.pipe(v.string(), v.regex(COMMIT_PATTERN, "must be 7 to 40 lowercase hex digits"));
export const Timestamp = v.pipe(v.string(), v.isoTimestamp("must be an ISO-8601 timestamp"));
export const Target = v.pipe(
  v.string(),
  v.check(
    (t) => t === "all" || ((t.startsWith("group:") || t.startsWith("node:")) && NAME_PATTERN.test(t.slice(t.indexOf(":") + 1))),
    'must be "all", "group:<name>" or "node:<id>"',
  ),
);

const UpdateArgs = v.strictObject({ branch: Branch, commit: v.optional(Commit) });
const RollbackArgs = v.strictObject({ commit: v.optional(Commit) });
const SignalArgs = v.strictObject({
  service: v.pipe(v.string(), v.regex(HOOK_NAME_PATTERN, "must match [A-Za-z0-9_-]+")),
  signal: v.picklist(SIGNALS),
});
const HookArgs = v.strictObject({ name: v.pipe(v.string(), v.regex(HOOK_NAME_PATTERN, "must match [A-Za-z0-9_-]+")) });
const NoArgs = v.strictObject({});

/** The args each command takes. */
const ARGS = {
  update: UpdateArgs,
  rollback: v.optional(RollbackArgs, {}),
  signal: SignalArgs,
  hook: HookArgs,
  ping: v.optional(NoArgs, {}),
};

/** What a command asks for, tagged by its name: the args each command takes. */
export const Action = v.variant("command", [
  v.object({ command: v.literal("update"), args: ARGS.update }),
  v.object({ command: v.literal("rollback"), args: ARGS.rollback }),
  v.object({ command: v.literal("signal"), args: ARGS.signal }),
  v.object({ command: v.literal("hook"), args: ARGS.hook }),
  v.object({ command: v.literal("ping"), args: ARGS.ping }),
]);
export type Action = v.InferOutput<typeof Action>;

export const Source = v.pipe(
  v.objectWithRest({ provider: v.picklist(PROVIDERS) }, v.pipe(v.string(), v.maxLength(2000))),
);

/** The fields every command carries besides `command` and `args`. */
const Envelope = {
  v: v.literal(PROTOCOL_VERSION),
  id: v.pipe(v.string(), v.regex(DEPLOYMENT_PATTERN, "must match [A-Za-z0-9_-]{1,128}")),
  deployment: v.pipe(v.string(), v.regex(DEPLOYMENT_PATTERN, "must match [A-Za-z0-9_-]{1,128}")),
  fleet: v.pipe(v.string(), v.regex(FLEET_PATTERN)),
  target: Target,
  issuedAt: Timestamp,
  expiresAt: Timestamp,
  source: Source,
};

/**
 * A signed instruction from the webhook to the nodes its target names. Strict
 * at the top level as inside `args`: a field the schema does not name is an
 * error, not ignored, so a signed message means exactly what it says.
 */
export const Command = v.variant("command", [
  v.strictObject({ ...Envelope, command: v.literal("update"), args: ARGS.update }),
  v.strictObject({ ...Envelope, command: v.literal("rollback"), args: ARGS.rollback }),
  v.strictObject({ ...Envelope, command: v.literal("signal"), args: ARGS.signal }),
  v.strictObject({ ...Envelope, command: v.literal("hook"), args: ARGS.hook }),
  v.strictObject({ ...Envelope, command: v.literal("ping"), args: ARGS.ping }),
]);
export type Command = v.InferOutput<typeof Command>;

export const EVENT_STATES = ["created", "received", "started", "succeeded", "failed", "rejected", "skipped"] as const;
export type EventState = (typeof EVENT_STATES)[number];

/** One party's report about one deployment. */
export const Event = v.object({
  v: v.literal(PROTOCOL_VERSION),
  deployment: v.string(),
  command: v.string(),
  node: v.optional(v.string()),
  state: v.picklist(EVENT_STATES),
  at: Timestamp,
  reason: v.optional(v.string()),
  commitBefore: v.optional(v.string()),
  commitAfter: v.optional(v.string()),
  branch: v.optional(v.string()),
  durationMs: v.optional(v.number()),
  output: v.optional(v.string()),
  spec: v.optional(Command),
  /** On created only: the online nodes the target matched when the command was published. */
  expected: v.optional(v.array(v.string())),
  /** On created of an update only: how it is rolled out, and its waves of node ids in order. */
  strategy: v.optional(StrategySchema),
  waves: v.optional(v.array(v.array(v.string()))),
});
export type Event = v.InferOutput<typeof Event>;

/** A node's periodic "I am here, at this commit". */
export const Heartbeat = v.object({
  v: v.literal(PROTOCOL_VERSION),
  node: v.string(),
  groups: v.array(v.string()),
  commit: v.nullable(v.string()),
  branch: v.nullable(v.string()),
  busy: v.boolean(),
  version: v.string(),
  at: Timestamp,
  /** With a health check configured: what one probe made for this heartbeat said. */
  healthy: v.optional(v.boolean()),
  /** The worker is stopping (SIGTERM): count it offline at once. */
  stopping: v.optional(v.boolean()),
  /** Tracked files of the checkout differ from HEAD. */
  dirty: v.optional(v.boolean()),
  /**
   * The worker's ARBEIDER_HEARTBEAT_SECONDS. The webhook counts a node online
   * for three periods; learned from the gaps alone, the period of a node that
   * just started and ran a command (which sends a beat at once) would look
   * as short as that gap.
   */
  period: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(3600))),
});
export type Heartbeat = v.InferOutput<typeof Heartbeat>;

/** The exchanges and queues of one fleet. */
export function names(fleet: string) {
  const prefix = `arbeider.${fleet}`;
  return {
    commands: `${prefix}.commands`,
    events: `${prefix}.events`,
    history: `${prefix}.history`,
    heartbeats: `${prefix}.heartbeats`,
    /** Fanout exchange and queue of commands a quorum node queue dead-lettered. */
    dead: `${prefix}.dead`,
    /** The rollout driver's election queue (single active consumer). */
    driver: `${prefix}.driver`,
    nodeQueue: (node: string) => `${prefix}.node.${node}`,
  };
}

/** The commands-exchange routing key for a target (`group:web` -> `group.web`). */
export function routingKey(target: string): string {
  return target === "all" ? "all" : target.replace(":", ".");
}

/** The routing keys a node's queue is bound to. */
export function nodeBindings(node: string, groups: readonly string[]): string[] {
  return ["all", ...groups.map((g) => `group.${g}`), `node.${node}`];
}

/** Whether a target names this node: everyone, one of its groups, or its id. */
export function targetMatches(target: string, node: string, groups: readonly string[]): boolean {
  if (target === "all") return true;
  if (target.startsWith("group:")) return groups.includes(target.slice(6));
  return target === `node:${node}`;
}

export const eventKey = (deployment: string) => `deployment.${deployment}`;
export const heartbeatKey = (node: string) => `heartbeat.${node}`;

/** valibot issues as one line: `args.branch: is not a safe branch name`. */
export function describeIssues(issues: v.BaseIssue<unknown>[]): string {
  return issues
    .map((issue) => {
      const path = v.getDotPath(issue);
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join("; ");
}

/** Parses bytes as a JSON value of `schema`, or says which field is wrong. */
export function parseJson<S extends v.GenericSchema>(
  schema: S,
  bytes: Uint8Array | string,
): { ok: true; value: v.InferOutput<S> } | { ok: false; error: string } {
  let data: unknown;
  try {
    data = JSON.parse(typeof bytes === "string" ? bytes : new TextDecoder().decode(bytes));
  } catch (error) {
    return { ok: false, error: `malformed JSON: ${(error as Error).message}` };
  }
  const result = v.safeParse(schema, data);
  return result.success ? { ok: true, value: result.output } : { ok: false, error: describeIssues(result.issues) };
}
