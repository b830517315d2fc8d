/**
 * `make demo` as a new user runs it (its `bun scripts/demo.ts`): two
 * rollouts, the second one rolled back on the canary by its health check
 * while the other two nodes never run it; it ends in well under a minute and
 * leaves nothing behind on the broker.
 */
import { expect, test } from "bun:test";
import { rabbitmqctl, ROOT } from "./helpers.ts";

test("the demo rolls a release out in waves, and rolls the canary back when the next one fails its health check", async () => {
  const started = Date.now();
  const child = Bun.spawn([process.execPath, "scripts/demo.ts"], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root" }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  expect({ code, err }).toEqual({ code: 0, err: "" });
  expect(Date.now() - started).toBeLessThan(60_000);
  expect(out).toMatch(/deployment codeship-\d+: succeeded\n    wave 1: node-1: succeeded\n    wave 2: node-2, node-3: succeeded/);
  expect(out).toMatch(/deployment codeship-\d+: rolled_back .*\n    wave 1: node-1: failed\n    wave 2: node-2, node-3: pending/);
  expect(out).toMatch(/node-1 +failed .* \(succeeded\)/);
  expect(out).toMatch(/node-2 +never ran/);
  expect(out).toContain("why: unhealthy:");
  const fleet = /removed fleet (demo-[0-9a-f]+)/.exec(out)?.[1];
  expect(fleet).toBeDefined();
  // Every checkout ends at Release 2: the canary back there, the others never left it.
  expect(out.split("\n").filter((line) => /^  \.demo\/node-\d +[0-9a-f]{7} \(master\) Release 2$/.test(line))).toHaveLength(6);
  expect(rabbitmqctl("list_queues", "name").split("\n").filter((name) => name.includes(`arbeider.${fleet}.`))).toEqual([]);
  expect(rabbitmqctl("list_exchanges", "name").split("\n").filter((name) => name.includes(`arbeider.${fleet}.`))).toEqual([]);
}, 90_000);
