import { join } from "node:path";
import amqp from "amqplib";
import { createHarness } from "./harness.ts";
import { chooseBroker } from "./brokers.ts";
import { makeRepos, startWebhook, startWorkers } from "./fleet.ts";
import { names } from "../shared/protocol.ts";
import { cpuMeter } from "./cpu.ts";
import { tapEvents } from "./tap.ts";
import { median } from "./results.ts";

const h = createHarness({ quick: false });
try {
  await chooseBroker(h);
  const n = Number(process.env.N ?? 20);
  const repos = makeRepos(join(h.dir, "p"));
  const fleet = h.fleet("probe");
  const webhook = await startWebhook(h, fleet);
  const workers = await startWorkers(h, fleet, repos, 0, n);
  await webhook.online(n);
  const tap = await tapEvents(h.broker.amqpUrl, fleet);
  const conn = await amqp.connect(h.broker.amqpUrl);
  const ch = await conn.createChannel();
  const broker = cpuMeter({ roots: () => h.broker.pids });
  const wk = cpuMeter({ roots: () => workers.map((w) => w.pid) });
  const hook = cpuMeter({ roots: () => [webhook.proc.pid] });
  await ch.unbindQueue(names(fleet).history, names(fleet).events, "deployment.#");
  const q = process.env.QTYPE ?? "classic";
  await ch.assertQueue("probe.events", { durable: true, arguments: { "x-queue-type": q } });
  let last: any; let pend = 0;
  const cch = await conn.createChannel();
  await cch.prefetch(1000);
  await cch.consume("probe.events", (m) => { if (!m) return; last = m; if (++pend >= 200) { cch.ack(m, true); pend = 0; } }, { noAck: false });
  setInterval(() => { if (pend > 0) { cch.ack(last, true); pend = 0; } }, 20);
  for (const bound of ["stream", "queue", "none", "stream", "queue", "none"]) {
    await ch.unbindQueue(names(fleet).history, names(fleet).events, "deployment.#");
    await ch.unbindQueue("probe.events", names(fleet).events, "deployment.#");
    if (bound === "stream") await ch.bindQueue(names(fleet).history, names(fleet).events, "deployment.#");
    if (bound === "queue") await ch.bindQueue("probe.events", names(fleet).events, "deployment.#");
    const wall: number[] = [];
    for (let i = 0; i < 5; i++) await webhook.roundTrip(tap, { command: "ping" }, n, 30_000);
    broker.lap(); wk.lap(); hook.lap();
    const rounds = 60;
    for (let i = 0; i < rounds; i++) wall.push(await webhook.roundTrip(tap, { command: "ping" }, n, 30_000));
    const per = (ms: number) => (ms / rounds / n).toFixed(2);
    console.log(JSON.stringify({ bound, p50: median(wall).toFixed(1), broker: per(broker.lap()), workers: per(wk.lap()), webhook: per(hook.lap()) }));
  }
  await ch.deleteQueue("probe.events");
  await conn.close();
  await tap.close();
} finally {
  await h.cleanup();
}
