/**
 * The fleet on a real three-node RabbitMQ cluster started once for this file
 * (scripts/cluster.ts): quorum node queues with a delivery limit and
 * dead-lettering, streams with a replica on every node, every process given
 * the whole URL list (each shuffles it). Then one node at a time is lost
 * while deployments run: `kill -9` of the node leading most node queues in
 * the middle of a deployment, `kill -9` of the node the webhook is connected
 * to, and a graceful stop of another node in the middle of a deployment.
 * After each, the deployment finishes with update.sh run exactly once per
 * node, the webhook answers /healthz 200 within 30 s, and no request waits
 * unbounded. Each lost node is started again on its data (it rejoins by
 * itself) and the fleet settles before the next loss, so the cluster never
 * has fewer than two members.
 *
 * Deployments go through `deploy()`: the first loss hits a rollout in two
 * waves in the middle of its first, the others an update of every node at once.
 */
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { chmodSync, existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { rabbitmqctl, startCluster, waitForMembers, type BrokerNode, type Cluster } from "../scripts/cluster.ts";
import { removeDirs, stopAll, tempDir, waitUntil } from "./helpers.ts";
import { skipNote } from "./skip.ts";
import { startRemoteStack, type RemoteStack } from "./remote-stack.ts";

// Private brokers run as the rabbitmq user through Debian's wrapper, which needs root.
const reason = process.getuid?.() !== 0 ? "needs root to start private RabbitMQ nodes" : !existsSync("/usr/sbin/rabbitmq-server") ? "needs Debian's rabbitmq-server" : undefined;
const { testIf, title } = skipNote("cluster", reason);

const NODES = ["c1", "c2", "c3"];

describe("a three-node cluster", () => {
  const dir = tempDir("arbeider-cluster-");
  // The nodes run as the rabbitmq user, who must reach their folders inside this one.
  chmodSync(dir, 0o755);
  const fleet = `cl-${crypto.randomUUID().slice(0, 8)}`;
  let cluster: Cluster;
  let stack: RemoteStack;
  const health = healthWatch();
  /** A node started again after it was lost; the next loss waits for it. */
  let rejoining: Promise<void> = Promise.resolve();

  beforeAll(async () => {
    if (reason) return;
    const started = Date.now();
    cluster = await startCluster(join(dir, "cluster"));
    console.log(`cluster of 3 ready in ${Date.now() - started} ms`);
    const shared = { AMQP_URL: cluster.urls, ARBEIDER_QUEUE_TYPE: "quorum" };
    stack = await startRemoteStack({ dir: join(dir, "fleet"), fleet, shared, nodes: Object.fromEntries(NODES.map((id) => [id, {}])) });
    health.start(stack.webhook.url);
  }, 120_000);
  afterAll(async () => {
    health.stop();
    await stopAll();
    await rejoining.catch(() => {});
    await cluster?.remove();
    removeDirs(dir);
  }, 60_000);

  const via = () => cluster.nodes.find((node) => node.pid() !== undefined)!.name;
  const nodeOf = (port: string) => cluster.nodes.find((node) => String(node.port) === port)!;
  /** The cluster node a process is connected to now, from its last connection line; undefined while it reconnects. */
  const connectedNode = (output: string) => {
    const last = [...output.matchAll(/"msg":"(connected to broker|lost broker connection)[^"]*".*?"broker":"amqp:\/\/guest:\*\*\*@127\.0\.0\.1:(\d+)"/g)].at(-1);
    return last?.[1] === "connected to broker" ? nodeOf(last[2]!) : undefined;
  };
  /** Every node online at the webhook: a deployment made now expects them all. */
  const allOnline = async () => {
    const res = await fetch(`${stack.webhook.url}/api/nodes`, { headers: { authorization: `Bearer ${stack.apiKey}` } });
    const { nodes } = (await res.json()) as { nodes: { node: string; online: boolean }[] };
    return NODES.every((id) => nodes.some((n) => n.node === id && n.online));
  };
  /** Waits until every process is connected, the webhook healthy and every node online there, so a loss starts from a settled fleet. */
  const settled = () =>
    waitUntil(
      async () => processes().every((p) => connectedNode(p.output())) && (await fetch(`${stack.webhook.url}/healthz`)).status === 200 && (await allOnline()),
      "every process connected, the webhook healthy and every node online",
      40_000,
      200,
    );
  const processes = () => [stack.webhook.proc, ...Object.values(stack.workers)];
  const lostConnections = () => processes().reduce((sum, p) => sum + p.output().split('"msg":"lost broker connection').length - 1, 0);
  const gate = {
    close: () => rmSync(join(stack.markers, "open"), { force: true }),
    open: () => writeFileSync(join(stack.markers, "open"), ""),
  };
  /** A commit on master (update.sh waits for the gate while `gate` is in the checkout) and its deployment. */
  async function deploy(message: string, strategy?: string): Promise<string> {
    const commit = stack.origin.commit("master", { "gate": "update.sh waits for markers/open\n", VERSION: `${message}\n` }, message);
    return stack.deploy({ command: "update", args: { branch: "master", commit }, ...(strategy ? { strategy } : {}) });
  }
  /** Every node succeeded and ran update.sh exactly once for `id`. */
  async function expectDoneOnce(id: string): Promise<void> {
    const done = await stack.finished(id, 90_000);
    expect({ state: done.state, nodes: Object.fromEntries(NODES.map((n) => [n, done.nodes[n]?.state])) }).toEqual({
      state: "succeeded",
      nodes: Object.fromEntries(NODES.map((n) => [n, "succeeded"])),
    });
    expect(NODES.map((n) => stack.runs(n, id))).toEqual([1, 1, 1]);
  }
  /** Loses `node` by `how` and starts it again in the background (`rejoining`); resolves with when it was gone. */
  async function lose(node: BrokerNode, how: "kill" | "stop"): Promise<number> {
    const lostBefore = lostConnections();
    await (how === "kill" ? node.kill() : node.stop());
    const lostAt = Date.now();
    const what = `${how === "kill" ? "kill -9" : "graceful stop"} of ${node.name}`;
    void waitUntil(() => lostConnections() - lostBefore, "a connection lost", 10_000, 100).then(
      (felt) => console.log(`${what}: ${felt} connection(s) of the fleet lost`),
      () => console.log(`${what}: no connection of the fleet was on it`),
    );
    rejoining = node.start().then(() => waitForMembers(node.name, cluster.nodes.map((n) => n.name), 60_000));
    return lostAt;
  }
  /** The webhook answers /healthz 200 again within 30 s of `lostAt`. */
  async function expectHealthyAgain(lostAt: number): Promise<void> {
    await waitUntil(() => health.healthySince(lostAt), "/healthz 200 after the loss", 30_000, 100);
    const healthyMs = health.healthySince(lostAt)! - lostAt;
    console.log(`webhook healthy ${healthyMs} ms after the loss`);
    expect(healthyMs).toBeLessThan(30_000);
  }

  testIf(title("node queues are quorum queues that dead-letter after 5 deliveries; the streams and the dead-letter queue are replicated on every node"), async () => {
    type Listed = { name: string; type: string; arguments: [string, string, unknown][]; members: string[] };
    const listed: Listed[] = JSON.parse(await rabbitmqctl("-n", via(), "list_queues", "name", "type", "arguments", "members", "--formatter", "json"));
    // Arguments come as [name, type, value] triples.
    const byName = Object.fromEntries(
      listed
        .filter((q) => q.name.startsWith(`arbeider.${fleet}.`))
        .map((q) => [q.name.slice(`arbeider.${fleet}.`.length), { ...q, arguments: Object.fromEntries(q.arguments.map(([k, , value]) => [k, value])) }]),
    );
    const everyNode = cluster.nodes.map((n) => n.name).sort();
    for (const id of NODES) {
      expect(byName[`node.${id}`]).toMatchObject({ type: "quorum", arguments: { "x-delivery-limit": 5, "x-dead-letter-exchange": `arbeider.${fleet}.dead` } });
      expect(byName[`node.${id}`]!.members.sort()).toEqual(everyNode);
    }
    for (const name of ["history", "heartbeats"]) {
      expect(byName[name]).toMatchObject({ type: "stream", arguments: { "x-initial-cluster-size": 3 } });
      expect(byName[name]!.members.sort()).toEqual(everyNode);
    }
    expect(byName.dead).toMatchObject({ type: "quorum" });
    expect(byName.dead!.members.sort()).toEqual(everyNode);
  }, 30_000);

  testIf(title("kill -9 of the node leading the node queues in the middle of a rollout's first wave: the next wave goes out, it finishes, update.sh ran once per node, the webhook is healthy within 30 s"), async () => {
    const leaders: { name: string; leader: string }[] = JSON.parse(await rabbitmqctl("-n", via(), "list_queues", "name", "leader", "--formatter", "json"));
    const count = (node: string) => leaders.filter((q) => q.name.startsWith(`arbeider.${fleet}.node.`) && q.leader === node).length;
    const leader = [...cluster.nodes].sort((a, b) => count(b.name) - count(a.name))[0]!;
    await settled();
    gate.close();
    const id = await deploy("kill the leader", "waves=1");
    // The first wave (c1) is running; the others wait for it.
    await waitUntil(() => stack.runs("c1", id) === 1, "update.sh running in the first wave", 30_000, 100);
    expect([stack.runs("c2", id), stack.runs("c3", id)]).toEqual([0, 0]);
    const lostAt = await lose(leader, "kill");
    gate.open();
    await expectDoneOnce(id);
    await expectHealthyAgain(lostAt);
  }, 120_000);

  testIf(title("kill -9 of the node the webhook is connected to: /healthz is 200 again within 30 s, no request hangs, and the next deployment goes through"), async () => {
    await rejoining;
    await settled();
    const node = connectedNode(stack.webhook.proc.output())!;
    const killedAt = await lose(node, "kill");
    // A request right after the loss is answered within the confirm timeout (202, or 503 to retry), never left hanging.
    const request = await fetch(`${stack.webhook.url}/api/deployments`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ command: "ping" }),
      signal: AbortSignal.timeout(20_000),
    });
    expect([202, 503]).toContain(request.status);
    expect(Date.now() - killedAt).toBeLessThan(12_000);
    console.log(`a request right after the kill of the webhook's node: ${request.status} in ${Date.now() - killedAt} ms`);
    await expectHealthyAgain(killedAt);
    await settled();
    const id = await deploy("after the webhook's node");
    await expectDoneOnce(id);
  }, 120_000);

  testIf(title("a graceful stop of another node in the middle of a deployment: it finishes, update.sh ran once per node, the webhook is healthy within 30 s"), async () => {
    await rejoining;
    await settled();
    const webhookNode = connectedNode(stack.webhook.proc.output());
    // The other node most workers are on, so their connections see the stop.
    const onNode = (node: BrokerNode) => NODES.filter((n) => connectedNode(stack.workers[n]!.output()) === node).length;
    const other = cluster.nodes.filter((n) => n !== webhookNode).sort((a, b) => onNode(b) - onNode(a))[0]!;
    gate.close();
    const id = await deploy("stop another node");
    await waitUntil(() => NODES.every((n) => stack.runs(n, id) === 1), "update.sh running on every node", 30_000, 100);
    const lostAt = await lose(other, "stop");
    gate.open();
    await expectDoneOnce(id);
    await expectHealthyAgain(lostAt);
  }, 120_000);

  testIf(title("no /healthz answer took longer than the confirm timeout, all along"), () => {
    console.log(`slowest /healthz: ${health.slowestMs()} ms over ${health.count()} probes`);
    const output = processes().map((p) => p.output()).join("");
    const seen = (pattern: RegExp) => output.split("\n").filter((line) => pattern.test(line)).length;
    console.log(
      `log lines of the fleet: ${lostConnections()} lost connections, ${seen(/INTERNAL_ERROR/)} with 541, ${seen(/replica on the local node/)} with 406 no local replica, ` +
        `${seen(/giving the publish channel up/)} publish channels given up, ${seen(/Cannot append a marker/)} markers not confirmed, ${seen(/event not confirmed yet/)} event retries`,
    );
    expect(health.count()).toBeGreaterThan(20);
    expect(health.slowestMs()).toBeLessThan(10_000);
  });
});

/** Probes /healthz every 200 ms: when it answered 200 again, and the slowest answer. */
function healthWatch() {
  const answers: { at: number; status: number; ms: number }[] = [];
  let timer: ReturnType<typeof setInterval> | undefined;
  let inFlight = false;
  return {
    start(url: string) {
      timer = setInterval(async () => {
        if (inFlight) return;
        inFlight = true;
        const at = Date.now();
        const status = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(30_000) }).then((r) => r.status, () => 0);
        answers.push({ at, status, ms: Date.now() - at });
        inFlight = false;
      }, 200);
    },
    stop: () => clearInterval(timer),
    /** The time of the first 200 after a non-200 answer that came after `since`, if any. */
    healthySince(since: number): number | undefined {
      const after = answers.filter((a) => a.at >= since);
      const down = after.findIndex((a) => a.status !== 200);
      if (down < 0) return after.length > 0 ? after[0]!.at : undefined;
      return after.slice(down).find((a) => a.status === 200)?.at;
    },
    slowestMs: () => Math.max(0, ...answers.map((a) => a.ms)),
    count: () => answers.length,
  };
}
