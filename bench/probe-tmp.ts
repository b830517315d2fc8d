import { join } from "node:path";
import amqp from "amqplib";
import { createHarness } from "./harness.ts";
import { makeRepos, startWebhook, startWorkers } from "./fleet.ts";
import { names } from "../shared/protocol.ts";
import { cpuMs } from "./cpu.ts";

const h = createHarness({ quick: true });
try {
  const n = Number(process.env.N ?? 20);
  const repos = makeRepos(join(h.dir, "p"));
  const fleet = h.fleet("probe");
  const webhook = await startWebhook(h, fleet);
  const workers = await startWorkers(h, fleet, repos, 0, n);
  await webhook.online(n);
  const conn = await amqp.connect(h.broker.amqpUrl);
  const ch = await conn.createChannel();
  const { queue } = await ch.assertQueue("", { exclusive: true });
  await ch.bindQueue(queue, names(fleet).commands, "#");
  await ch.bindQueue(queue, names(fleet).events, "deployment.#");
  let marks: Record<string, number> = {};
  let count: Record<string, number> = {};
  await ch.consume(queue, (m) => {
    if (!m) return;
    const at = performance.now();
    const body = JSON.parse(m.content.toString());
    const key = m.fields.exchange.endsWith("commands") ? "command" : body.decision ? `decision ${body.decision}` : body.state;
    count[key] = (count[key] ?? 0) + 1;
    marks[`first ${key}`] ??= at;
    marks[`last ${key}`] = at;
  }, { noAck: true });
  for (let round = 0; round < 6; round++) {
    marks = {}; count = {};
    const sha = repos.commit({ [`r${round}`]: "x" });
    const c0 = { w: cpuMs({ roots: () => [webhook.proc.pid] }), k: cpuMs({ roots: () => workers.map((w) => w.pid) }) };
    const t0 = performance.now();
    await webhook.deploy({ command: "update", target: "all", args: { branch: "master", commit: sha } });
    const t1 = performance.now();
    while ((count.succeeded ?? 0) < n) await Bun.sleep(5);
    await Bun.sleep(300);
    const c1 = { w: cpuMs({ roots: () => [webhook.proc.pid] }), k: cpuMs({ roots: () => workers.map((w) => w.pid) }) };
    const rel = Object.fromEntries(Object.entries(marks).sort((a, b) => a[1] - b[1]).map(([k, v]) => [k, Math.round(v - t0)]));
    console.log(JSON.stringify({ round, accepted: Math.round(t1 - t0), ...rel, cpuWebhook: c1.w - c0.w, cpuWorkers: c1.k - c0.k }));
  }
  await conn.close();
} finally {
  await h.cleanup();
}
