/**
 * A broker that stops answering without closing the connection (a frozen
 * host, a partition), made with TCP proxies in front of the real broker that
 * can stop forwarding: a webhook answers 503 within ARBEIDER_CONFIRM_TIMEOUT
 * instead of hanging, notices the dead peer through AMQP heartbeats within
 * seconds, and is healthy again through the next URL of its list; one whose
 * history position marker is never confirmed does the same. Also, on
 * the real broker: a nacked publish (a full queue that rejects publishes) and
 * a confirm that never comes both give the publish channel up, a confirmed
 * send on the setup channel (the history's position marker) is bounded too,
 * and the next publish works.
 */
import { afterAll, expect, test } from "bun:test";
import amqp from "amqplib";
import { createServer, connect, type Server, type Socket } from "node:net";
import { BrokerUnavailable, connectBroker, sendConfirmed, type ConfirmChannel } from "../shared/broker.ts";
import type { Logger } from "../shared/log.ts";
import { AMQP_URL, makeKeys, openFleet, removeDirs, stopAll, tempDir, waitUntil } from "./helpers.ts";
import { startWebhook, type Webhook } from "./stack.ts";

afterAll(stopAll);

interface Proxy {
  url: string;
  /** Open client connections through this proxy. */
  connections(): number;
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy to the broker whose forwarding can be frozen (sockets stay open,
 * nothing passes). With a `trap`, the first client bytes holding its pattern,
 * through any proxy sharing the trap, freeze that one connection (those bytes
 * never reach the broker): a publish whose confirm never comes.
 */
async function freezableProxy(trap?: { pattern: string; sprung: boolean }): Promise<Proxy> {
  const target = new URL(AMQP_URL);
  const pairs = new Set<[Socket, Socket]>();
  let frozen = false;
  const server: Server = createServer((client) => {
    const upstream = connect({ host: target.hostname, port: Number(target.port || 5672) });
    const pair: [Socket, Socket] = [client, upstream];
    let caught = false;
    pairs.add(pair);
    client.on("data", (chunk: Buffer) => {
      if (trap && !trap.sprung && chunk.includes(trap.pattern)) caught = trap.sprung = true;
      if (!frozen && !caught) upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => void (frozen || caught || client.write(chunk)));
    for (const [socket, other] of [pair, [upstream, client] as const]) {
      socket.on("error", () => {});
      socket.on("close", () => (other.destroy(), pairs.delete(pair)));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    connections: () => pairs.size,
    freeze: () => void (frozen = true),
    thaw: () => void (frozen = false),
    close: () => new Promise<void>((resolve) => (pairs.forEach(([a, b]) => (a.destroy(), b.destroy())), server.close(() => resolve()))),
  };
}

/** A logger that keeps its lines, for assertions. */
function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (msg: string, fields?: Record<string, unknown>) => void lines.push(`${msg} ${JSON.stringify(fields ?? {})}`);
  return { lines, debug: log, info: log, warn: log, error: log } as unknown as Logger & { lines: string[] };
}

/**
 * A webhook process with AMQP_URL = two proxies (`query` added to each URL)
 * and a 2 s confirm timeout, in a fleet of its own; `startMs` is how long it
 * took to become healthy. Everything is removed afterwards.
 */
async function withProxiedWebhook(
  options: { trap?: { pattern: string; sprung: boolean }; query?: string },
  body: (it: { webhook: Webhook; apiKey: string; proxies: Proxy[]; startMs: number }) => Promise<void>,
): Promise<void> {
  const proxies = [await freezableProxy(options.trap), await freezableProxy(options.trap)];
  const dir = tempDir();
  const fleet = await openFleet("proxied");
  try {
    const apiKey = `proxied-${crypto.randomUUID()}`;
    const started = Date.now();
    const webhook = await startWebhook({
      AMQP_URL: proxies.map((proxy) => `${proxy.url}${options.query ?? ""}`).join(","),
      ARBEIDER_FLEET: fleet.fleet,
      ARBEIDER_SIGNING_KEY_FILE: makeKeys(dir).signingFile,
      ARBEIDER_API_KEY: apiKey,
      ARBEIDER_CONFIRM_TIMEOUT: "2",
    });
    await body({ webhook, apiKey, proxies, startMs: Date.now() - started });
    await webhook.proc.stop(5000);
  } finally {
    await stopAll();
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await fleet.cleanup();
    removeDirs(dir);
  }
}

test("a webhook whose broker freezes answers 503 within the confirm timeout, and is healthy again through the next URL within 30 s", async () => {
  await withProxiedWebhook({}, async ({ webhook, apiKey, proxies: [a, b] }) => {
    const deploy = () =>
      fetch(`${webhook.url}/api/deployments`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ command: "ping", allowEmpty: true }),
      });
    const health = async () => (await fetch(`${webhook.url}/healthz`)).status;
    expect((await deploy()).status).toBe(202);

    const [used, other] = a!.connections() > 0 ? [a!, b!] : [b!, a!];
    used.freeze();
    const frozenAt = Date.now();
    const refused = await deploy();
    const answeredMs = Date.now() - frozenAt;
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBeTruthy();
    expect(answeredMs).toBeLessThan(4000);

    // The frozen peer sends no heartbeats: the webhook gives the connection up (503) and reconnects elsewhere.
    await waitUntil(async () => (await health()) === 503 || (other.connections() > 0 && (await health()) === 200), "the dead peer noticed", 15_000, 100);
    const noticedMs = Date.now() - frozenAt;
    await waitUntil(async () => (await health()) === 200 && other.connections() > 0, "healthy through the other URL", 30_000 - noticedMs, 100);
    const healthyMs = Date.now() - frozenAt;
    expect(webhook.proc.output()).toContain("lost broker connection");
    expect((await deploy()).status).toBe(202);
    console.log(`frozen broker: 503 after ${answeredMs} ms, dead peer noticed after ${noticedMs} ms, healthy again after ${healthyMs} ms`);
  });
}, 60_000);

test("a webhook whose stream marker is never confirmed gives that connection up and is healthy through another URL within 30 s", async () => {
  // The marker's publish is lost on its way (as when the stream's leader dies); heartbeats are off, so only the confirm bound helps.
  const trap = { pattern: "x-arbeider-sync", sprung: false };
  await withProxiedWebhook({ trap, query: "?heartbeat=0" }, async ({ webhook, startMs }) => {
    expect(trap.sprung).toBe(true);
    expect(webhook.proc.output()).toContain("Cannot append a marker to the stream");
    expect(startMs).toBeLessThan(30_000);
    console.log(`lost stream marker: healthy through the other URL after ${startMs} ms`);
  });
}, 60_000);

test("a nacked publish and a missing confirm fail with BrokerUnavailable, give the publish channel up, and the next publish works", async () => {
  const proxy = await freezableProxy();
  const fleet = await openFleet("nack");
  const log = recordingLog();
  const full = `arbeider.${fleet.fleet}.full`;
  let setupChannel: ConfirmChannel | undefined;
  // No heartbeat, so the frozen connection stays open and only the confirm timeout ends the wait.
  const broker = connectBroker({
    urls: [`${proxy.url}?heartbeat=0`],
    log,
    name: `nack test ${fleet.fleet}`,
    confirmTimeoutMs: 1000,
    setup: async (channel) => {
      // A queue that is full and refuses more: the broker nacks every publish routed to it.
      const { messageCount } = await channel.assertQueue(full, { durable: true, arguments: { "x-max-length": 1, "x-overflow": "reject-publish" } });
      await channel.bindQueue(full, fleet.names.commands, "full");
      if (messageCount === 0) await sendConfirmed(channel, full, Buffer.from("{}"), {});
      setupChannel = channel;
    },
  });
  const body = new TextEncoder().encode("{}");
  try {
    expect(await broker.waitConnected(10_000)).toBe(true);
    const nacked = await broker.publish(fleet.names.commands, "full", body).catch((error) => error);
    expect(nacked).toBeInstanceOf(BrokerUnavailable);
    expect(nacked.message).toContain("refused");
    expect(log.lines.filter((line) => line.startsWith("giving the publish channel up"))).toHaveLength(1);
    await broker.publish(fleet.names.events, "deployment.x", body);

    proxy.freeze();
    const started = Date.now();
    const [publish, marker] = await Promise.all([
      broker.publish(fleet.names.events, "deployment.x", body).catch((error) => error),
      sendConfirmed(setupChannel!, full, Buffer.from(body), {}).catch((error) => error),
    ]);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(publish).toBeInstanceOf(BrokerUnavailable);
    expect(publish.message).toContain("no confirm within 1000 ms");
    expect(marker).toBeInstanceOf(BrokerUnavailable);
    expect(log.lines.filter((line) => line.startsWith("giving the publish channel up"))).toHaveLength(2);
    proxy.thaw();
    // The marker's channel was closed with its connection; a new connection serves the next publish.
    await waitUntil(async () => (await broker.publish(fleet.names.events, "deployment.x", body).then(() => true, () => false)), "a publish to work again", 20_000, 200);
  } finally {
    await broker.close();
    const side = await amqp.connect(AMQP_URL);
    await (await side.createChannel()).deleteQueue(full);
    await side.close();
    await proxy.close();
    await fleet.cleanup();
  }
}, 60_000);
