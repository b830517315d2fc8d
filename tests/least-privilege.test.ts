/**
 * The README's least-privilege RabbitMQ users, proven: the `set_permissions`
 * lines are read from README.md itself, a webhook and a worker run with users
 * that have exactly those permissions through a real deployment, and the
 * broker refuses the worker's user when it tries to publish a command.
 */
import { expect, test } from "bun:test";
import amqp from "amqplib";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AMQP_URL, ROOT, rabbitmqctl, waitUntil } from "./helpers.ts";
import { withNodes } from "./worker-fixture.ts";
import { startWebhook } from "./stack.ts";

/** The three permission patterns the README gives `user`, for fleet `shop`. */
export function readmePermissions(user: string): [configure: string, write: string, read: string] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const at = readme.indexOf(`rabbitmqctl set_permissions -p / ${user} \\`);
  if (at < 0) throw new Error(`README.md has no "rabbitmqctl set_permissions -p / ${user}" line`);
  const patterns = [...readme.slice(at).matchAll(/'([^']*)'/g)].slice(0, 3).map((m) => m[1]);
  return patterns as [string, string, string];
}

/** A broker user with the README's patterns for `readmeUser`, rewritten for `fleet` (and `node`). */
function addUser(readmeUser: string, fleet: string, node?: string) {
  const name = `arbeider-test-${randomUUID().slice(0, 8)}`;
  const password = randomUUID();
  const patterns = readmePermissions(readmeUser).map((p) => {
    const scoped = p.replaceAll("shop", fleet);
    return node ? scoped.replaceAll("web-1", node) : scoped;
  });
  rabbitmqctl("add_user", name, password);
  rabbitmqctl("set_permissions", "-p", "/", name, ...patterns);
  const url = new URL(AMQP_URL);
  url.username = name;
  url.password = password;
  return { name, url: url.toString(), remove: () => rabbitmqctl("delete_user", name) };
}

test("a worker and a webhook with only the README's permissions deploy, and the worker's user cannot publish a command", async () => {
  await withNodes([{ id: "lp-1", groups: ["web"] }], async (nodes) => {
    const fleet = nodes.fleet.fleet;
    const workerUser = addUser("arbeider-web-1", fleet, "lp-1");
    const webhookUser = addUser("arbeider-webhook", fleet);
    try {
      const apiKey = `lp-${randomUUID()}`;
      const webhook = await startWebhook({ AMQP_URL: webhookUser.url, ARBEIDER_FLEET: fleet, ARBEIDER_SIGNING_KEY_FILE: nodes.keys.signingFile, ARBEIDER_API_KEY: apiKey });
      try {
        await nodes.start("lp-1", { AMQP_URL: workerUser.url, ARBEIDER_HEARTBEAT_SECONDS: "1" });
        const api = async (path: string, body?: unknown) =>
          (await fetch(`${webhook.url}${path}`, {
            method: body ? "POST" : "GET",
            headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
            body: body ? JSON.stringify(body) : undefined,
          })).json();
        await waitUntil(async () => (await api("/api/nodes")).nodes.some((n: { node: string; online: boolean }) => n.node === "lp-1" && n.online), "lp-1 online");
        for (const request of [{ command: "ping" }, { command: "update", args: { branch: "master" } }]) {
          const { deployment } = await api("/api/deployments", request);
          const done = await waitUntil(async () => {
            const d = await api(`/api/deployments/${deployment}`);
            return d.state === "succeeded" || d.state === "failed" ? d : undefined;
          }, `${request.command} to finish`);
          expect(done.nodes["lp-1"].state).toBe("succeeded");
        }
      } finally {
        await webhook.proc.stop(5000);
      }

      // Publishing needs write permission on the exchange; the broker closes the channel with 403.
      const connection = await amqp.connect(workerUser.url);
      try {
        const channel = await connection.createConfirmChannel();
        const refused = new Promise<{ code?: number; message: string }>((resolve) => channel.on("error", resolve));
        channel.publish(nodes.fleet.names.commands, "all", Buffer.from("{}"));
        await channel.waitForConfirms().catch(() => {});
        const error = await refused;
        expect(error.code).toBe(403);
        expect(error.message).toContain("ACCESS_REFUSED");
      } finally {
        await connection.close().catch(() => {});
      }
    } finally {
      workerUser.remove();
      webhookUser.remove();
    }
  }, "lp");
}, 60_000);
