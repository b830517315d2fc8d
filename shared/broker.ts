/**
 * The one module that talks to RabbitMQ. `connectBroker` keeps one connection
 * with one confirm channel alive: it tries the `AMQP_URL` list in order,
 * reconnects with jittered backoff on a single trigger (the connection's
 * `close`), and re-runs the caller's `setup` on every new channel, so
 * consumers are re-created exactly as they were first created. `publish`
 * resolves only when the broker has confirmed the message.
 */
import amqp, { type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Options } from "amqplib";
import type { Logger } from "./log.ts";

export type { ConfirmChannel, ConsumeMessage };
export type Connection = ChannelModel;

/** Thrown by publish when there is no connection or the broker did not confirm. */
export class BrokerUnavailable extends Error {
  readonly status = 503;
}

export interface BrokerOptions {
  urls: readonly string[];
  log: Logger;
  /** Shown as the connection name in the management UI and `rabbitmqctl list_connections`. */
  name: string;
  /** Declares topology and starts consumers on each new channel. */
  setup?: (channel: ConfirmChannel, connection: Connection) => Promise<void>;
  /** Runs when an established connection is lost. */
  onDisconnect?: () => void;
  backoffMs?: { base: number; max: number };
  confirmTimeoutMs?: number;
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

export function connectBroker(options: BrokerOptions): Broker {
  const { urls, log, name, setup, onDisconnect } = options;
  const backoff = options.backoffMs ?? { base: 500, max: 15_000 };
  const confirmTimeoutMs = options.confirmTimeoutMs ?? 10_000;
  let connection: Connection | undefined;
  let channel: ConfirmChannel | undefined;
  let closing = false;
  let wake: () => void = () => {};
  const waiters = new Set<() => void>();

  async function open(url: string): Promise<Connection> {
    const conn = await amqp.connect(url, { clientProperties: { connection_name: name }, timeout: 5000 });
    // 'error' always precedes 'close'; reconnecting is left to 'close' alone.
    conn.on("error", (error) => log.warn("broker connection error", { error: String(error?.message ?? error) }));
    conn.on("blocked", (reason) => log.warn("broker blocked publishing", { reason }));
    try {
      const ch = await conn.createConfirmChannel();
      ch.on("error", (error) => log.warn("broker channel error", { error: String(error?.message ?? error) }));
      // A channel the broker closed (e.g. a precondition failure) is useless: drop the whole connection.
      ch.on("close", () => void (closing || conn.close().catch(() => {})));
      await setup?.(ch, conn);
      channel = ch;
      return conn;
    } catch (error) {
      await conn.close().catch(() => {});
      throw error;
    }
  }

  async function run(): Promise<void> {
    let attempt = 0;
    while (!closing) {
      for (const url of urls) {
        if (closing) return;
        try {
          connection = await open(url);
        } catch (error) {
          log.warn("cannot connect to broker", { broker: redact(url), error: (error as Error).message });
          continue;
        }
        attempt = 0;
        log.info("connected to broker", { broker: redact(url) });
        for (const resolve of waiters) resolve();
        await new Promise((resolve) => connection!.once("close", resolve));
        connection = channel = undefined;
        if (closing) return;
        log.warn("lost broker connection; reconnecting", { broker: redact(url) });
        onDisconnect?.();
        break;
      }
      const delay = backoffDelay(attempt++, backoff.base, backoff.max);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        // close() wakes us: the timer goes too, so it cannot hold a stopping process for up to backoff.max.
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
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
      const ch = channel;
      if (!ch) return Promise.reject(new BrokerUnavailable(`Cannot publish to ${exchange}: not connected to the broker`));
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new BrokerUnavailable(`Cannot publish to ${exchange}: no confirm within ${confirmTimeoutMs} ms`)),
          confirmTimeoutMs,
        );
        const settle = (error: unknown) => {
          clearTimeout(timer);
          if (error) reject(new BrokerUnavailable(`Cannot publish to ${exchange}: the broker refused it`, { cause: error }));
          else resolve();
        };
        try {
          ch.publish(
            exchange,
            routingKey,
            Buffer.from(body.buffer, body.byteOffset, body.byteLength),
            { persistent: true, contentType: "application/json", timestamp: Math.floor(Date.now() / 1000), ...publishOptions },
            settle,
          );
        } catch (error) {
          settle(error ?? new Error("channel closed"));
        }
      });
    },
    async close() {
      closing = true;
      wake();
      for (const resolve of waiters) resolve();
      // Closing the channel first waits for the broker to take every ack sent on
      // it; a connection close can overtake acks still queued on the channel.
      await channel?.close().catch(() => {});
      await connection?.close().catch(() => {});
      connection = channel = undefined;
    },
  };
}

/** A broker URL without its password, for logs: everything from the user's colon to the last "@" (a password may hold "/" or "@"). */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):.*@/, "//$1:***@");
}
