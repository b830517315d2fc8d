/**
 * Decides what to do with one message from the node's queue, in the
 * contract's order: the signature over the raw body bytes (before anything
 * reads them), then version, schema and fleet, expiry, target, and whether the
 * id was already executed; and whether a newer update waits behind an update
 * (backlog read-ahead). Pure: the same messages, keys and state always give
 * the same verdict, so the rules are tested as a table.
 */
import { DEPLOYMENT_PATTERN, Command, parseJson, targetMatches, type Event } from "../shared/protocol.ts";
import { verifyBody, type VerifyKey } from "../shared/signing.ts";
import type { State } from "./state.ts";

export type Verdict =
  /** Verified and due: run it. */
  | { kind: "run"; command: Command }
  /** Redelivered after its outcome was recorded (a crash before the ack): report that outcome again. */
  | { kind: "replay"; command: Command; outcome: Event }
  /** Not run: reported as rejected or skipped under these labels. */
  | { kind: "refuse"; state: "rejected" | "skipped"; reason: string; deployment: string; id: string };

export interface Message {
  body: Uint8Array;
  signature: unknown;
  redelivered: boolean;
}

export interface Context {
  keys: readonly VerifyKey[];
  fleet: string;
  node: string;
  groups: readonly string[];
  state: Pick<Readonly<State>, "executed" | "lastUpdateIssuedAt">;
  now: number;
}

/** The body's deployment and id when they are well formed, else "unknown": labels for an unverified message. */
function labels(body: Uint8Array): { deployment: string; id: string } {
  let data: Record<string, unknown> = {};
  try {
    data = Object(JSON.parse(new TextDecoder().decode(body)));
  } catch {
    // not JSON: nothing to label it with
  }
  const label = (value: unknown) => (typeof value === "string" && DEPLOYMENT_PATTERN.test(value) ? value : "unknown");
  return { deployment: label(data.deployment), id: label(data.id) };
}

/** The verdict on `message` for the node and state in `context`. */
export function judgeMessage(message: Message, context: Context): Verdict {
  const refuse = (state: "rejected" | "skipped", reason: string, where: { deployment: string; id: string }): Verdict => ({
    kind: "refuse",
    state,
    reason,
    ...where,
  });
  if (!verifyBody(message.body, message.signature, context.keys)) return refuse("rejected", "bad signature", labels(message.body));
  const parsed = parseJson(Command, message.body);
  if (!parsed.ok) return refuse("rejected", `schema: ${parsed.error}`, labels(message.body));

  const command = parsed.value;
  const where = { deployment: command.deployment, id: command.id };
  if (command.fleet !== context.fleet) return refuse("rejected", `fleet: signed for fleet ${command.fleet}, this node is in ${context.fleet}`, where);
  const executed = context.state.executed.get(command.id);
  if (executed && message.redelivered) return { kind: "replay", command, outcome: executed.outcome };
  if (Date.parse(command.expiresAt) <= context.now) return refuse("rejected", `expired: at ${command.expiresAt}`, where);
  if (!targetMatches(command.target, context.node, context.groups)) {
    return refuse("rejected", `target: ${command.target} does not name node ${context.node}`, where);
  }
  if (executed) return refuse("skipped", "duplicate", where);
  const lastUpdate = context.state.lastUpdateIssuedAt;
  if (command.command === "update" && lastUpdate && Date.parse(command.issuedAt) < Date.parse(lastUpdate)) {
    return refuse("skipped", `superseded: issued ${command.issuedAt}, before the update applied here (${lastUpdate})`, where);
  }
  return { kind: "run", command };
}

/**
 * Backlog read-ahead: the verified, due update for this node, issued no earlier
 * than `current`, among the messages delivered behind it (`waiting`, in queue
 * order), if there is one; `current` is then superseded and need not run. A
 * rollback in between ends the search: what it returns to depends on what ran
 * before it.
 */
export function newerUpdate(current: Command, waiting: readonly Message[], context: Context): Command | undefined {
  const issued = Date.parse(current.issuedAt);
  for (const message of waiting) {
    const verdict = judgeMessage(message, context);
    if (verdict.kind !== "run" || verdict.command.id === current.id) continue;
    if (verdict.command.command === "rollback") return undefined;
    if (verdict.command.command === "update" && Date.parse(verdict.command.issuedAt) >= issued) return verdict.command;
  }
  return undefined;
}
