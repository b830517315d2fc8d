import amqp from "amqplib";
import { createHarness } from "./harness.ts";
import { API_KEY, codeship, startWebhook } from "./fleet.ts";
import { names } from "../shared/protocol.ts";

const h = createHarness({ quick: true });
try {
  const fleet = h.fleet("probe");
  const webhook = await startWebhook(h, fleet);
  const conn = await amqp.connect(h.broker.amqpUrl);
  const ch = await conn.createChannel();
  const { queue } = await ch.assertQueue("", { exclusive: true });
  await ch.bindQueue(queue, names(fleet).events, "deployment.#");
  const count: Record<string, number> = {};
  await ch.consume(queue, (m) => {
    if (!m) return;
    const b = JSON.parse(m.content.toString());
    const k = b.decision ?? b.state;
    count[k] = (count[k] ?? 0) + 1;
  }, { noAck: true });
  const url = `${webhook.url}/hooks/codeship?api_key=${API_KEY}`;
  const body = codeship("success");
  let n = 1;
  const t0 = performance.now();
  const lat: number[] = [];
  const total = Number(process.env.TOTAL ?? 2000);
  await Promise.all(Array.from({ length: 50 }, async () => {
    while (n <= total) {
      const id = n++;
      const s = performance.now();
      const r = await fetch(url, { method: "POST", body: body.replaceAll("{{n}}", String(id)), headers: { "content-type": "application/json" } });
      await r.text();
      lat.push(performance.now() - s);
    }
  }));
  const ms = performance.now() - t0;
  await Bun.sleep(2000);
  lat.sort((a, b) => a - b);
  console.log(JSON.stringify({ rps: Math.round((total / ms) * 1000), p50: lat[lat.length >> 1]!.toFixed(1), p99: lat[Math.floor(lat.length * 0.99)]!.toFixed(1), count }));
  await conn.close();
} finally {
  await h.cleanup();
}
