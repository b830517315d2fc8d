/**
 * Quorum node queues and their dead letters, on the real broker: a worker
 * that dies on a command again and again (SIGKILL while its update.sh runs,
 * then started again) gets it six times; then the queue dead-letters it, the
 * webhook reports the node `failed` with reason `delivery limit: ...`, the
 * deployment ends, and the node runs its next command at once.
 */
import { expect, test } from "bun:test";
import { randomUUID } from "node:crypto";
import amqp from "amqplib";
import { AMQP_URL, waitUntil } from "./helpers.ts";
import { apiClient } from "./remote-stack.ts";
import { startWebhook } from "./stack.ts";
import { withNodes } from "./worker-fixture.ts";

test("a command a worker crashed on six times is dead-lettered, reported failed with reason delivery limit, and the node runs the next one", async () => {
  await withNodes([{ id: "dl-1" }], async (nodes) => {
    const fleet = nodes.fleet.fleet;
    const apiKey = `dl-${randomUUID()}`;
    const quorum = { ARBEIDER_QUEUE_TYPE: "quorum" };
    const webhook = await startWebhook({ ...quorum, ARBEIDER_FLEET: fleet, ARBEIDER_SIGNING_KEY_FILE: nodes.keys.signingFile, ARBEIDER_API_KEY: apiKey });
    const api = apiClient(webhook.url, apiKey);
    try {
      const start = () => nodes.start("dl-1", { ...quorum, ARBEIDER_HEARTBEAT_SECONDS: "1" });
      let worker = await start();
      await waitUntil(async () => (await api("/api/nodes")).nodes.some((n: { online: boolean }) => n.online), "dl-1 online");
      // update.sh hangs on this commit: each run is ended by killing the worker.
      const commit = nodes.origin.commit("master", { hang: "update.sh waits\n" }, "a commit the worker dies on");
      const { deployment } = await api("/api/deployments", { command: "update", target: "node:dl-1", args: { branch: "master", commit } });
      for (let run = 1; run <= 6; run++) {
        await waitUntil(() => nodes.runs("dl-1").length === run, `update.sh run ${run}`, 20_000, 50);
        worker.child.kill("SIGKILL");
        await worker.exited;
        if (run < 6) worker = await start();
      }
      const failed = await waitUntil(async () => {
        const d = await api(`/api/deployments/${deployment}`);
        return d.state === "failed" ? d : undefined;
      }, "the deployment to fail", 20_000);
      expect(failed.nodes["dl-1"]).toMatchObject({ state: "failed", reason: expect.stringMatching(/^delivery limit: delivered 6 times/) });
      expect(webhook.proc.output()).toContain("command dead-lettered; reported failed");

      // Nothing of it is left: the node queue is free and the dead-letter queue empty.
      worker = await start();
      await waitUntil(async () => (await api("/api/nodes")).nodes.some((n: { online: boolean }) => n.online), "dl-1 online again");
      const { deployment: ping } = await api("/api/deployments", { command: "ping", target: "node:dl-1" });
      await waitUntil(async () => (await api(`/api/deployments/${ping}`)).nodes?.["dl-1"]?.state === "succeeded", "the ping to succeed on dl-1");
      expect(nodes.runs("dl-1")).toHaveLength(6);
      const connection = await amqp.connect(AMQP_URL);
      const channel = await connection.createChannel();
      expect((await channel.checkQueue(nodes.fleet.names.dead)).messageCount).toBe(0);
      expect((await channel.checkQueue(nodes.fleet.names.nodeQueue("dl-1"))).messageCount).toBe(0);
      await connection.close();
    } finally {
      await webhook.proc.stop(5000);
    }
  }, "dl");
}, 90_000);
