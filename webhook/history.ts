/**
 * Feeds the view from the broker. `followHistory` returns the setup that
 * shared/broker.ts runs on every new channel: declare the topology, listen to
 * heartbeats on an exclusive queue, and read the history stream from the
 * beginning (or, after a reconnect, from just after the last offset seen),
 * following it live. The setup returns only once the stream has been read up
 * to a marker it appended itself, so while `broker.connected` is false the
 * view may be stale and nothing is published: no duplicate slips through.
 */
import { randomUUID } from "node:crypto";
import type { ConfirmChannel, Connection, ConsumeMessage } from "../shared/broker.ts";
import type { Logger } from "../shared/log.ts";
import { Event, Heartbeat, names, parseJson } from "../shared/protocol.ts";
import { declareExchanges, declareHistory } from "../shared/topology.ts";
import type { View } from "./view.ts";

/** Header of the marker messages a webhook appends to the stream to know where its end is. */
export const SYNC_HEADER = "x-arbeider-sync";

export interface HistoryOptions {
  fleet: string;
  maxAge: string;
  view: View;
  log: Logger;
  /** Give up (and reconnect) when the stream is silent this long before the marker arrives. */
  idleTimeoutMs?: number;
}

/** The broker setup that keeps `view` up to date. */
export function followHistory(options: HistoryOptions) {
  const { fleet, view, log } = options;
  const n = names(fleet);
  let offset: number | "first" = "first";

  return async function setup(channel: ConfirmChannel, connection: Connection): Promise<void> {
    await declareExchanges(channel, fleet);
    const history = await declareHistory(connection, fleet, options.maxAge, log);
    await followHeartbeats(channel, n.events, view, log);

    const marker = randomUUID();
    await appendMarker(channel, history, marker);
    let caughtUp!: () => void;
    const reached = new Promise<void>((resolve) => (caughtUp = resolve));
    const progress = { lastMessage: Date.now() };

    // A stream consumer needs a prefetch and acks; each ack lets the broker send more.
    await channel.prefetch(1000);
    await channel.consume(
      history,
      (msg) => {
        if (!msg) {
          // The broker cancelled us (the stream was deleted): start over on a new connection.
          log.warn("history consumer cancelled by the broker; reconnecting");
          void connection.close().catch(() => {});
          return;
        }
        progress.lastMessage = Date.now();
        const at = msg.properties.headers?.["x-stream-offset"];
        if (typeof at === "number") offset = at + 1;
        channel.ack(msg);
        const sync = msg.properties.headers?.[SYNC_HEADER];
        if (sync === marker) caughtUp();
        else if (sync === undefined) readEvent(msg, view, log);
      },
      { noAck: false, arguments: { "x-stream-offset": offset } },
    );
    const closed = new Promise<never>((_, reject) =>
      connection.once("close", () => reject(new Error(`Cannot read the history stream ${history}: the connection closed`))),
    );
    await untilReached(reached, closed, progress, options.idleTimeoutMs ?? 30_000, history);
    view.goLive();
    log.info("history read", { stream: history, nextOffset: offset, deployments: view.list(Number.MAX_SAFE_INTEGER).length });
  };
}

/** Resolves when `reached` does; rejects when `closed` does, or if no message arrived for `idleMs` before that. */
function untilReached(reached: Promise<void>, closed: Promise<never>, progress: { lastMessage: number }, idleMs: number, stream: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const check = setInterval(() => {
      if (Date.now() - progress.lastMessage <= idleMs) return;
      clearInterval(check);
      reject(new Error(`Cannot read the history stream ${stream}: no message for ${idleMs} ms before its end`));
    }, Math.min(1000, idleMs));
    void reached.then(() => {
      clearInterval(check);
      resolve();
    });
    // The check ends with the connection too; it would otherwise tick on for up to idleMs.
    closed.catch((error) => {
      clearInterval(check);
      reject(error);
    });
  });
}

/** Heartbeats go to a queue of this connection alone: only the live ones matter. */
async function followHeartbeats(channel: ConfirmChannel, events: string, view: View, log: Logger): Promise<void> {
  const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
  await channel.bindQueue(queue, events, "heartbeat.#");
  await channel.consume(
    queue,
    (msg) => {
      if (!msg) return;
      const heartbeat = parseJson(Heartbeat, msg.content);
      if (heartbeat.ok) view.heartbeat(heartbeat.value);
      else log.debug("ignoring a malformed heartbeat", { routingKey: msg.fields.routingKey });
    },
    { noAck: true },
  );
}

function readEvent(msg: ConsumeMessage, view: View, log: Logger): void {
  const event = parseJson(Event, msg.content);
  if (event.ok) view.apply(event.value);
  else log.debug("ignoring a malformed history message", { routingKey: msg.fields.routingKey });
}

/** Appends a marker straight to the stream (not through the events exchange, so event listeners never see it). */
function appendMarker(channel: ConfirmChannel, stream: string, marker: string): Promise<void> {
  return new Promise((resolve, reject) => {
    channel.sendToQueue(
      stream,
      Buffer.from(JSON.stringify({ sync: marker })),
      { persistent: true, contentType: "application/json", timestamp: Math.floor(Date.now() / 1000), headers: { [SYNC_HEADER]: marker } },
      (error) => (error ? reject(new Error("Cannot append a marker to the history stream", { cause: error })) : resolve()),
    );
  });
}
