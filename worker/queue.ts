/**
 * The node's queue, declared from the worker's side. A worker declares no
 * exchange (the webhook does): only its own queue and bindings, on a channel of
 * its own, since a refused declaration closes the channel it was made on. What
 * the broker refuses is said in words an operator can act on: a missing
 * commands exchange is retried (with the broker module's backoff) until the
 * webhook has declared it; a queue that exists with another type or other
 * arguments is a configuration error, which ends the worker with status 2.
 */
import type { Connection } from "../shared/broker.ts";
import { ConfigError } from "../shared/config.ts";
import { names } from "../shared/protocol.ts";
import { declareNodeQueue } from "../shared/topology.ts";
import type { Settings } from "./settings.ts";
import type { Store } from "./state.ts";

export interface QueueOf {
  fleet: string;
  queue: string;
  queueType: string;
}

/** What the broker's refusal of the node queue's declaration means, in words that say what to do. */
export function explainRefusal(error: unknown, where: QueueOf): Error {
  const { code, message } = error as { code?: unknown; message?: unknown };
  const text = String(message ?? error);
  const { fleet, queue, queueType } = where;
  if (code === 404 && text.includes("no exchange")) {
    return new Error(`the exchange ${names(fleet).commands} does not exist: is the webhook running, with ARBEIDER_FLEET=${fleet}? (it declares the exchanges; retrying)`, { cause: error });
  }
  if (code !== 406) return error instanceof Error ? error : new Error(text);
  const remedy = `delete the queue while the worker is stopped (rabbitmqctl delete_queue ${queue}; the commands queued in it go too)`;
  if (text.includes("'x-queue-type'")) {
    const current = /current is (?:the value )?'(\w+)'/.exec(text)?.[1] ?? "classic";
    return new ConfigError("ARBEIDER_QUEUE_TYPE", `queue ${queue} already exists as a ${current} queue, not ${queueType}: set ARBEIDER_QUEUE_TYPE=${current}, or ${remedy}`);
  }
  const detail = /inequivalent arg '[^']+'/.exec(text)?.[0] ?? text;
  return new ConfigError("ARBEIDER_QUEUE_TYPE", `queue ${queue} exists with other arguments than this worker declares (${detail}); ${remedy}`);
}

/** Declares and binds the node queue (unbinding groups left) and records the groups; returns its name. */
export async function declareOwnQueue(connection: Connection, settings: Settings, store: Store): Promise<string> {
  const { ARBEIDER_FLEET: fleet, ARBEIDER_NODE_ID: node, ARBEIDER_GROUPS: groups, ARBEIDER_QUEUE_TYPE: queueType } = settings.env;
  const side = await connection.createConfirmChannel();
  side.on("error", () => {});
  try {
    await declareNodeQueue(side, { fleet, node, groups, previousGroups: store.state.groups, queueType });
    await side.close();
  } catch (error) {
    throw explainRefusal(error, { fleet, queue: names(fleet).nodeQueue(node), queueType });
  }
  if (store.state.groups.join() !== groups.join()) store.bound(groups);
  return names(fleet).nodeQueue(node);
}
