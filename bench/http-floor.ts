/**
 * The floor servers of the webhook-rate benchmark, on the webhook's runtime
 * and framework (bun + Hono). `BENCH_MODE=bare` answers every POST with 202
 * and does nothing else. `BENCH_MODE=publish` checks an HMAC-SHA256 of the
 * raw body (GitHub's `X-Hub-Signature-256`, constant-time) and answers 202
 * after one persistent publish the broker confirmed into a stream: the least
 * a webhook that must not lose a deploy can do. `BENCH_MODE=record` does
 * what the contract's order asks of the broker and nothing else: after the
 * HMAC, a confirmed publish to a topic exchange (the command), then a
 * confirmed publish of a 1.3 KB record into a stream that the same process
 * follows live (the history). Prints `listening`.
 *
 *   BENCH_MODE=publish PORT=8081 BENCH_SECRET=s BENCH_EXCHANGE=x AMQP_URL=... bun bench/http-floor.ts
 */
import { Hono } from "hono";
import amqp, { type ConfirmChannel } from "amqplib";
import { createHmac, timingSafeEqual } from "node:crypto";

const mode = process.env.BENCH_MODE;
const port = Number(process.env.PORT);
const secret = process.env.BENCH_SECRET ?? "";
const exchange = process.env.BENCH_EXCHANGE ?? "";
const app = new Hono();

/** Publishes persistently and resolves on the broker's confirm. */
const confirmed = (channel: ConfirmChannel, to: string, body: Buffer) =>
  new Promise<void>((done, fail) =>
    channel.publish(to, "", body, { persistent: true, contentType: "application/json" }, (error) => (error ? fail(error) : done())),
  );

const signed = (body: Buffer, header: string | undefined) => {
  const expected = Buffer.from(`sha256=${createHmac("sha256", secret).update(body).digest("hex")}`);
  const given = Buffer.from(header ?? "");
  return given.length === expected.length && timingSafeEqual(given, expected);
};

if (mode === "bare") {
  app.post("*", (c) => c.json({ ok: true }, 202));
} else if (mode === "publish" || mode === "record") {
  const connection = await amqp.connect(process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672");
  const channel = await connection.createConfirmChannel();
  const stream = `${exchange}.stream`;
  await channel.assertExchange(exchange, "fanout", { durable: true });
  await channel.assertQueue(stream, { durable: true, arguments: { "x-queue-type": "stream" } });
  await channel.bindQueue(stream, exchange, "");
  const commands = `${exchange}.commands`;
  await channel.assertExchange(commands, "topic", { durable: true });
  if (mode === "record") {
    const reader = await connection.createChannel();
    await reader.prefetch(1000);
    await reader.consume(stream, (msg) => msg && (JSON.parse(msg.content.toString()), reader.ack(msg)), { arguments: { "x-stream-offset": "next" } });
  }
  const padding = "x".repeat(1200);
  app.post("*", async (c) => {
    const body = Buffer.from(await c.req.arrayBuffer());
    if (!signed(body, c.req.header("x-hub-signature-256"))) return c.json({ error: "bad signature" }, 401);
    if (mode === "publish") {
      await confirmed(channel, exchange, body);
    } else {
      await confirmed(channel, commands, body);
      await confirmed(channel, exchange, Buffer.from(JSON.stringify({ record: body.toString(), padding })));
    }
    return c.json({ ok: true }, 202);
  });
} else {
  console.error("http-floor: BENCH_MODE must be bare, publish or record");
  process.exit(2);
}

Bun.serve({ port, hostname: "127.0.0.1", fetch: app.fetch });
console.log("listening");
