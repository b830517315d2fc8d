/**
 * The floor servers of the webhook-rate benchmark, on the webhook's runtime
 * and framework (bun + Hono): `BENCH_MODE=bare` answers every POST with 202
 * and does nothing else; `BENCH_MODE=publish` checks an HMAC-SHA256 of the
 * raw body (GitHub's `X-Hub-Signature-256`, constant-time) and answers 202
 * after one persistent publish the broker has confirmed into a stream queue,
 * which is the least a webhook that must not lose a deploy can do. Prints
 * `listening`.
 *
 *   BENCH_MODE=publish PORT=8081 BENCH_SECRET=s BENCH_EXCHANGE=x AMQP_URL=... bun bench/http-floor.ts
 */
import { Hono } from "hono";
import amqp from "amqplib";
import { createHmac, timingSafeEqual } from "node:crypto";

const mode = process.env.BENCH_MODE;
const port = Number(process.env.PORT);
const app = new Hono();

if (mode === "bare") {
  app.post("*", (c) => c.json({ ok: true }, 202));
} else if (mode === "publish") {
  const secret = process.env.BENCH_SECRET ?? "";
  const exchange = process.env.BENCH_EXCHANGE ?? "";
  const connection = await amqp.connect(process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672");
  const channel = await connection.createConfirmChannel();
  await channel.assertExchange(exchange, "fanout", { durable: true });
  await channel.assertQueue(`${exchange}.stream`, { durable: true, arguments: { "x-queue-type": "stream" } });
  await channel.bindQueue(`${exchange}.stream`, exchange, "");
  app.post("*", async (c) => {
    const body = Buffer.from(await c.req.arrayBuffer());
    const expected = Buffer.from(`sha256=${createHmac("sha256", secret).update(body).digest("hex")}`);
    const given = Buffer.from(c.req.header("x-hub-signature-256") ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return c.json({ error: "bad signature" }, 401);
    await new Promise<void>((done, fail) =>
      channel.publish(exchange, "", body, { persistent: true, contentType: "application/json" }, (error) => (error ? fail(error) : done())),
    );
    return c.json({ ok: true }, 202);
  });
} else {
  console.error("http-floor: BENCH_MODE must be bare or publish");
  process.exit(2);
}

Bun.serve({ port, hostname: "127.0.0.1", fetch: app.fetch });
console.log("listening");
