import amqp from "amqplib";
import { createHarness } from "./harness.ts";
import { chooseBroker } from "./brokers.ts";
import { cpuMeter } from "./cpu.ts";

const h = createHarness({ quick: false });
try {
  await chooseBroker(h);
  const url = h.broker.amqpUrl;
  const admin = await (await amqp.connect(url)).createChannel();
  await admin.assertExchange("x", "topic", { durable: true });
  await admin.assertQueue("s", { durable: true, arguments: { "x-queue-type": "stream" } });
  await admin.assertQueue("c", { durable: true });
  const readerConn = await amqp.connect(url);
  const broker = cpuMeter({ roots: () => h.broker.pids });
  const pubs = await Promise.all(Array.from({ length: 20 }, async () => (await amqp.connect(url)).createConfirmChannel()));
  const body = Buffer.from(JSON.stringify({ v: 1, deployment: "api-0123456789abcdef", command: "u-abcdefghijklmnopqrstuv", node: "node-12", state: "succeeded", at: new Date().toISOString(), commitAfter: "0".repeat(40), durationMs: 12 }));
  const per = Number(process.env.PER ?? 300);
  async function run(label: string) {
    broker.lap();
    const t0 = performance.now();
    if (process.env.PACED) {
      for (let i = 0; i < per; i++) for (const ch of pubs) { await new Promise<void>((ok, no) => ch.publish("x", "deployment.a", body, { persistent: true }, (e) => (e ? no(e) : ok()))); }
    } else if (process.env.BURSTY) {
      for (let i = 0; i < per; i++) await Promise.all(pubs.map((ch) => new Promise<void>((ok, no) => ch.publish("x", "deployment.a", body, { persistent: true }, (e) => (e ? no(e) : ok())))));
    } else await Promise.all(pubs.map(async (ch) => {
      for (let i = 0; i < per; i++) await new Promise<void>((ok, no) => ch.publish("x", "deployment.a", body, { persistent: true }, (e) => (e ? no(e) : ok())));
    }));
    const ms = performance.now() - t0;
    await Bun.sleep(500);
    console.log(JSON.stringify({ label, brokerUsPerMsg: Math.round((broker.lap() * 1000) / (per * pubs.length)), wallUsPerMsg: Math.round((ms * 1000) / (per * pubs.length)) }));
  }
  const unbindAll = async () => { await admin.unbindQueue("s", "x", "#"); await admin.unbindQueue("c", "x", "#"); };
  let last: any; let acked: any;
  for (let rep = 0; rep < 1; rep++) {
    await unbindAll(); await run("none");
    await admin.bindQueue("s", "x", "#"); await run("stream, no reader");
    const rch = await readerConn.createChannel(); await rch.prefetch(1000);
    const ackUpTo = (ch: any) => { if (last && last !== acked) { ch.ack(last, true); acked = last; } };
    await rch.consume("s", (m) => { if (!m) return; last = m; }, { arguments: { "x-stream-offset": "next" } });
    const t = setInterval(() => ackUpTo(rch), 20);
    await run("stream + reader");
    clearInterval(t); await rch.close();

    await unbindAll(); await admin.bindQueue("c", "x", "#");
    const cch = await readerConn.createChannel(); await cch.prefetch(1000);
    last = acked = undefined;
    await cch.consume("c", (m) => { if (!m) return; last = m; });
    const t2 = setInterval(() => ackUpTo(cch), 20);
    await run("classic + reader");
    clearInterval(t2); await cch.close();
  }
} finally {
  await h.cleanup();
}
