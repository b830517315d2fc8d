/**
 * `make dist` (docs/docker-and-systemd.md): `dist/worker.js` and `dist/webhook.js`
 * each run alone with `bun` from an empty folder, no `node_modules` anywhere
 * above it, as `COPY dist/worker.js` puts them in a Docker image. The worker
 * answers a signed ping; the webhook answers `/healthz` and serves the page.
 */
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { ROOT, head, startProcess, tempDir, removeDirs } from "./helpers.ts";
import { withNodes } from "./worker-fixture.ts";
import { startWebhook } from "./stack.ts";

/** A copy of `dist/<file>` alone in a fresh folder. */
function isolate(file: string): string {
  const dir = tempDir("arbeider-dist-");
  copyFileSync(join(ROOT, "dist", file), join(dir, file));
  for (let up = dir; up !== dirname(up); up = dirname(up)) expect(existsSync(join(up, "node_modules"))).toBe(false);
  return dir;
}

test("make dist writes single-file bundles that run from an empty folder with only bun", async () => {
  const build = spawnSync("make", ["dist"], { cwd: ROOT, encoding: "utf8" });
  expect(build.status, build.stderr).toBe(0);
  const workerDir = isolate("worker.js");
  const webhookDir = isolate("webhook.js");
  try {
    await withNodes([{ id: "dist-1" }], async (nodes) => {
      const worker = startProcess(["bun", "worker.js"], { LOG_LEVEL: "debug", ...nodes.envOf("dist-1") }, workerDir);
      try {
        await Promise.race([
          worker.waitForLog('"msg":"consuming"', 30_000),
          worker.exited.then((code) => Promise.reject(new Error(`dist/worker.js exited with ${code}:\n${worker.output()}`))),
        ]);
        const ping = await nodes.send({ command: "ping", args: {} });
        const outcome = await nodes.outcome(ping, "dist-1");
        expect(outcome.state).toBe("succeeded");
        expect(outcome.commitAfter).toBe(head(nodes.repos["dist-1"]));
      } finally {
        await worker.stop(5000);
      }

      const apiKey = "dist-test-key-0123456789";
      const webhook = await startWebhook(
        { ARBEIDER_FLEET: nodes.fleet.fleet, ARBEIDER_SIGNING_KEY_FILE: nodes.keys.signingFile, ARBEIDER_API_KEY: apiKey },
        ["bun", "webhook.js"],
        webhookDir,
      );
      try {
        expect(await (await fetch(`${webhook.url}/healthz`)).json()).toEqual({ ok: true });
        const page = await fetch(`${webhook.url}/`, { headers: { authorization: `Basic ${btoa(`ops:${apiKey}`)}` } });
        expect(page.status).toBe(200);
        expect(await page.text()).toContain(`fleet <strong>${nodes.fleet.fleet}</strong>`);
      } finally {
        await webhook.proc.stop(5000);
      }
    }, "dist");
  } finally {
    removeDirs(workerDir, webhookDir);
  }
}, 60_000);
