/**
 * Declares a fleet's exchanges and queues (docs/how-it-works.md, "The broker's
 * names"). Every declaration is idempotent. The webhook declares the
 * exchanges, the streams and the dead-letter queue; each worker declares only
 * its own queue, so a node's broker user needs no right to configure (or
 * delete) any exchange.
 */
import type { ConfirmChannel, Connection } from "./broker.ts";
import type { Logger } from "./log.ts";
import { names, nodeBindings } from "./protocol.ts";

const SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000;

/** Deliveries of one command to a quorum node queue before it is dead-lettered (a worker crashing on it each time). */
export const DELIVERY_LIMIT = 5;

/**
 * Replicas of each stream: RabbitMQ uses every node of a smaller cluster, so
 * this is min(3, cluster size) without knowing the cluster's size.
 */
export const STREAM_REPLICAS = 3;

/** The commands and events topic exchanges. */
export async function declareExchanges(channel: ConfirmChannel, fleet: string): Promise<void> {
  const n = names(fleet);
  await channel.assertExchange(n.commands, "topic", { durable: true });
  await channel.assertExchange(n.events, "topic", { durable: true });
}

/** The arguments of a node's queue: a quorum queue dead-letters a command delivered DELIVERY_LIMIT times. */
export function nodeQueueArguments(fleet: string, queueType: string): Record<string, unknown> {
  const quorum = { "x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT, "x-dead-letter-exchange": names(fleet).dead };
  return { "x-expires": SEVEN_DAYS_MS, ...(queueType === "quorum" ? quorum : {}) };
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
 * A durable queue bound to `exchange`, declared on a channel of its own: if it
 * already exists with other arguments (set by an earlier version, another
 * process or a policy), the broker refuses the declaration, and that refusal
 * closes only the side channel; the existing queue is kept.
 */
export async function declareOrKeep(
  connection: Connection,
  options: { name: string; exchange: string; binding: string; args: Record<string, unknown>; log: Logger },
): Promise<string> {
  const { name, exchange, binding } = options;
  const side = await connection.createChannel();
  side.on("error", () => {});
  try {
    await side.assertQueue(name, { durable: true, arguments: options.args });
    await side.bindQueue(name, exchange, binding);
    await side.close();
  } catch (error) {
    options.log.warn("queue exists with other arguments; keeping it", { queue: name, error: (error as Error).message });
    const check = await connection.createChannel();
    await check.checkQueue(name);
    await check.bindQueue(name, exchange, binding);
    await check.close();
  }
  return name;
}

/** A stream queue bound to the events exchange, with up to STREAM_REPLICAS replicas. */
function declareStream(connection: Connection, o: { fleet: string; name: string; binding: string; args: Record<string, unknown>; log: Logger }) {
  const args = { "x-queue-type": "stream", "x-initial-cluster-size": STREAM_REPLICAS, ...o.args };
  return declareOrKeep(connection, { name: o.name, exchange: names(o.fleet).events, binding: o.binding, args, log: o.log });
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
