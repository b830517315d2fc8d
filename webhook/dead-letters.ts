/**
 * The webhook's side of dead-lettering (docs/operations.md, "Dead letters").
 * A quorum node queue gives a command up after DELIVERY_LIMIT deliveries
 * without an ack (its worker crashed on it again and again) and
 * dead-letters it to the fanout exchange `arbeider.<fleet>.dead`. The webhook
 * declares that exchange and a durable queue of the same name, consumes it,
 * and reports each dead command as `failed` for its node, so the deployment
 * ends instead of waiting on a node that will never run it, and the node's
 * queue is free for the next command. `setupDeadLetters` runs on every new
 * channel, like the history reader.
 */
import type { ConfirmChannel, Connection, ConsumeMessage } from "../shared/broker.ts";
import type { Logger } from "../shared/log.ts";
import { Command, PROTOCOL_VERSION, SIGNATURE_HEADER, eventKey, names, parseJson, type Event } from "../shared/protocol.ts";
import { verifyBody, type VerifyKey } from "../shared/signing.ts";
import { DELIVERY_LIMIT, declareOrKeep } from "../shared/topology.ts";
import type { Publish } from "./records.ts";

export interface DeadLetterOptions {
  fleet: string;
  /** ARBEIDER_QUEUE_TYPE: with `quorum` the dead-letter queue is replicated too. */
  queueType: string;
  log: Logger;
  /** The broker's confirmed publish, for the `failed` events. */
  publish: Publish;
  /** Only commands signed by one of these keys are reported; anyone who may write to the exchange could forge the rest. */
  verifyKeys: readonly VerifyKey[];
  /** Wait before a dead letter whose event could not be published is tried again. */
  retryMs?: number;
}

/** Declares the dead-letter exchange and queue and consumes the queue. */
export async function setupDeadLetters(channel: ConfirmChannel, connection: Connection, options: DeadLetterOptions): Promise<void> {
  const { fleet, log } = options;
  const dead = names(fleet).dead;
  await channel.assertExchange(dead, "fanout", { durable: true });
  const args = options.queueType === "quorum" ? { "x-queue-type": "quorum" } : {};
  await declareOrKeep(connection, { name: dead, exchange: dead, binding: "", args, log });
  await channel.consume(dead, (message) => {
    if (!message) {
      log.warn("dead-letter consumer cancelled by the broker; reconnecting", { queue: dead });
      return void connection.close().catch(() => {});
    }
    void handle(channel, message, options);
  });
}

async function handle(channel: ConfirmChannel, message: ConsumeMessage, options: DeadLetterOptions): Promise<void> {
  const { log } = options;
  const verdict = deadLetterEvent(message, options.fleet, options.verifyKeys, new Date());
  if (!verdict.ok) {
    log.warn("dropping a dead letter", { reason: verdict.reason });
    return channel.ack(message);
  }
  const { event } = verdict;
  try {
    await options.publish(names(options.fleet).events, eventKey(event.deployment), new TextEncoder().encode(JSON.stringify(event)));
    log.warn("command dead-lettered; reported failed", { deployment: event.deployment, command: event.command, node: event.node });
    channel.ack(message);
  } catch (error) {
    // Back to the queue after a pause: the broker is unavailable now, the event must not be lost.
    log.warn("cannot report a dead-lettered command yet", { deployment: event.deployment, node: event.node, error: (error as Error).message });
    setTimeout(() => {
      try {
        channel.nack(message, false, true);
      } catch {
        // the channel is gone: the broker redelivers the message to the next consumer
      }
    }, options.retryMs ?? 1000);
  }
}

/**
 * The `failed` event for one dead letter, or why there is none. The node is
 * the last part of the queue the command died in (`x-first-death-queue`).
 */
export function deadLetterEvent(
  message: Pick<ConsumeMessage, "content" | "properties">,
  fleet: string,
  verifyKeys: readonly VerifyKey[],
  now: Date,
): { ok: true; event: Event } | { ok: false; reason: string } {
  const headers = message.properties.headers ?? {};
  const queue = headers["x-first-death-queue"];
  const prefix = `${names(fleet).nodeQueue("")}`;
  if (typeof queue !== "string" || !queue.startsWith(prefix)) return { ok: false, reason: `not from a node queue of fleet ${fleet}: ${String(queue)}` };
  const node = queue.slice(prefix.length);
  if (!verifyBody(message.content, headers[SIGNATURE_HEADER], verifyKeys)) return { ok: false, reason: `a command for ${node} not signed by the webhook's key` };
  const command = parseJson(Command, message.content);
  if (!command.ok) return { ok: false, reason: `a command for ${node} that does not fit the schema: ${command.error}` };
  const { target, deployment, id } = command.value;
  if (target.startsWith("node:") && target !== `node:${node}`) return { ok: false, reason: `a command for ${target} dead in the queue of ${node}` };
  const why = headers["x-first-death-reason"];
  const reason =
    why === "delivery_limit"
      ? `delivery limit: delivered ${DELIVERY_LIMIT + 1} times and never acknowledged (the worker stopped or crashed while running it each time)`
      : `dead-lettered by the broker (${String(why)})`;
  return { ok: true, event: { v: PROTOCOL_VERSION, deployment, command: id, node, state: "failed", at: now.toISOString(), reason } };
}
