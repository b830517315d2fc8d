/**
 * The one module that talks to RabbitMQ. `connectBroker` keeps one connection
 * alive with two confirm channels: the setup channel, on which the caller's
 * `setup` declares topology and starts consumers (re-run on every new
 * connection, so consumers come back exactly as they were first created), and
 * the publish channel behind `publish`. It tries the `AMQP_URL` list in the
 * order it was given (brokerSettings shuffles it per process), moves on to the
 * next URL when a connection is lost, and waits with jittered backoff only
 * after a whole round failed; reconnecting has a single trigger, the
 * connection's `close`. Nothing here waits on the broker without a bound:
 * AMQP heartbeats end a connection to a dead peer, and a publish not confirmed
 * within the confirm timeout, or nacked, fails with BrokerUnavailable and
 * gives its channel up (after a quorum leader is lost, a channel can stay
 * nacked for good; a fresh one works).
 */
import amqp, { type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Options } from "amqplib";
import { explainConnectError, withHeartbeat, type TlsSocketOptions } from "./broker-settings.ts";
import type { Logger } from "./log.ts";

export type { ConfirmChannel, ConsumeMessage };
export type Connection = ChannelModel;

/** Thrown by publish when there is no connection or the broker did not confirm. */
export class BrokerUnavailable extends Error {
  readonly status = 503;
}

export interface BrokerOptions {
  /** Tried in this order, starting after the one last lost. */
  urls: readonly string[];
  log: Logger;
  /** Shown as the connection name in the management UI and `rabbitmqctl list_connections`. */
  name: string;
  /** Declares topology and starts consumers on each new setup channel. */
  setup?: (channel: ConfirmChannel, connection: Connection) => Promise<void>;
  /** Runs when an established connection is lost. */
  onDisconnect?: () => void;
  backoffMs?: { base: number; max: number };
  /** ARBEIDER_CONFIRM_TIMEOUT: how long a publish may wait for its confirm. */
  confirmTimeoutMs?: number;
  /** Socket options for amqps:// URLs: a private CA, a client certificate. */
  tls?: TlsSocketOptions;
}

export interface Broker {
  readonly connected: boolean;
  /** Resolves true once connected, false if `timeoutMs` passes first. */
  waitConnected(timeoutMs: number): Promise<boolean>;
  /** Publishes a persistent JSON message and waits for the broker's confirm. */
  publish(exchange: string, routingKey: string, body: Uint8Array, options?: Options.Publish): Promise<void>;
  close(): Promise<void>;
}

/** The n-th reconnect delay: "full jitter" over an exponential ceiling, so a fleet does not reconnect in step. */
export function backoffDelay(attempt: number, base: number, max: number, random = Math.random): number {
  return Math.floor(random() * Math.min(max, base * 2 ** Math.min(attempt, 20)));
}

const DEFAULT_CONFIRM_TIMEOUT_MS = 10_000;
/** The confirm timeout of each setup channel, for `sendConfirmed`. */
const confirmTimeouts = new WeakMap<ConfirmChannel, number>();

export function connectBroker(options: BrokerOptions): Broker {
  const { urls, log, name, setup, onDisconnect } = options;
  const backoff = options.backoffMs ?? { base: 500, max: 15_000 };
  const confirmTimeoutMs = options.confirmTimeoutMs ?? DEFAULT_CONFIRM_TIMEOUT_MS;
  let connection: Connection | undefined;
  let channel: ConfirmChannel | undefined;
  let publisher: Publisher | undefined;
  let closing = false;
  let wake: () => void = () => {};
  const waiters = new Set<() => void>();

  async function open(url: string): Promise<Connection> {
    const socket = { ...options.tls, clientProperties: { connection_name: name }, timeout: 5000 };
    const conn = await amqp.connect(withHeartbeat(url), socket);
    // 'error' always precedes 'close'; reconnecting is left to 'close' alone.
    conn.on("error", (error) => log.warn("broker connection error", { error: String(error?.message ?? error) }));
    conn.on("blocked", (reason) => log.warn("broker blocked publishing", { reason }));
    try {
      const ch = await conn.createConfirmChannel();
      confirmTimeouts.set(ch, confirmTimeoutMs);
      ch.on("error", (error) => log.warn("broker channel error", { error: String(error?.message ?? error) }));
      // A setup channel the broker closed (a refused declaration, a stream with no
      // replica on this node) has lost its consumers: drop the whole connection.
      ch.on("close", () => void (closing || closeConnection(conn)));
      await setup?.(ch, conn);
      publisher = createPublisher(conn, log, confirmTimeoutMs);
      channel = ch;
      return conn;
    } catch (error) {
      await closeConnection(conn);
      throw error;
    }
  }

  /** Rounds over the URL list; after a lost connection the next round starts with the next URL. */
  async function run(): Promise<void> {
    let start = 0;
    let failedRounds = -1;
    while (!closing) {
      for (let i = 0; i < urls.length && !closing; i++) {
        const at = (start + i) % urls.length;
        const url = urls[at]!;
        try {
          connection = await open(url);
        } catch (error) {
          log.warn("cannot connect to broker", { broker: redact(url), error: explainConnectError(error) });
          continue;
        }
        if (closing) return void (await closeConnection(connection));
        failedRounds = -1;
        log.info("connected to broker", { broker: redact(url) });
        for (const resolve of waiters) resolve();
        await new Promise((resolve) => connection!.once("close", resolve));
        connection = channel = publisher = undefined;
        if (closing) return;
        log.warn("lost broker connection; reconnecting", { broker: redact(url) });
        onDisconnect?.();
        // Right after a node stops, it may still accept a connection and then fail it (541): try another first.
        start = at + 1;
        break;
      }
      await pause(backoffDelay(++failedRounds, backoff.base, backoff.max));
    }
  }

  function pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      // close() wakes us: the timer goes too, so it cannot hold a stopping process for up to backoff.max.
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
  void run();

  return {
    get connected() {
      return channel !== undefined;
    },
    waitConnected(timeoutMs) {
      if (channel) return Promise.resolve(true);
      return new Promise((resolve) => {
        const done = () => {
          waiters.delete(done);
          clearTimeout(timer);
          resolve(channel !== undefined);
        };
        const timer = setTimeout(done, timeoutMs);
        waiters.add(done);
      });
    },
    publish(exchange, routingKey, body, publishOptions = {}) {
      if (!channel || !publisher) return Promise.reject(new BrokerUnavailable(`Cannot publish to ${exchange}: not connected to the broker`));
      return publisher.publish(exchange, routingKey, Buffer.from(body.buffer, body.byteOffset, body.byteLength), publishOptions);
    },
    async close() {
      closing = true;
      wake();
      for (const resolve of waiters) resolve();
      // Closing the channels first waits for the broker to take every ack sent on
      // them; a connection close can overtake acks still queued on a channel.
      await publisher?.close();
      await channel?.close().catch(() => {});
      if (connection) await closeConnection(connection);
      connection = channel = publisher = undefined;
    },
  };
}

interface Publisher {
  publish(exchange: string, routingKey: string, content: Buffer, options: Options.Publish): Promise<void>;
  close(): Promise<void>;
}

/** The publish channel of `conn`: opened at once, replaced after a nack, a missing confirm or a broker close. */
function createPublisher(conn: Connection, log: Logger, timeoutMs: number): Publisher {
  let current: Promise<ConfirmChannel> | undefined;
  const open = (): Promise<ConfirmChannel> => {
    const opening = conn.createConfirmChannel().then((ch) => {
      ch.on("error", (error) => log.warn("broker publish channel error", { error: String(error?.message ?? error) }));
      // Closed by the broker (e.g. publishing to an exchange that is gone): the next publish opens another.
      ch.on("close", forget);
      return ch;
    });
    const forget = () => {
      if (current === opening) current = undefined;
    };
    opening.catch(forget);
    return (current = opening);
  };
  open();

  return {
    async publish(exchange, routingKey, content, publishOptions) {
      const opening = current ?? open();
      const deadline = Date.now() + timeoutMs;
      const what = `Cannot publish to ${exchange}`;
      try {
        const ch = await bounded(opening, timeoutMs, `${what}: no channel within ${timeoutMs} ms`);
        const stamp = { persistent: true, contentType: "application/json", timestamp: Math.floor(Date.now() / 1000), ...publishOptions };
        await confirmed((done) => ch.publish(exchange, routingKey, content, stamp, done), deadline - Date.now(), what);
      } catch (error) {
        if (current === opening) {
          current = undefined;
          log.warn("giving the publish channel up; the next publish opens a new one", { error: (error as Error).message });
          void opening.then((ch) => ch.close()).catch(() => {});
        }
        throw error instanceof BrokerUnavailable ? error : new BrokerUnavailable(`${what}: ${(error as Error).message}`, { cause: error });
      }
    },
    async close() {
      const ch = await current?.catch(() => undefined);
      await ch?.close().catch(() => {});
    },
  };
}

/**
 * Sends `content` straight to `queue` on a setup channel (through the default
 * exchange) and waits for its confirm, within the broker's confirm timeout.
 * A nack or a missing confirm closes the channel, which reconnects.
 */
export function sendConfirmed(channel: ConfirmChannel, queue: string, content: Buffer, options: Options.Publish): Promise<void> {
  const timeoutMs = confirmTimeouts.get(channel) ?? DEFAULT_CONFIRM_TIMEOUT_MS;
  return confirmed((done) => channel.sendToQueue(queue, content, options, done), timeoutMs, `Cannot send to ${queue}`).catch((error) => {
    void channel.close().catch(() => {});
    throw error;
  });
}

/** Runs `send` with a confirm callback; resolves on the broker's ack, rejects on a nack, a throw or after `timeoutMs`. */
function confirmed(send: (done: (error: unknown) => void) => void, timeoutMs: number, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new BrokerUnavailable(`${what}: no confirm within ${timeoutMs} ms`)), Math.max(0, timeoutMs));
    const settle = (error: unknown) => {
      clearTimeout(timer);
      if (error) reject(new BrokerUnavailable(`${what}: the broker refused it (${(error as Error)?.message ?? error})`, { cause: error }));
      else resolve();
    };
    try {
      send(settle);
    } catch (error) {
      settle(error ?? new Error("channel closed"));
    }
  });
}

/** `promise`, or a BrokerUnavailable with `message` if it takes longer than `ms`. */
export function bounded<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new BrokerUnavailable(message)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Closes `conn`; if the broker does not answer within 5 s, the socket is destroyed (which emits 'close'). */
async function closeConnection(conn: Connection): Promise<void> {
  await bounded(conn.close(), 5000, "no close-ok").catch(() => {
    (conn as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  });
}

/** A broker URL without its password, for logs: everything from the user's colon to the last "@" (a password may hold "/" or "@"). */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):.*@/, "//$1:***@");
}
