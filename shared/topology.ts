/**
 * Declares a fleet's exchanges and queues (contract section 2). Every
 * declaration is idempotent, so the webhook and each worker declare what they
 * use whenever they connect, whoever starts first.
 */
import type { ConfirmChannel, Connection } from "./broker.ts";
import type { Logger } from "./log.ts";
import { names, nodeBindings } from "./protocol.ts";

const SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000;

/** The commands and events topic exchanges. */
export async function declareExchanges(channel: ConfirmChannel, fleet: string): Promise<void> {
  const n = names(fleet);
  await channel.assertExchange(n.commands, "topic", { durable: true });
  await channel.assertExchange(n.events, "topic", { durable: true });
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
  await channel.assertQueue(queue, {
    durable: true,
    arguments: { "x-expires": SEVEN_DAYS_MS, ...(options.queueType === "quorum" ? { "x-queue-type": "quorum" } : {}) },
  });
  for (const key of nodeBindings(options.node, options.groups)) await channel.bindQueue(queue, n.commands, key);
  for (const group of options.previousGroups ?? []) {
    if (!options.groups.includes(group)) await channel.unbindQueue(queue, n.commands, `group.${group}`);
  }
  return queue;
}

/**
 * The history stream, bound to every deployment event. It is declared on a
 * channel of its own: if it already exists with another retention (set by
 * another process or by a policy), the broker refuses the declaration, and
 * that refusal closes only the side channel; the existing stream is kept.
 */
export async function declareHistory(connection: Connection, fleet: string, maxAge: string, log: Logger): Promise<string> {
  const n = names(fleet);
  const side = await connection.createChannel();
  side.on("error", () => {});
  try {
    await side.assertQueue(n.history, { durable: true, arguments: { "x-queue-type": "stream", "x-max-age": maxAge } });
    await side.bindQueue(n.history, n.events, "deployment.#");
    await side.close();
  } catch (error) {
    log.warn("history stream exists with other arguments; keeping it", { queue: n.history, error: (error as Error).message });
    const check = await connection.createChannel();
    await check.checkQueue(n.history);
    await check.bindQueue(n.history, n.events, "deployment.#");
    await check.close();
  }
  return n.history;
}
