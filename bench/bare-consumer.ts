/**
 * The floor process of the fan-out and worker-cost benchmarks: a bare bun
 * process with one amqplib consumer and nothing else (no signing, no
 * validation, no events). It binds a durable queue to a fanout exchange,
 * consumes it with prefetch 1, answers each message with an empty reply to
 * its `replyTo` queue, and acks after replying, as a worker acks after
 * reporting. Prints `consuming` once the consumer is registered.
 *
 *   AMQP_URL=... BENCH_EXCHANGE=x BENCH_QUEUE=q bun bench/bare-consumer.ts
 */
import amqp from "amqplib";

const url = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const exchange = process.env.BENCH_EXCHANGE ?? "";
const queue = process.env.BENCH_QUEUE ?? "";
if (!exchange || !queue) {
  console.error("bare-consumer: BENCH_EXCHANGE and BENCH_QUEUE are required");
  process.exit(2);
}

const connection = await amqp.connect(url);
const channel = await connection.createChannel();
await channel.assertExchange(exchange, "fanout", { durable: true });
await channel.assertQueue(queue, { durable: true });
await channel.bindQueue(queue, exchange, "");
await channel.prefetch(1);
await channel.consume(queue, (msg) => {
  if (!msg) return process.exit(1);
  channel.sendToQueue(msg.properties.replyTo, Buffer.alloc(0), { correlationId: msg.properties.correlationId, headers: { queue } });
  channel.ack(msg);
});
console.log("consuming");
process.on("SIGTERM", () => void connection.close().finally(() => process.exit(0)));
