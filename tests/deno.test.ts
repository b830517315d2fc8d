/**
 * The worker runs under Deno exactly as it is (`deno run -A worker.ts`), with
 * the Deno that `make install` brings from npm: it answers a signed ping, and
 * its first SIGTERM lets the command in hand finish before it exits 0.
 * (The webhook under Deno: tests/webhook-process.test.ts.)
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT, head } from "./helpers.ts";
import { startGatedUpdate, statesOf, waitUntil, withNodes } from "./worker-fixture.ts";

const DENO = join(ROOT, "node_modules/.bin/deno");

test("deno run -A worker.ts answers a signed ping with its commit", async () => {
  await withNodes([{ id: "deno-1" }], async (nodes) => {
    await nodes.start("deno-1", {}, [DENO, "run", "-A", "worker.ts"]);
    const ping = await nodes.send({ command: "ping", args: {} });
    const outcome = await nodes.outcome(ping, "deno-1");
    expect(outcome.state).toBe("succeeded");
    expect(outcome.commitAfter).toBe(head(nodes.repos["deno-1"]));
  }, "deno");
}, 60_000);

test("under deno run -A worker.ts, the first SIGTERM is not taken for a second: the command in hand finishes and the worker exits 0", async () => {
  await withNodes([{ id: "deno-2" }], async (t) => {
    const worker = await t.start("deno-2", {}, [DENO, "run", "-A", "worker.ts"]);
    const { cmd, open } = await startGatedUpdate(t, "deno-2");
    worker.child.kill("SIGTERM");
    await waitUntil(() => t.fleet.heartbeats.find((h) => h.node === "deno-2" && h.stopping === true), "a stopping heartbeat");
    expect(worker.child.exitCode).toBeNull();
    open();
    expect(await worker.exited).toBe(0);
    expect(statesOf(t.fleet, cmd.deployment, "deno-2")).toEqual(["received", "started", "succeeded"]);
  }, "deno");
}, 60_000);
