/**
 * The webhook's broker side in-process against the real broker, each test in
 * its own fleet: the created record in the history stream, the driver's
 * signed command on the node's routing key, a second webhook rebuilding the same view
 * from the stream (duplicates included), a connection the broker closed
 * being re-established before the next webhook is accepted, and the broker
 * module's close() leaving no reconnect timer behind.
 */
import { afterEach, describe, expect, test } from "bun:test";
import amqp from "amqplib";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { connectBroker, type Broker } from "../shared/broker.ts";
import { createLogger } from "../shared/log.ts";
import { eventKey, heartbeatKey, type Event } from "../shared/protocol.ts";
import { generateKeyPair, parseSigningKey, parseVerifyKeys, verifyBody } from "../shared/signing.ts";
import { loadWebhookConfig } from "../webhook.ts";
import { createApp } from "../webhook/app.ts";
import { createCommandSender } from "../webhook/deployer.ts";
import { createDriver } from "../webhook/driver.ts";
import { followHistory } from "../webhook/history.ts";
import { createRecorder, createSealer } from "../webhook/records.ts";
import { createView } from "../webhook/view.ts";
import { AMQP_URL, command, openFleet, rabbitmqctl, sign, startProcess, waitUntil, type Fleet } from "./helpers.ts";

const API_KEY = "history-test-key-0123456789";
const FIXTURES = join(import.meta.dir, "fixtures", "webhooks");
const success = new Uint8Array(readFileSync(join(FIXTURES, "codeship-success-master.json")));
const keys = generateKeyPair();
const quiet = createLogger("error");

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fleetOfOwn(): Promise<Fleet> {
  const fleet = await openFleet("wh");
  cleanups.push(() => fleet.cleanup());
  return fleet;
}

/**
 * A webhook app in this process, connected to the broker with its history read.
 * `beforeSetup` runs before each connection's setup (a test can hold a reconnect there).
 */
async function webhook(fleet: string, name = "one", options: { beforeSetup?: () => Promise<void> } = {}) {
  const config = loadWebhookConfig({
    ARBEIDER_FLEET: fleet,
    ARBEIDER_SIGNING_KEY_FILE: "/not/read/here",
    ARBEIDER_API_KEY: API_KEY,
    CODESHIP_PROJECT_ID: "412345",
    ARBEIDER_HISTORY_MAX_AGE: "1h",
  });
  const view = createView();
  const signingKey = parseSigningKey(keys.signingPem);
  const sealer = createSealer(signingKey, parseVerifyKeys(keys.verifyPem));
  const follow = followHistory({ fleet, maxAge: "1h", view, log: quiet, sealer });
  let disconnects = 0;
  const publish: Broker["publish"] = (...args) => broker.publish(...args);
  const driver = createDriver({
    fleet, view, log: quiet, converge: "missed", queueType: "classic",
    record: createRecorder({ fleet, sealer, publish }),
    send: createCommandSender({ signingKey, publish, fleet }),
  });
  cleanups.push(async () => driver.stop());
  const broker: Broker = connectBroker({
    urls: [AMQP_URL],
    log: quiet,
    name: `webhook-history-test ${fleet} ${name}`,
    setup: async (channel, connection) => {
      await options.beforeSetup?.();
      await follow(channel, connection);
      await driver.setup(channel, connection);
    },
    onDisconnect: () => void disconnects++,
    backoffMs: { base: 50, max: 300 },
  });
  cleanups.push(() => broker.close());
  expect(await broker.waitConnected(10_000)).toBe(true);
  const app = createApp({ config, signingKey, sealer, publish, view, connected: () => broker.connected, log: quiet });
  const codeship = () => app.request(`/hooks/codeship?api_key=${API_KEY}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: success });
  const get = async (path: string) => (await app.request(path, { headers: { Authorization: `Bearer ${API_KEY}` } })).json();
  return { app, view, broker, driver, codeship, get, disconnects: () => disconnects };
}

/** Publishes a heartbeat as a worker would. */
async function beat(fleet: Fleet, node: string, groups: string[] = []) {
  const body = { v: 1, node, groups, commit: null, branch: null, busy: false, version: "test", at: new Date().toISOString() };
  (fleet.channel as unknown as { publish: Function }).publish(fleet.names.events, heartbeatKey(node), Buffer.from(JSON.stringify(body)));
  await (fleet.channel as unknown as { waitForConfirms(): Promise<void> }).waitForConfirms();
}

/** Publishes an event as a worker would. */
async function report(fleet: Fleet, event: Omit<Event, "v" | "at">) {
  const body = JSON.stringify({ v: 1, at: new Date().toISOString(), ...event });
  (fleet.channel as unknown as { publish: Function }).publish(fleet.names.events, eventKey(event.deployment), Buffer.from(body), { persistent: true });
  await (fleet.channel as unknown as { waitForConfirms(): Promise<void> }).waitForConfirms();
}

describe("webhook and broker", () => {
  test("a deployment is a created record in the history, then the driver's signed, persistent command on the node's key", async () => {
    const fleet = await fleetOfOwn();
    const node = await fleet.channel.assertQueue("", { exclusive: true });
    await fleet.channel.bindQueue(node.queue, fleet.names.commands, "node.web-1");
    const w = await webhook(fleet.fleet);
    await beat(fleet, "web-1");
    await waitUntil(() => w.view.nodes().length === 1, "the node's heartbeat");
    await waitUntil(() => w.driver.driving, "the webhook to drive rollouts");

    const res = await w.codeship();
    expect(res.status).toBe(202);
    const created = await fleet.waitEvent((e) => e.state === "created", "the created event");
    expect(created).toMatchObject({ expected: ["web-1"], waves: [["web-1"]] });
    const msg = await waitUntil(async () => (await fleet.channel.get(node.queue, { noAck: true })) || undefined, "the command on the node's queue");
    const sent = JSON.parse(msg.content.toString());
    expect(msg.properties.messageId).toBe(sent.id);
    expect(sent.id).not.toBe("codeship-70811234");
    expect(sent).toMatchObject({ deployment: "codeship-70811234", target: "node:web-1", command: "update", args: created.spec!.args });
    expect(msg.properties.deliveryMode).toBe(2);
    expect(msg.properties.contentType).toBe("application/json");
    expect(verifyBody(msg.content, msg.properties.headers?.["x-arbeider-signature"], parseVerifyKeys(keys.verifyPem))).toBe(true);
    await fleet.waitEvent((e) => (e as unknown as { decision?: string }).decision === "wave", "the wave decision in the history");
  });

  test("every message in the history stream, the webhook's position markers too, is persistent JSON with a timestamp", async () => {
    const fleet = await fleetOfOwn();
    const w = await webhook(fleet.fleet);
    expect((await w.codeship()).status).toBe(202);
    const connection = await amqp.connect(AMQP_URL);
    cleanups.push(() => connection.close());
    const reader = await connection.createChannel();
    await reader.prefetch(100);
    const seen: { headers: Record<string, unknown>; timestamp?: number; contentType?: string; deliveryMode?: number; body: string }[] = [];
    await reader.consume(
      fleet.names.history,
      (msg) => {
        if (!msg) return;
        seen.push({ ...msg.properties, headers: msg.properties.headers ?? {}, body: msg.content.toString() });
        reader.ack(msg);
      },
      { arguments: { "x-stream-offset": "first" } },
    );
    await waitUntil(() => seen.some((m) => m.body.includes('"state":"created"')), "the created event in the stream");
    expect(seen.some((m) => m.headers["x-arbeider-sync"] !== undefined)).toBe(true);
    for (const m of seen) expect([m.contentType, m.deliveryMode, typeof m.timestamp]).toEqual(["application/json", 2, "number"]);
  });

  test("a second webhook rebuilds the same view from the stream, and the same build is a duplicate there", async () => {
    const fleet = await fleetOfOwn();
    const first = await webhook(fleet.fleet, "first");
    const told: string[] = [];
    first.view.subscribe((m) => void (m.kind === "record" && m.record.kind === "event" && told.push(`${m.record.event.node ?? "-"} ${m.record.event.state}`)));
    expect((await first.codeship()).status).toBe(202);
    const id = "codeship-70811234";
    for (const node of ["n1", "n2"]) {
      await report(fleet, { deployment: id, command: id, node, state: "received" });
      await report(fleet, { deployment: id, command: id, node, state: "succeeded", commitAfter: "39cf93573039b61c6177ef04beaa5faf0a3fdfd7", durationMs: 5 });
    }
    await waitUntil(() => first.view.get(id)?.nodes.n2?.state === "succeeded", "the first webhook to see both nodes succeed");
    expect(first.view.get(id)?.state).toBe("succeeded");
    // Listeners (SSE) heard each event once, from the stream: the view's only writer.
    expect(told).toEqual(["- created", "n1 received", "n1 succeeded", "n2 received", "n2 succeeded"]);

    const second = await webhook(fleet.fleet, "second");
    expect(await second.get(`/api/deployments/${id}`)).toEqual(await first.get(`/api/deployments/${id}`));
    const again = await second.codeship();
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ deployment: id, duplicate: true });
    expect(fleet.events.filter((e) => e.state === "created")).toHaveLength(1);
  });

  test("the view learns nodes from heartbeats and records the online ones a deployment expects", async () => {
    const fleet = await fleetOfOwn();
    const w = await webhook(fleet.fleet);
    for (const node of ["web-1", "web-2"]) await beat(fleet, node, ["web"]);
    await waitUntil(() => w.view.nodes().length === 2, "two heartbeats");
    expect((await w.codeship()).status).toBe(202);
    const created = await fleet.waitEvent((e) => e.state === "created", "the created event");
    expect(created.expected).toEqual(["web-1", "web-2"]);
  });

  test("a webhook that starts after the nodes' last heartbeats knows them online at once, and an old heartbeat is not online", async () => {
    const fleet = await fleetOfOwn();
    // The first webhook declares the heartbeats stream; the heartbeats are sent before the second one starts.
    await webhook(fleet.fleet, "first");
    const now = Date.now();
    const beat = { v: 1, groups: ["web"], commit: null, branch: null, busy: false, version: "test" };
    const beats = [
      { ...beat, node: "web-1", at: new Date(now - 2_000).toISOString() },
      { ...beat, node: "web-2", at: new Date(now - 1_000).toISOString() },
      // Five minutes old: inside the window read at start, but long offline for a 15 s period.
      { ...beat, node: "gone", at: new Date(now - 300_000).toISOString() },
    ];
    for (const b of beats) {
      (fleet.channel as unknown as { publish: Function }).publish(fleet.names.events, heartbeatKey(b.node), Buffer.from(JSON.stringify(b)), { persistent: true });
    }
    await (fleet.channel as unknown as { waitForConfirms(): Promise<void> }).waitForConfirms();

    const later = await webhook(fleet.fleet, "later");
    const nodes = later.view.nodes();
    expect(nodes.map((n) => [n.node, n.online])).toEqual([["gone", false], ["web-1", true], ["web-2", true]]);
    expect(nodes.find((n) => n.node === "web-1")!.lastSeen).toBe(beats[0]!.at);
    expect((await later.codeship()).status).toBe(202);
    const created = await fleet.waitEvent((e) => e.state === "created", "the created event");
    expect(created.expected).toEqual(["web-1", "web-2"]);
  });

  test("a created record not signed by the webhook's key (a node could publish one) does not make the real build a duplicate", async () => {
    const fleet = await fleetOfOwn();
    const id = "codeship-70811234";
    const spec = command(fleet.fleet, { id, deployment: id, command: "update", args: { branch: "master" } });
    const forged = { v: 1, deployment: id, command: id, state: "created", at: spec.issuedAt, spec, expected: [] };
    const otherKey = parseSigningKey(generateKeyPair().signingPem);
    for (const signature of [undefined, sign(forged, otherKey).signature]) {
      (fleet.channel as unknown as { publish: Function }).publish(fleet.names.events, eventKey(id), Buffer.from(JSON.stringify(forged)), {
        persistent: true,
        headers: signature ? { "x-arbeider-signature": signature } : {},
      });
    }
    await (fleet.channel as unknown as { waitForConfirms(): Promise<void> }).waitForConfirms();

    const w = await webhook(fleet.fleet);
    expect(w.view.has(id)).toBe(false);
    expect(await (await w.codeship()).json()).toEqual({ deployment: id, duplicate: false });
    // The webhook's own, signed record is trusted by the next webhook: the build is a duplicate there.
    const again = await webhook(fleet.fleet, "again");
    expect(await (await again.codeship()).json()).toEqual({ deployment: id, duplicate: true });
  });

  test("a burst of CI deploys for a target with no node online supersedes each older one once, not once per newer one", async () => {
    const fleet = await fleetOfOwn();
    const w = await webhook(fleet.fleet);
    await waitUntil(() => w.driver.driving, "the webhook to drive rollouts");
    const build = (id: number) => new TextDecoder().decode(success).replaceAll("70811234", String(id));
    const hook = `/hooks/codeship?api_key=${API_KEY}`;
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => w.app.request(hook, { method: "POST", headers: { "Content-Type": "application/json" }, body: build(i + 1) })),
    );
    expect(answers.map((r) => r.status)).toEqual(answers.map(() => 202));
    const supersedes = () => fleet.events.filter((e) => (e as unknown as { decision?: string }).decision === "supersede");
    const superseded = () => w.view.all().filter((r) => r.superseded).length;
    // Every deploy but the newest (those issued in its millisecond too) is superseded, and each decision has come back.
    await waitUntil(() => superseded() >= 39 && supersedes().length >= superseded() && w.view.unfinished().length <= 1, "the older deploys superseded");
    expect(supersedes().length).toBeLessThanOrEqual(40);
  });

  test("a connection the broker closed is re-established, and the next webhook is accepted", async () => {
    const fleet = await fleetOfOwn();
    let hold: Promise<void> | undefined;
    let release!: () => void;
    const w = await webhook(fleet.fleet, "reconnecting", { beforeSetup: () => hold ?? Promise.resolve() });
    // The next connection waits in its setup until released: a reconnect quicker than a poll cannot hide the outage.
    hold = new Promise((resolve) => (release = resolve));
    closeConnection(`webhook-history-test ${fleet.fleet} reconnecting`);
    await waitUntil(() => w.disconnects() > 0, "the webhook to notice the closed connection");
    expect(w.broker.connected).toBe(false);
    expect((await w.codeship()).status).toBe(503);
    release();
    await waitUntil(() => w.broker.connected, "the webhook to reconnect");
    expect((await w.codeship()).status).toBe(202);
    // Events published after the reconnect still reach the view: the stream is followed from where it was.
    await report(fleet, { deployment: "codeship-70811234", command: "codeship-70811234", node: "n1", state: "succeeded" });
    await waitUntil(() => w.view.get("codeship-70811234")?.nodes.n1?.state === "succeeded", "the outcome after reconnecting");
  });
});

/** Makes the broker close the connection named `name`, as an operator or a broker restart would. */
function closeConnection(name: string): void {
  // The table format prints pids as close_connection takes them; the name is inside client_properties.
  const line = rabbitmqctl("list_connections", "--no-table-headers", "pid", "client_properties")
    .split("\n")
    .find((row) => row.includes(`"${name}"`));
  if (!line) throw new Error(`no connection named ${name}`);
  rabbitmqctl("close_connection", line.split("\t")[0], "closed by a test");
}

describe("broker module", () => {
  test("close() while waiting to reconnect leaves no timer behind: the process ends at once", async () => {
    // A broker nobody answers at and a 30 s backoff (random fixed high): only a forgotten timer keeps the process.
    const script = `
      import { connectBroker } from ${JSON.stringify(join(import.meta.dir, "..", "shared", "broker.ts"))};
      import { createLogger } from ${JSON.stringify(join(import.meta.dir, "..", "shared", "log.ts"))};
      Math.random = () => 0.99;
      const broker = connectBroker({ urls: ["amqp://guest:guest@127.0.0.1:1"], log: createLogger("warn"), name: "close test", backoffMs: { base: 30000, max: 30000 } });
      await new Promise((resolve) => setTimeout(resolve, 500));
      await broker.close();
      console.log("closed");
    `;
    const proc = startProcess(["bun", "-e", script], {});
    await proc.waitForLog("closed");
    const started = Date.now();
    const timer = setTimeout(() => proc.child.kill("SIGKILL"), 10_000);
    expect(await proc.exited).toBe(0);
    clearTimeout(timer);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(proc.output()).toContain("cannot connect to broker");
  }, 20_000);
});
