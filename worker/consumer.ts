/**
 * The node's queue consumer: the canonical amqplib worker (durable queue,
 * manual ack after the work is done) with arbeider's rules in handler.ts.
 * Messages are handled strictly one at a time, in order; the prefetch is
 * larger than one only so that the worker can see what waits behind the
 * message in hand (backlog read-ahead: a node back from downtime runs only the
 * newest of its queued updates). `setup` is what the broker module runs on
 * every new channel, so a reconnect re-creates the consumer exactly as it was.
 */
import type { Broker, ConfirmChannel, Connection, ConsumeMessage } from "../shared/broker.ts";
import { ConfigError } from "../shared/config.ts";
import type { Logger } from "../shared/log.ts";
import { createHandler, type Behind, type Delivery } from "./handler.ts";
import { declareOwnQueue } from "./queue.ts";
import type { Settings } from "./settings.ts";
import type { Position, Store } from "./state.ts";

/**
 * Messages the broker hands over before the one in hand is acked. Deep enough
 * to see a backlog of updates behind pings; kept small because on a quorum
 * queue every message held when the worker dies counts a delivery towards the
 * limit, not only the one it died on.
 */
export const READ_AHEAD = 10;

export interface Consumer {
  /** Declares the node queue and starts consuming on `channel`. */
  setup(channel: ConfirmChannel, connection: Connection): Promise<void>;
  /** Whether a command is running now. */
  readonly busy: boolean;
  /** Stops taking messages and resolves when the message in hand is done. */
  stop(): Promise<void>;
}

export interface ConsumerOptions {
  settings: Settings;
  log: Logger;
  store: Store;
  broker: Broker;
  /** Runs after every executed command but a ping (the heartbeat), with where the checkout is. */
  afterCommand: (at: Position | undefined) => void;
  /** A failure that leaves the worker unable to go on: the state file cannot be written, the queue cannot be ours. */
  onFatal: (error: unknown) => void;
}

export function createConsumer(options: ConsumerOptions): Consumer {
  const { settings, log, store } = options;
  const handler = createHandler(options);
  // One message after another, across channels too: after a reconnect the
  // redelivered copy of a running command waits for it.
  let chain = Promise.resolve();
  let stopping = false;
  let current: { channel: ConfirmChannel; tag: string } | undefined;

  async function setup(channel: ConfirmChannel, connection: Connection): Promise<void> {
    const queue = await declareOwnQueue(connection, settings, store).catch((error) => {
      if (error instanceof ConfigError) options.onFatal(error); // retrying would not help
      throw error;
    });
    await channel.prefetch(READ_AHEAD);
    let open = true;
    channel.on("close", () => (open = false));
    const waiting: Delivery[] = [];
    // A passive declare is answered after every delivery the broker sent before it.
    const behind: Behind = { waiting: () => waiting, barrier: () => channel.checkQueue(queue).then(() => true, () => false) };
    const delivery = (message: ConsumeMessage): Delivery => ({
      message,
      open: () => open,
      ack() {
        // A delivery tag belongs to its channel; once that is gone the broker redelivers the message instead.
        if (open) channel.ack(message);
        else log.warn("channel closed before the ack; the message comes again", { messageId: message.properties.messageId });
      },
    });
    const { consumerTag } = await channel.consume(queue, (message) => {
      if (message === null) {
        // The broker cancelled the consumer (queue deleted): a new channel declares it again.
        log.warn("broker cancelled the consumer; reconnecting", { queue });
        return void channel.close().catch(() => {});
      }
      const next = delivery(message);
      waiting.push(next);
      chain = chain
        .then(() => {
          waiting.shift();
          // Stopping, or its channel gone: a message not yet started is left, and the broker gives it again.
          if (!stopping && open) return handler.handle(next, behind);
        })
        .catch(options.onFatal);
    });
    current = { channel, tag: consumerTag };
    log.info("consuming", { queue, groups: settings.env.ARBEIDER_GROUPS });
  }

  return {
    setup,
    get busy() {
      return handler.busy;
    },
    async stop() {
      stopping = true;
      if (current) await current.channel.cancel(current.tag).catch(() => {});
      await chain;
    },
  };
}
