/**
 * The worker runs under Deno exactly as it is (`deno run -A worker.ts`), with
 * the Deno that `make install` brings from npm, and answers a signed ping.
 * (The webhook under Deno: tests/webhook-process.test.ts.)
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT, head } from "./helpers.ts";
import { withNodes } from "./worker-fixture.ts";

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
