/**
 * The node's queue, declared from the worker's side. A worker declares no
 * exchange (the webhook does): only its own queue and bindings, on a channel of
 * its own, since a refused declaration closes the channel it was made on. What
 * the broker refuses is said in words an operator can act on: a queue that
 * exists with another type or other arguments is a configuration error, which
 * ends the worker with status 2; anything else (a commands exchange the
 * webhook has not declared yet) is retried with the broker module's backoff.
 */
import type { Connection } from "../shared/broker.ts";
import { ConfigError } from "../shared/config.ts";
import { names } from "../shared/protocol.ts";
import { declareNodeQueue, nodeQueueArguments } from "../shared/topology.ts";
import type { Settings } from "./settings.ts";
import type { Store } from "./state.ts";

export interface QueueOf {
  fleet: string;
  queue: string;
  queueType: string;
  /** The other type, when the queue turned out to be declared with that type's arguments. */
  existing?: string;
}

/** What the broker's refusal of the node queue's declaration means, in words that say what to do. */
export function explainRefusal(error: unknown, where: QueueOf): Error {
  const { code, message } = error as { code?: unknown; message?: unknown };
  const text = String(message ?? error);
  const { queue, queueType } = where;
  // Anything else (a missing commands exchange: the broker module explains it) is retried as it is.
  if (code !== 406) return error instanceof Error ? error : new Error(text);
  const remedy = `delete the queue while the worker is stopped (rabbitmqctl delete_queue ${queue}; the commands queued in it go too)`;
  const named = text.includes("'x-queue-type'") ? (/current is (?:the value )?'(\w+)'/.exec(text)?.[1] ?? "classic") : undefined;
  const current = where.existing ?? named;
  if (current) {
    return new ConfigError("ARBEIDER_QUEUE_TYPE", `queue ${queue} already exists as a ${current} queue, not ${queueType}: set ARBEIDER_QUEUE_TYPE=${current}, or ${remedy}`);
  }
  const detail = /inequivalent arg '[^']+'/.exec(text)?.[0] ?? text;
  return new ConfigError("ARBEIDER_QUEUE_TYPE", `queue ${queue} exists with other arguments than this worker declares (${detail}); ${remedy}`);
}

/** Whether `queue` accepts a declaration with `type`'s arguments, i.e. exists as a queue of that type. Probed on a channel of its own. */
async function fits(connection: Connection, queue: string, fleet: string, type: string): Promise<boolean> {
  const probe = await connection.createChannel();
  probe.on("error", () => {});
  try {
    await probe.assertQueue(queue, { durable: true, arguments: nodeQueueArguments(fleet, type) });
    await probe.close();
    return true;
  } catch {
    return false;
  }
}

/** Declares and binds the node queue (unbinding groups left) and records the groups; returns its name. */
export async function declareOwnQueue(connection: Connection, settings: Settings, store: Store): Promise<string> {
  const { ARBEIDER_FLEET: fleet, ARBEIDER_NODE_ID: node, ARBEIDER_GROUPS: groups, ARBEIDER_QUEUE_TYPE: queueType } = settings.env;
  const queue = names(fleet).nodeQueue(node);
  const side = await connection.createConfirmChannel();
  side.on("error", () => {});
  try {
    await declareNodeQueue(side, { fleet, node, groups, previousGroups: store.state.groups, queueType });
    await side.close();
  } catch (error) {
    // The broker names the first argument that differs, which is not always the type: ask with the other type's.
    const other = queueType === "quorum" ? "classic" : "quorum";
    const existing = (error as { code?: unknown }).code === 406 && (await fits(connection, queue, fleet, other)) ? other : undefined;
    throw explainRefusal(error, { fleet, queue, queueType, existing });
  }
  if (store.state.groups.join() !== groups.join()) store.bound(groups);
  return queue;
}
