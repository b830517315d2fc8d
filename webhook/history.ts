/**
 * Feeds the view from the broker. `followHistory` returns the setup that
 * shared/broker.ts runs on every new channel: declare the topology, then read
 * two streams and follow them live: the history stream from the beginning,
 * and the heartbeats stream over its last minutes, so a webhook that starts
 * knows at once which nodes are online (after a reconnect each resumes just
 * after the last offset seen). The setup returns only once both have been
 * read up to markers it appended itself, so while `broker.connected` is false
 * the view may be stale and nothing is published: no duplicate slips through,
 * and no deployment is created expecting too few nodes.
 */
import { randomUUID } from "node:crypto";
import { sendConfirmed, type ConfirmChannel, type Connection, type ConsumeMessage } from "../shared/broker.ts";
import type { Logger } from "../shared/log.ts";
import { Heartbeat, parseJson } from "../shared/protocol.ts";
import { parseRecord } from "../shared/records.ts";
import { declareExchanges, declareHeartbeats, declareHistory } from "../shared/topology.ts";
import type { Sealer } from "./records.ts";
import type { View } from "./view.ts";

/** Header of the marker messages a webhook appends to a stream to know where its end is. */
export const SYNC_HEADER = "x-arbeider-sync";

/** How far back a starting webhook reads heartbeats: longer than any node's online window in practice. */
export const HEARTBEAT_WINDOW = "15m";

export interface HistoryOptions {
  fleet: string;
  maxAge: string;
  view: View;
  log: Logger;
  /** Tells the webhook's own records (`created`, decisions) from forged ones. */
  sealer: Sealer;
  /** Give up (and reconnect) when a stream is silent this long before its marker arrives. */
  idleTimeoutMs?: number;
}

/** The broker setup that keeps `view` up to date. */
export function followHistory(options: HistoryOptions) {
  const { fleet, view, log } = options;
  const idleMs = options.idleTimeoutMs ?? 30_000;
  // Where each stream is read from on the next connection.
  const from: { history: number | string; heartbeats: number | string } = { history: "first", heartbeats: HEARTBEAT_WINDOW };

  return async function setup(channel: ConfirmChannel, connection: Connection): Promise<void> {
    await declareExchanges(channel, fleet);
    const history = await declareHistory(connection, fleet, options.maxAge, log);
    const heartbeats = await declareHeartbeats(connection, fleet, log);
    const closed = new Promise<never>((_, reject) =>
      connection.once("close", () => reject(new Error("Cannot read the history streams: the connection closed"))),
    );
    closed.catch(() => {});
    // Stream consumers need a prefetch and acks; each ack lets the broker send more.
    await channel.prefetch(1000);
    // One batch of acks for both streams: an ack covers every earlier delivery on the channel.
    const ack = batchedAcks(channel);
    closed.catch(() => ack.stop());
    const common = { channel, connection, closed, idleMs, log, ack };
    let replaying = true;
    await Promise.all([
      readStream({ ...common, stream: history, from: from.history, onOffset: (at) => (from.history = at + 1), onMessage: (msg) => foldHistoryMessage(msg, options) }),
      readStream({
        ...common,
        stream: heartbeats,
        from: from.heartbeats,
        onOffset: (at) => (from.heartbeats = at + 1),
        onMessage: (msg) => readHeartbeat(msg, view, log, replaying),
      }).then(() => (replaying = false)),
    ]);
    view.goLive();
    log.info("history read", { stream: history, nextOffset: from.history, deployments: view.all().length, nodes: view.nodes().length });
  };
}

interface StreamReading {
  channel: ConfirmChannel;
  ack: ReturnType<typeof batchedAcks>;
  connection: Connection;
  closed: Promise<never>;
  idleMs: number;
  log: Logger;
  stream: string;
  from: number | string;
  onOffset: (offset: number) => void;
  onMessage: (msg: ConsumeMessage) => void;
}

/** Consumes `stream` from `from` and follows it live; resolves once a marker appended now has been read. */
async function readStream(o: StreamReading): Promise<void> {
  const marker = randomUUID();
  await appendMarker(o.channel, o.stream, marker);
  let caughtUp!: () => void;
  const reached = new Promise<void>((resolve) => (caughtUp = resolve));
  const progress = { lastMessage: Date.now() };
  await o.channel.consume(
    o.stream,
    (msg) => {
      if (!msg) {
        // The broker cancelled us (the stream was deleted): start over on a new connection.
        o.log.warn("stream consumer cancelled by the broker; reconnecting", { stream: o.stream });
        void o.connection.close().catch(() => {});
        return;
      }
      progress.lastMessage = Date.now();
      const at = msg.properties.headers?.["x-stream-offset"];
      if (typeof at === "number") o.onOffset(at);
      o.ack.add(msg);
      const sync = msg.properties.headers?.[SYNC_HEADER];
      if (sync === marker) caughtUp();
      else if (sync === undefined) o.onMessage(msg);
    },
    { noAck: false, arguments: { "x-stream-offset": o.from } },
  );
  await untilReached(reached, o.closed, progress, o.idleMs, o.stream);
}

/**
 * Acknowledges stream messages in batches: one ack covers every message up to
 * it, sent after 200 messages or 20 ms, whichever comes first. A stream
 * consumer's acks only return credit (nothing is removed), so batching them
 * costs nothing in safety and saves the broker an ack per event.
 */
function batchedAcks(channel: ConfirmChannel) {
  let last: ConsumeMessage | undefined;
  let pending = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (last) channel.ack(last, true);
    last = undefined;
    pending = 0;
  };
  return {
    add(msg: ConsumeMessage) {
      last = msg;
      if (++pending >= 200) flush();
      else timer ??= setTimeout(() => {
        try {
          flush();
        } catch {
          // The channel closed meanwhile: its unacked messages are gone with it.
        }
      }, 20);
    },
    stop() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      last = undefined;
    },
  };
}

/** Resolves when `reached` does; rejects when `closed` does, or if no message arrived for `idleMs` before that. */
function untilReached(reached: Promise<void>, closed: Promise<never>, progress: { lastMessage: number }, idleMs: number, stream: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const check = setInterval(() => {
      if (Date.now() - progress.lastMessage <= idleMs) return;
      clearInterval(check);
      reject(new Error(`Cannot read the stream ${stream}: no message for ${idleMs} ms before its end`));
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

/**
 * A replayed heartbeat counts from when the node sent it (never later than
 * now); a live one from when it arrived, which a node's wrong clock cannot skew.
 */
function readHeartbeat(msg: ConsumeMessage, view: View, log: Logger, replayed: boolean): void {
  const heartbeat = parseJson(Heartbeat, msg.content);
  if (!heartbeat.ok) return log.debug("ignoring a malformed heartbeat", { routingKey: msg.fields.routingKey });
  const now = Date.now();
  view.heartbeat(heartbeat.value, replayed ? Math.min(Date.parse(heartbeat.value.at), now) : now);
}

/**
 * Folds one history message into the view. Anyone who may publish events (every
 * node does) could write a `created` record or a decision, and a false one would
 * make a real build a "duplicate" or let a rollout go on: so the webhook's own
 * records count only when sealed by a webhook's key (webhook/records.ts).
 */
export function foldHistoryMessage(
  msg: { content: Uint8Array; properties: { headers?: Record<string, unknown> }; fields: { routingKey: string } },
  { view, log, sealer }: Pick<HistoryOptions, "view" | "log" | "sealer">,
): void {
  const parsed = parseRecord(msg.content);
  if (!parsed.ok) return log.debug("ignoring a malformed history message", { routingKey: msg.fields.routingKey });
  const { record } = parsed;
  const own = record.kind === "decision" || record.event.state === "created";
  if (own) {
    const deployment = record.kind === "decision" ? record.decision.deployment : record.event.deployment;
    // A deployment's first created record is the one that counts: a later copy needs no check.
    if (record.kind === "event" && view.has(deployment)) return;
    if (!sealer.trusted(msg.content, msg.properties.headers)) {
      return log.warn("ignoring a record not signed by the webhook's key", { deployment, kind: record.kind === "decision" ? record.decision.decision : "created" });
    }
  }
  view.apply(record);
}

/** Appends a marker straight to the stream (not through the events exchange, so event listeners never see it); bounded by the confirm timeout. */
function appendMarker(channel: ConfirmChannel, stream: string, marker: string): Promise<void> {
  const options = { persistent: true, contentType: "application/json", timestamp: Math.floor(Date.now() / 1000), headers: { [SYNC_HEADER]: marker } };
  return sendConfirmed(channel, stream, Buffer.from(JSON.stringify({ sync: marker })), options).catch((error) => {
    throw new Error(`Cannot append a marker to the stream ${stream}: ${(error as Error).message}`, { cause: error });
  });
}
