/**
 * Many virtual nodes behind one connection, for the tracking benchmark: all
 * the webhook can tell of a fleet is what reaches the broker, and this
 * process sends exactly that for `BENCH_NODES` nodes, at a fraction of the
 * cost of real workers, so the webhook's own cost per node event can be
 * measured at 2,000 nodes on two cores. Every node heartbeats (each at its
 * own phase of the period, so the webhook counts all of them online), and
 * every command the fleet's exchange routes to a node of its set is
 * answered as a worker answers it: `received`, `started` and `succeeded` at
 * the command's commit for an update, `succeeded` for a ping. Prints `ready`
 * once every node has sent its first heartbeat.
 *
 *   BENCH_NODES=2000 ARBEIDER_FLEET=f AMQP_URL=... bun bench/event-fleet.ts
 */
import amqp from "amqplib";
import { PROTOCOL_VERSION, eventKey, heartbeatKey, names, type Command, type Event, type Heartbeat } from "../shared/protocol.ts";

const PERIOD_S = 15;
const SHA = "0".repeat(40);

const fleet = process.env.ARBEIDER_FLEET ?? "";
const ids = Array.from({ length: Number(process.env.BENCH_NODES) }, (_, i) => `t${i}`);
const mine = new Set(ids);
const n = names(fleet);
const connection = await amqp.connect(process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672");
const channel = await connection.createConfirmChannel();
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const publish = (key: string, value: unknown) =>
  new Promise<void>((done, fail) => channel.publish(n.events, key, json(value), { persistent: true, contentType: "application/json" }, (e) => (e ? fail(e) : done())));

function heartbeat(node: string): Promise<void> {
  const beat: Heartbeat = { v: PROTOCOL_VERSION, node, groups: [], commit: SHA, branch: "master", busy: false, version: "bench", at: new Date().toISOString(), period: PERIOD_S };
  return publish(heartbeatKey(node), beat);
}

/** The events a worker publishes for `command`, in its order. */
function answer(command: Command, node: string): Promise<void>[] {
  const event = (state: Event["state"], fields: Partial<Event> = {}): Event => ({
    v: PROTOCOL_VERSION, deployment: command.deployment, command: command.id, node, state, at: new Date().toISOString(), ...fields,
  });
  if (command.command === "ping") return [publish(eventKey(command.deployment), event("succeeded", { commitAfter: SHA, durationMs: 0 }))];
  const commit = command.command === "update" && command.args.commit ? command.args.commit : SHA;
  return [
    publish(eventKey(command.deployment), event("received")),
    publish(eventKey(command.deployment), event("started")),
    publish(eventKey(command.deployment), event("succeeded", { commitBefore: SHA, commitAfter: commit, durationMs: 1, output: "" })),
  ];
}

const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
await channel.bindQueue(queue, n.commands, "#");
await channel.consume(queue, (msg) => {
  if (!msg) return;
  const command = JSON.parse(msg.content.toString()) as Command;
  const targets = command.target === "all" ? ids : command.target.startsWith("node:") && mine.has(command.target.slice(5)) ? [command.target.slice(5)] : [];
  void Promise.all(targets.flatMap((node) => answer(command, node))).then(() => channel.ack(msg));
}, { noAck: false });

await Promise.all(ids.map(heartbeat));
console.log("ready");
// Then each node once a period, at its own phase.
ids.forEach((node, i) => setTimeout(() => setInterval(() => void heartbeat(node), PERIOD_S * 1000), (i / ids.length) * PERIOD_S * 1000));
process.on("SIGTERM", () => void connection.close().finally(() => process.exit(0)));
