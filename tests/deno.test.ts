/**
 * Both entry files run under Deno exactly as they are (`deno run -A`), with
 * the Deno that `make install` brings from npm: the webhook answers
 * `/healthz`, the worker answers a signed ping.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT, head, makeKeys, openFleet, removeDirs, tempDir } from "./helpers.ts";
import { withNodes } from "./worker-fixture.ts";
import { startWebhook } from "./stack.ts";

const DENO = join(ROOT, "node_modules/.bin/deno");

test("deno run -A webhook.ts connects and answers /healthz 200", async () => {
  const fleet = await openFleet("deno");
  const dir = tempDir();
  try {
    const keys = makeKeys(join(dir, "keys"));
    const webhook = await startWebhook(
      { ARBEIDER_FLEET: fleet.fleet, ARBEIDER_SIGNING_KEY_FILE: keys.signingFile, ARBEIDER_API_KEY: "deno-test-key-0123456789" },
      [DENO, "run", "-A", "webhook.ts"],
    );
    try {
      const health = await fetch(`${webhook.url}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ ok: true });
    } finally {
      expect(await webhook.proc.stop(5000)).toBe(0);
    }
  } finally {
    await fleet.cleanup();
    removeDirs(dir);
  }
}, 60_000);

test("deno run -A worker.ts answers a signed ping with its commit", async () => {
  await withNodes([{ id: "deno-1" }], async (nodes) => {
    await nodes.start("deno-1", {}, [DENO, "run", "-A", "worker.ts"]);
    const ping = await nodes.send({ command: "ping", args: {} });
    const outcome = await nodes.outcome(ping, "deno-1");
    expect(outcome.state).toBe("succeeded");
    expect(outcome.commitAfter).toBe(head(nodes.repos["deno-1"]));
  }, "deno");
}, 60_000);
