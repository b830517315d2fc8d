/**
 * The floor of the fan-out, worker-cost and simulation benchmarks: a bare
 * amqplib consumer and nothing else (no signing, no validation, no events).
 * It binds a durable queue to a fanout exchange, consumes it with prefetch 1,
 * answers each message with an empty reply to its `replyTo` queue and acks
 * after replying, as a worker acks after reporting. Run as a process it is
 * one such consumer and prints `consuming` once it is registered.
 *
 *   AMQP_URL=... BENCH_EXCHANGE=x BENCH_QUEUE=q bun bench/bare-consumer.ts
 */
import amqp, { type ChannelModel } from "amqplib";

/** Connects, declares, and consumes `queue` bound to the fanout `exchange`; resolves once consuming. */
export async function bareConsumer(url: string, exchange: string, queue: string): Promise<ChannelModel> {
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  await channel.assertExchange(exchange, "fanout", { durable: true });
  await channel.assertQueue(queue, { durable: true });
  await channel.bindQueue(queue, exchange, "");
  await channel.prefetch(1);
  await channel.consume(queue, (msg) => {
    if (!msg) return;
    channel.sendToQueue(msg.properties.replyTo, Buffer.alloc(0), { correlationId: msg.properties.correlationId, headers: { queue } });
    channel.ack(msg);
  });
  return connection;
}

if (import.meta.main) {
  const exchange = process.env.BENCH_EXCHANGE ?? "";
  const queue = process.env.BENCH_QUEUE ?? "";
  if (!exchange || !queue) {
    console.error("bare-consumer: BENCH_EXCHANGE and BENCH_QUEUE are required");
    process.exit(2);
  }
  const connection = await bareConsumer(process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672", exchange, queue);
  console.log("consuming");
  process.on("SIGTERM", () => void connection.close().finally(() => process.exit(0)));
}
