/**
 * Benchmark 8, what the broker spends per node event on the history, and what
 * another layout would: the measurement behind keeping one stream message
 * per node event. A node's event must be durable at the broker before the
 * node acks its command (so nothing it reported is lost), and nodes finish
 * at different moments, so events land one at a time: here 20 connections
 * publish a 300-byte event each in turn, waiting for its confirm, as 20
 * workers do. The broker's CPU per event, beside the same publish routed
 * nowhere (the floor), for: the history stream with a webhook reading it
 * (today's layout); a durable classic queue with a consumer (the intake a
 * batching writer would need before it could write one record per batch);
 * and one record of 50 events appended to the stream (what such a writer
 * adds on top). Only on a private broker, whose CPU is the run's alone.
 */
import amqp, { type Channel, type ConfirmChannel } from "amqplib";
import { cpuMeter } from "./cpu.ts";
import type { Harness } from "./harness.ts";
import { result, type Result } from "./results.ts";

const PUBLISHERS = 20;
const BATCH = 50;

const event = (i: number) =>
  Buffer.from(JSON.stringify({ v: 1, deployment: "api-6f1c2d3e4b5a", command: "u-q2Vx8mN4bK7rT1sY6wZ3aB", node: `node-${i}`, state: "succeeded", at: new Date().toISOString(), commitBefore: "a".repeat(40), commitAfter: "b".repeat(40), durationMs: 812 }));

const publish = (ch: ConfirmChannel, exchange: string, body: Buffer) =>
  new Promise<void>((done, fail) => ch.publish(exchange, "deployment.x", body, { persistent: true, contentType: "application/json" }, (e) => (e ? fail(e) : done())));

/** A consumer that acks in batches, as the webhook's history reader does. */
async function reader(ch: Channel, queue: string, args: Record<string, unknown> = {}): Promise<() => Promise<void>> {
  await ch.prefetch(1000);
  let last: amqp.ConsumeMessage | undefined;
  let acked: amqp.ConsumeMessage | undefined;
  const flush = () => {
    if (last && last !== acked) ch.ack(last, true);
    acked = last;
  };
  const timer = setInterval(flush, 20);
  const { consumerTag } = await ch.consume(queue, (msg) => void (msg && (last = msg)), { arguments: args });
  return async () => {
    clearInterval(timer);
    flush();
    await ch.cancel(consumerTag);
  };
}

export async function historyLayout(h: Harness): Promise<Result[]> {
  if (h.broker.kind !== "private") {
    console.error("bench: history layout skipped: the broker's CPU per event is only the run's own on a private broker (a full run as root)");
    return [];
  }
  const rounds = h.quick ? 10 : 100;
  const connection = await amqp.connect(h.broker.amqpUrl);
  const connections = await Promise.all(Array.from({ length: PUBLISHERS }, () => amqp.connect(h.broker.amqpUrl)));
  const publishers = await Promise.all(connections.map((c) => c.createConfirmChannel()));
  const admin = await connection.createChannel();
  const exchange = `bench.history.${h.fleet("layout")}`;
  const [stream, classic] = [`${exchange}.stream`, `${exchange}.classic`];
  await admin.assertExchange(exchange, "topic", { durable: true });
  await admin.assertQueue(stream, { durable: true, arguments: { "x-queue-type": "stream" } });
  await admin.assertQueue(classic, { durable: true });
  const broker = cpuMeter({ roots: () => h.broker.pids });
  const events = rounds * PUBLISHERS;
  /** Broker µs per event while every publisher sends `rounds` events one after another. */
  const alone = async () => {
    broker.lap();
    for (let r = 0; r < rounds; r++) for (const [i, ch] of publishers.entries()) await publish(ch, exchange, event(i));
    return (broker.lap() * 1000) / events;
  };
  try {
    const unrouted = await alone();
    await admin.bindQueue(stream, exchange, "#");
    let stop = await reader(await connection.createChannel(), stream, { "x-stream-offset": "next" });
    const today = await alone();
    await stop();
    await admin.unbindQueue(stream, exchange, "#");
    await admin.bindQueue(classic, exchange, "#");
    stop = await reader(await connection.createChannel(), classic);
    const intake = await alone();
    await stop();
    await admin.unbindQueue(classic, exchange, "#");
    await admin.bindQueue(stream, exchange, "#");
    stop = await reader(await connection.createChannel(), stream, { "x-stream-offset": "next" });
    broker.lap();
    const batch = Buffer.concat([Buffer.from("["), ...Array.from({ length: BATCH }, (_, i) => event(i)), Buffer.from("]")]);
    for (let r = 0; r < events / BATCH; r++) await publish(publishers[0]!, exchange, batch);
    const batched = (broker.lap() * 1000) / events;
    await stop();
    console.error(`bench: history: broker µs per event ${today.toFixed(0)} (stream), ${intake.toFixed(0)} (classic queue), ${batched.toFixed(0)} (in records of ${BATCH}); unrouted ${unrouted.toFixed(0)}`);
    return [
      result("history: broker CPU per node event, one stream message each (today)", today, "µs", unrouted),
      result("history: broker CPU per node event, into a durable queue for a batching writer", intake, "µs", unrouted),
      result(`history: broker CPU per node event, in stream records of ${BATCH}`, batched, "µs", unrouted),
    ];
  } finally {
    await admin.deleteQueue(stream).catch(() => {});
    await admin.deleteQueue(classic).catch(() => {});
    await admin.deleteExchange(exchange).catch(() => {});
    await Promise.all(connections.map((c) => c.close().catch(() => {})));
    await connection.close().catch(() => {});
  }
}
