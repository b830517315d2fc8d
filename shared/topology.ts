/**
 * Declares a fleet's exchanges and queues (README, "Architecture"). Every
 * declaration is idempotent and made whenever a process connects: the webhook
 * declares the exchanges and streams, each worker only its own node queue.
 */
import type { ConfirmChannel, Connection } from "./broker.ts";
import type { Logger } from "./log.ts";
import { names, nodeBindings } from "./protocol.ts";

const SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000;
/** Deliveries of one command to a quorum node queue before it is dead-lettered (a worker crashing on it). */
export const DELIVERY_LIMIT = 5;

/** The commands and events topic exchanges. */
export async function declareExchanges(channel: ConfirmChannel, fleet: string): Promise<void> {
  const n = names(fleet);
  await channel.assertExchange(n.commands, "topic", { durable: true });
  await channel.assertExchange(n.events, "topic", { durable: true });
}

/** The arguments a node queue of `queueType` is declared with. */
export function nodeQueueArguments(fleet: string, queueType: string): Record<string, unknown> {
  // The type is always named: a vhost whose default queue type is quorum would otherwise make
  // "classic" queues quorum ones. A quorum queue dead-letters a command redelivered past its limit.
  const type = queueType === "quorum" ? { "x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT, "x-dead-letter-exchange": names(fleet).dead } : { "x-queue-type": "classic" };
  return { "x-expires": SEVEN_DAYS_MS, ...type };
}

/**
 * A node's durable queue, bound to `all`, its groups and its id. Bindings for
 * groups the node has left (`previousGroups`) are removed, so it stops
 * receiving their commands.
 */
export async function declareNodeQueue(
  channel: ConfirmChannel,
  options: { fleet: string; node: string; groups: readonly string[]; previousGroups?: readonly string[]; queueType: string },
): Promise<string> {
  const n = names(options.fleet);
  const queue = n.nodeQueue(options.node);
  await channel.assertQueue(queue, { durable: true, arguments: nodeQueueArguments(options.fleet, options.queueType) });
  for (const key of nodeBindings(options.node, options.groups)) await channel.bindQueue(queue, n.commands, key);
  for (const group of options.previousGroups ?? []) {
    if (!options.groups.includes(group)) await channel.unbindQueue(queue, n.commands, `group.${group}`);
  }
  return queue;
}

/**
 * A stream queue bound to the events exchange. It is declared on a channel of
 * its own: if it already exists with other arguments (set by another process
 * or by a policy), the broker refuses the declaration, and that refusal closes
 * only the side channel; the existing stream is kept.
 */
async function declareStream(
  connection: Connection,
  options: { fleet: string; name: string; binding: string; args: Record<string, unknown>; log: Logger },
): Promise<string> {
  const { name, binding } = options;
  const events = names(options.fleet).events;
  const side = await connection.createChannel();
  side.on("error", () => {});
  try {
    await side.assertQueue(name, { durable: true, arguments: { "x-queue-type": "stream", ...options.args } });
    await side.bindQueue(name, events, binding);
    await side.close();
  } catch (error) {
    options.log.warn("stream exists with other arguments; keeping it", { queue: name, error: (error as Error).message });
    const check = await connection.createChannel();
    await check.checkQueue(name);
    await check.bindQueue(name, events, binding);
    await check.close();
  }
  return name;
}

/** The history stream: every deployment event, kept for `maxAge` (e.g. `30D`). */
export function declareHistory(connection: Connection, fleet: string, maxAge: string, log: Logger): Promise<string> {
  return declareStream(connection, { fleet, name: names(fleet).history, binding: "deployment.#", args: { "x-max-age": maxAge }, log });
}

/**
 * The heartbeats stream: every node's recent heartbeats, so a webhook that
 * starts knows which nodes are online at once instead of after a heartbeat
 * period. Small segments let the one-hour retention actually drop old ones.
 */
export function declareHeartbeats(connection: Connection, fleet: string, log: Logger): Promise<string> {
  return declareStream(connection, {
    fleet,
    name: names(fleet).heartbeats,
    binding: "heartbeat.#",
    args: { "x-max-age": "1h", "x-stream-max-segment-size-bytes": 4_000_000 },
    log,
  });
}
