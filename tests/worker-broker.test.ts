/**
 * The broker from the worker's side: it declares no exchange (the webhook
 * does), so a missing commands exchange is said in one clear line and retried
 * until it exists; a node queue that exists with another type ends the worker
 * with status 2 and one line naming ARBEIDER_QUEUE_TYPE; a quorum node queue
 * has a delivery limit and a dead-letter exchange, which a per-node user needs
 * write permission on to declare it.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { randomUUID } from "node:crypto";
import { AMQP_URL, rabbitmqctl, startProcess, stopAll } from "./helpers.ts";
import { waitUntil, withNodes } from "./worker-fixture.ts";

setDefaultTimeout(60_000);
afterAll(stopAll);

test.concurrent("a worker whose commands exchange is missing says so and retries until the webhook has declared it", () =>
  withNodes([{ id: "n1" }], async (t) => {
    const { commands } = t.fleet.names;
    await t.fleet.channel.deleteExchange(commands);
    const worker = startProcess(["bun", "worker.ts"], t.envOf("n1"));
    try {
      await worker.waitForLog(`NOT_FOUND - no exchange '${commands}' in vhost '/'\\" (is the webhook running, with the same ARBEIDER_FLEET? It declares the exchanges)`);
      expect(worker.child.exitCode).toBeNull();
      await t.fleet.channel.assertExchange(commands, "topic", { durable: true });
      await worker.waitForLog('"msg":"consuming"', 30_000);
      expect(await t.outcome(await t.send({ command: "ping", args: {} }), "n1")).toMatchObject({ state: "succeeded" });
    } finally {
      await worker.stop(5000);
    }
  }),
);

const mismatches: [string, Record<string, unknown>, Record<string, string>, string][] = [
  ["a quorum queue where classic is configured", { "x-queue-type": "quorum" }, {}, "already exists as a quorum queue, not classic: set ARBEIDER_QUEUE_TYPE=quorum"],
  ["a classic queue where quorum is configured", {}, { ARBEIDER_QUEUE_TYPE: "quorum" }, "already exists as a classic queue, not quorum: set ARBEIDER_QUEUE_TYPE=classic"],
];
for (const [name, existing, env, problem] of mismatches) {
  test.concurrent(`a worker that finds ${name} exits 2 with one line naming ARBEIDER_QUEUE_TYPE`, () =>
    withNodes([{ id: "n1" }], async (t) => {
      const queue = t.fleet.names.nodeQueue("n1");
      // As a worker of the other type made it: only the type differs.
      await t.fleet.channel.assertQueue(queue, { durable: true, arguments: { "x-expires": 7 * 24 * 3600 * 1000, ...existing } });
      const worker = startProcess(["bun", "worker.ts"], t.envOf("n1", env));
      try {
        await waitUntil(() => worker.child.exitCode !== null, "the worker to exit", 20_000);
        expect(await worker.exited).toBe(2);
        const lines = worker.output().trim().split("\n").filter((line) => !line.startsWith("{"));
        expect(lines).toEqual([`arbeider worker: ARBEIDER_QUEUE_TYPE: queue ${queue} ${problem}, or delete the queue while the worker is stopped (rabbitmqctl delete_queue ${queue}; the commands queued in it go too)`]);
      } finally {
        await worker.stop(5000);
      }
    }),
  );
}

/** A broker user for node `node` of `fleet`: configure its queue, write events and the queue (and `dead` if asked), read commands and the queue. */
function nodeUser(fleet: string, node: string, withDead: boolean) {
  const name = `arbeider-test-${randomUUID().slice(0, 8)}`;
  const password = randomUUID();
  const prefix = `^arbeider\\.${fleet}\\.`;
  const q = `node\\.${node}`;
  rabbitmqctl("add_user", name, password);
  rabbitmqctl("set_permissions", "-p", "/", name, `${prefix}${q}$`, `${prefix}(events|${q}${withDead ? "|dead" : ""})$`, `${prefix}(commands|${q})$`);
  const url = new URL(AMQP_URL);
  url.username = name;
  url.password = password;
  return { url: url.toString(), remove: () => rabbitmqctl("delete_user", name) };
}

test.concurrent("a quorum node queue dead-letters past a delivery limit; a per-node user declares it with write permission on the dead-letter exchange", () =>
  withNodes([{ id: "q1" }], async (t) => {
    const fleet = t.fleet.fleet;
    const [without, allowed] = [nodeUser(fleet, "q1", false), nodeUser(fleet, "q1", true)];
    const quorum = { ARBEIDER_QUEUE_TYPE: "quorum" };
    const refused = startProcess(["bun", "worker.ts"], t.envOf("q1", { ...quorum, AMQP_URL: without.url }));
    try {
      await refused.waitForLog(`ACCESS_REFUSED - access to exchange 'arbeider.${fleet}.dead'`);
      await refused.stop(5000);
      await t.start("q1", { ...quorum, AMQP_URL: allowed.url });
      expect(await t.outcome(await t.send({ command: "ping", args: {} }), "q1")).toMatchObject({ state: "succeeded" });
      const line = rabbitmqctl("list_queues", "name", "type", "arguments").split("\n").find((l) => l.startsWith(`${t.fleet.names.nodeQueue("q1")}\t`));
      expect(line).toContain("quorum");
      expect(line).toContain(`{"x-delivery-limit",5}`);
      expect(line).toContain(`{"x-dead-letter-exchange","arbeider.${fleet}.dead"}`);
    } finally {
      await refused.stop(5000);
      without.remove();
      allowed.remove();
    }
  }),
);
