/**
 * The benchmark's ears on the broker. A `Tally` counts distinct arrivals per
 * key (nodes per deployment, consumers per floor message) and resolves a
 * waiter at the moment the n-th arrives, timed when the message reached this
 * process, not when someone polled. `tapEvents` feeds one from a fleet's
 * events exchange (`succeeded` per node, failing fast on `failed` or
 * `rejected`); `replyQueue` feeds one from the replies of the floor consumers.
 */
import amqp, { type Channel, type ChannelModel } from "amqplib";
import { randomUUID } from "node:crypto";
import { names, type Event } from "../shared/protocol.ts";

interface Waiter {
  n: number;
  done: (at: number) => void;
  fail: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export interface Tally {
  /** Records that `who` arrived for `key` at `at` (performance.now()). */
  arrive(key: string, who: string, at?: number): void;
  /** Makes the waiter for `key` fail. */
  fail(key: string, reason: string): void;
  /** Resolves with the time at which `n` distinct arrivals for `key` were seen (possibly already). */
  wait(key: string, n: number, timeoutMs: number): Promise<number>;
  /** Forgets `key`. */
  drop(key: string): void;
}

export function createTally(): Tally {
  const seen = new Map<string, { who: Set<string>; at: number; failed?: string }>();
  const waiters = new Map<string, Waiter>();
  const entry = (key: string) => seen.get(key) ?? seen.set(key, { who: new Set(), at: 0 }).get(key)!;
  const settle = (key: string) => {
    const waiter = waiters.get(key);
    const e = seen.get(key);
    if (!waiter || !e) return;
    if (e.failed) waiter.fail(new Error(e.failed));
    else if (e.who.size >= waiter.n) waiter.done(e.at);
    else return;
    clearTimeout(waiter.timer);
    waiters.delete(key);
  };
  return {
    arrive(key, who, at = performance.now()) {
      const e = entry(key);
      if (e.who.has(who)) return;
      e.who.add(who);
      e.at = at;
      settle(key);
    },
    fail(key, reason) {
      entry(key).failed ??= reason;
      settle(key);
    },
    wait(key, n, timeoutMs) {
      return new Promise((done, fail) => {
        const timer = setTimeout(() => {
          waiters.delete(key);
          fail(new Error(`timed out after ${timeoutMs} ms: ${seen.get(key)?.who.size ?? 0} of ${n} arrived for ${key}`));
        }, timeoutMs);
        waiters.set(key, { n, done, fail, timer });
        settle(key);
      });
    },
    drop(key) {
      seen.delete(key);
    },
  };
}

export interface Tap {
  readonly tally: Tally;
  /** Every event seen, by state, for the report's sanity checks. */
  readonly counts: Map<string, number>;
  close(): Promise<void>;
}

/** Listens to every deployment event of `fleet`; the tally counts `succeeded` per deployment and node. */
export async function tapEvents(amqpUrl: string, fleet: string): Promise<Tap> {
  const n = names(fleet);
  const connection = await amqp.connect(amqpUrl);
  const channel = await connection.createChannel();
  await channel.assertExchange(n.events, "topic", { durable: true });
  const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
  await channel.bindQueue(queue, n.events, "deployment.#");
  const tally = createTally();
  const counts = new Map<string, number>();
  await channel.consume(
    queue,
    (msg) => {
      if (!msg) return;
      const at = performance.now();
      const event = JSON.parse(msg.content.toString()) as Event;
      counts.set(event.state, (counts.get(event.state) ?? 0) + 1);
      if (!event.node) return;
      if (event.state === "succeeded") tally.arrive(event.deployment, event.node, at);
      else if (event.state === "failed" || event.state === "rejected") {
        tally.fail(event.deployment, `${event.node} reported ${event.state}: ${event.reason ?? ""}`);
      }
    },
    { noAck: true },
  );
  return { tally, counts, close: () => connection.close().catch(() => {}) };
}

export interface ReplyQueue {
  readonly tally: Tally;
  readonly connection: ChannelModel;
  readonly channel: Channel;
  /** The queue the floor consumers reply to. */
  readonly queue: string;
  /** Publishes one persistent message to the fanout `exchange`; resolves with the ms until `n` consumers replied. */
  roundTrip(exchange: string, n: number, timeoutMs: number): Promise<number>;
  close(): Promise<void>;
}

/** A private queue for floor replies; the tally counts replies per correlation id and replying queue. */
export async function replyQueue(amqpUrl: string): Promise<ReplyQueue> {
  const connection = await amqp.connect(amqpUrl);
  const channel = await connection.createChannel();
  const { queue } = await channel.assertQueue(`bench.replies.${randomUUID()}`, { exclusive: true, autoDelete: true });
  const tally = createTally();
  await channel.consume(
    queue,
    (msg) => {
      if (msg) tally.arrive(String(msg.properties.correlationId), String(msg.properties.headers?.queue), performance.now());
    },
    { noAck: true },
  );
  return {
    tally,
    connection,
    channel,
    queue,
    async roundTrip(exchange, n, timeoutMs) {
      const id = randomUUID();
      const t0 = performance.now();
      channel.publish(exchange, "", Buffer.from("{}"), { persistent: true, replyTo: queue, correlationId: id });
      const at = await tally.wait(id, n, timeoutMs);
      tally.drop(id);
      return at - t0;
    },
    close: () => connection.close().catch(() => {}),
  };
}
