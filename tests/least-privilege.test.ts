/**
 * The least-privilege RabbitMQ users of docs/install.md, proven: the
 * `set_permissions` and `set_topic_permissions` lines are read from the guide itself. A webhook
 * and a worker with exactly those permissions deploy on quorum queues; then,
 * operation by operation, the broker refuses the node's user everything the
 * guide says it cannot do, and allows what a worker needs.
 */
import { expect, test } from "bun:test";
import amqp, { type ConfirmChannel } from "amqplib";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createLogger } from "../shared/log.ts";
import { declareHistory, declareNodeQueue } from "../shared/topology.ts";
import { AMQP_URL, ROOT, openFleet, rabbitmqctl, waitUntil } from "./helpers.ts";
import { withNodes } from "./worker-fixture.ts";
import { apiClient } from "./remote-stack.ts";
import { startWebhook } from "./stack.ts";

const GUIDE = () => readFileSync(join(ROOT, "docs", "install.md"), "utf8");

/** The three permission patterns the guide gives `user`, for fleet `shop`. */
export function guidePermissions(user: string): [configure: string, write: string, read: string] {
  const guide = GUIDE();
  const at = guide.indexOf(`rabbitmqctl set_permissions -p / ${user} \\`);
  if (at < 0) throw new Error(`docs/install.md has no "rabbitmqctl set_permissions -p / ${user}" line`);
  const patterns = [...guide.slice(at).matchAll(/'([^']*)'/g)].slice(0, 3).map((m) => m[1]);
  return patterns as [string, string, string];
}

/** The guide's `set_topic_permissions` lines for `user`: exchange, write pattern, read pattern. */
export function guideTopicPermissions(user: string): [exchange: string, write: string, read: string][] {
  const line = new RegExp(`rabbitmqctl set_topic_permissions -p / ${user} (\\S+) \\\\\\n\\s*'([^']*)' '([^']*)'`, "g");
  return [...GUIDE().matchAll(line)].map((m) => [m[1]!, m[2]!, m[3]!]);
}

/** A broker user with the guide's lines for `guideUser`, rewritten for `fleet` (and `node`). */
async function addUser(guideUser: string, fleet: string, node?: string) {
  const name = `arbeider-test-${randomUUID().slice(0, 8)}`;
  const password = randomUUID();
  const scope = (p: string) => (node ? p.replaceAll("shop", fleet).replaceAll("web-1", node) : p.replaceAll("shop", fleet));
  await rabbitmqctl("add_user", name, password);
  await rabbitmqctl("set_permissions", "-p", "/", name, ...guidePermissions(guideUser).map(scope));
  for (const [exchange, write, read] of guideTopicPermissions(guideUser)) {
    await rabbitmqctl("set_topic_permissions", "-p", "/", name, scope(exchange), scope(write), scope(read));
  }
  const url = new URL(AMQP_URL);
  url.username = name;
  url.password = password;
  return { name, url: url.toString(), remove: () => rabbitmqctl("delete_user", name) };
}

test("the install guide gives each node topic permissions on both exchanges", () => {
  expect(guideTopicPermissions("arbeider-web-1").map(([exchange]) => exchange)).toEqual(["arbeider.shop.commands", "arbeider.shop.events"]);
});

test("a worker and a webhook with only the install guide's permissions deploy on quorum queues", async () => {
  await withNodes([{ id: "lp-1", groups: ["web"] }], async (nodes) => {
    const fleet = nodes.fleet.fleet;
    const [workerUser, webhookUser] = await Promise.all([addUser("arbeider-web-1", fleet, "lp-1"), addUser("arbeider-webhook", fleet)]);
    const quorum = { ARBEIDER_QUEUE_TYPE: "quorum" };
    try {
      const apiKey = `lp-${randomUUID()}`;
      const webhook = await startWebhook({ ...quorum, AMQP_URL: webhookUser.url, ARBEIDER_FLEET: fleet, ARBEIDER_SIGNING_KEY_FILE: nodes.keys.signingFile, ARBEIDER_API_KEY: apiKey });
      try {
        await nodes.start("lp-1", { ...quorum, AMQP_URL: workerUser.url, ARBEIDER_HEARTBEAT_SECONDS: "1" });
        const api = apiClient(webhook.url, apiKey);
        await waitUntil(async () => (await api("/api/nodes")).nodes.some((n: { node: string; online: boolean }) => n.node === "lp-1" && n.online), "lp-1 online");
        const commit = nodes.origin.commit("master", { VERSION: "least privilege\n" }, "deploy with the guide's users");
        for (const request of [{ command: "ping" }, { command: "update", args: { branch: "master", commit } }]) {
          const { deployment } = await api("/api/deployments", request);
          const done = await waitUntil(async () => {
            const d = await api(`/api/deployments/${deployment}`);
            return d.state === "succeeded" || d.state === "failed" ? d : undefined;
          }, `${request.command} to finish`);
          expect(done.nodes["lp-1"].state).toBe("succeeded");
        }
        expect(webhook.proc.output()).not.toContain("ACCESS_REFUSED");
      } finally {
        await webhook.proc.stop(5000);
      }
    } finally {
      await Promise.all([workerUser.remove(), webhookUser.remove()]);
    }
  }, "lp");
}, 60_000);

/** Runs `op` on a new channel of `url`'s user: "ok", or the broker's refusal. */
async function attempt(url: string, op: (channel: ConfirmChannel) => unknown): Promise<string> {
  const connection = await amqp.connect(url);
  connection.on("error", () => {});
  try {
    const channel = await connection.createConfirmChannel();
    let refusal = "";
    channel.on("error", (error) => (refusal = String(error.message)));
    try {
      await op(channel);
      await channel.waitForConfirms();
    } catch (error) {
      refusal ||= String((error as Error).message);
    }
    return refusal || "ok";
  } finally {
    await connection.close().catch(() => {});
  }
}

test("a node's user cannot publish commands or others' heartbeats, change exchanges or bind beyond its own keys, or touch other queues and the history", async () => {
  const fleet = await openFleet("lpx");
  const n = fleet.names;
  const user = await addUser("arbeider-web-1", fleet.fleet, "lp-1");
  try {
    // The topology a webhook and another node would have made.
    const guest = await amqp.connect(AMQP_URL);
    const setup = await guest.createConfirmChannel();
    await setup.assertExchange(n.dead, "fanout", { durable: true });
    await setup.assertQueue(n.dead, { durable: true });
    await declareHistory(guest, fleet.fleet, "1h", createLogger("error"));
    await declareNodeQueue(setup, { fleet: fleet.fleet, node: "lp-2", groups: [], queueType: "classic" });
    fleet.track("lp-2");
    fleet.track("lp-1");
    await guest.close();

    const own = n.nodeQueue("lp-1");
    const other = n.nodeQueue("lp-2");
    const body = Buffer.from("{}");
    const allowed: [string, (ch: ConfirmChannel) => unknown][] = [
      ["declare its quorum queue and bind it with its keys", (ch) => declareNodeQueue(ch, { fleet: fleet.fleet, node: "lp-1", groups: ["web"], queueType: "quorum" })],
      ["consume its queue", (ch) => ch.consume(own, () => {})],
      ["publish a deployment event", (ch) => ch.publish(n.events, "deployment.api-1", body)],
      ["publish its heartbeat", (ch) => ch.publish(n.events, "heartbeat.lp-1", body)],
      // Documented as possible in docs/operations.md: it copies only commands this node receives anyway, under keys no stream takes.
      ["bind the events exchange from the commands exchange with its own key", (ch) => ch.bindExchange(n.events, n.commands, "all")],
    ];
    const refused: [string, (ch: ConfirmChannel) => unknown][] = [
      ["publish a command", (ch) => ch.publish(n.commands, "all", body)],
      ["publish another node's heartbeat", (ch) => ch.publish(n.events, "heartbeat.lp-2", body)],
      ["publish to the events exchange outside deployment.* and its heartbeat", (ch) => ch.publish(n.events, "all", body)],
      ["declare the commands exchange", (ch) => ch.assertExchange(n.commands, "topic", { durable: true })],
      ["delete the commands exchange", (ch) => ch.deleteExchange(n.commands)],
      ["delete the events exchange", (ch) => ch.deleteExchange(n.events)],
      ["declare an exchange of its own", (ch) => ch.assertExchange(`${n.commands}.mine`, "topic")],
      ["bind its queue to another node's key", (ch) => ch.bindQueue(own, n.commands, "node.lp-2")],
      ["bind its queue to every command", (ch) => ch.bindQueue(own, n.commands, "#")],
      ["bind its queue to a group it is not in", (ch) => ch.bindQueue(own, n.commands, "group.db")],
      ["bind the events exchange from the commands exchange with every key", (ch) => ch.bindExchange(n.events, n.commands, "#")],
      ["bind the commands exchange from the events exchange", (ch) => ch.bindExchange(n.commands, n.events, "#")],
      ["unbind another node's queue", (ch) => ch.unbindQueue(other, n.commands, "all")],
      ["bind another node's queue", (ch) => ch.bindQueue(other, n.commands, "node.lp-1")],
      ["consume another node's queue", (ch) => ch.consume(other, () => {})],
      ["purge another node's queue", (ch) => ch.purgeQueue(other)],
      ["delete another node's queue", (ch) => ch.deleteQueue(other)],
      ["read the history", (ch) => ch.consume(n.history, () => {}, { arguments: { "x-stream-offset": "first" } })],
      ["delete the history", (ch) => ch.deleteQueue(n.history)],
      ["read the dead-letter queue", (ch) => ch.consume(n.dead, () => {})],
      ["delete the dead-letter queue", (ch) => ch.deleteQueue(n.dead)],
      ["publish straight to the history", (ch) => ch.sendToQueue(n.history, body)],
    ];
    // In order: the queue must exist before it is consumed.
    const done: Record<string, string> = {};
    for (const [what, op] of allowed) done[what] = await attempt(user.url, op);
    expect(done).toEqual(Object.fromEntries(allowed.map(([what]) => [what, "ok"])));
    const answers = await Promise.all(refused.map(async ([what, op]) => [what, await attempt(user.url, op)] as const));
    expect(Object.fromEntries(answers.map(([what, answer]) => [what, /ACCESS.REFUSED/.test(answer) ? "refused" : answer]))).toEqual(
      Object.fromEntries(refused.map(([what]) => [what, "refused"])),
    );
  } finally {
    await user.remove();
    await fleet.cleanup();
  }
}, 60_000);
