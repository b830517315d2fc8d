/**
 * `bun webhook.ts` (and `deno run -A webhook.ts`) as processes, for what only
 * a process shows: exit status 2 with one line naming a bad variable, a
 * broker that cannot be reached (503 with Retry-After, `/healthz` 503), and
 * the same file serving under Deno.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { makeKeys, openFleet, removeDirs, startProcess, stopAll, tempDir } from "./helpers.ts";
import { startWebhook } from "./stack.ts";

const API_KEY = "process-test-key-8c41e2f0";
const dir = tempDir();
const keys = makeKeys(join(dir, "keys"));

afterAll(async () => {
  await stopAll();
  removeDirs(dir);
});

const baseEnv = () => ({ ARBEIDER_SIGNING_KEY_FILE: keys.signingFile, ARBEIDER_API_KEY: API_KEY, CODESHIP_PROJECT_ID: "412345", PORT: "0", HOST: "127.0.0.1" });

async function exitOf(env: Record<string, string>) {
  const proc = startProcess(["bun", "webhook.ts"], env);
  const code = await proc.exited;
  return { code, output: proc.output() };
}

describe("webhook process", () => {
  test("a missing required variable: exit 2 and one line naming it", async () => {
    const { ARBEIDER_API_KEY: _, ...env } = baseEnv();
    const { code, output } = await exitOf(env);
    expect(code).toBe(2);
    expect(output).toBe("webhook: ARBEIDER_API_KEY: is required\n");
  });

  test("an unreadable signing key: exit 2 naming the variable", async () => {
    const { code, output } = await exitOf({ ...baseEnv(), ARBEIDER_SIGNING_KEY_FILE: join(dir, "nope.pem") });
    expect(code).toBe(2);
    expect(output).toStartWith("webhook: ARBEIDER_SIGNING_KEY_FILE: cannot read an Ed25519 private key");
    expect(output.trim().split("\n")).toHaveLength(1);
  });

  test("an earlier verify key that cannot be read: exit 2 naming the variable", async () => {
    const { code, output } = await exitOf({ ...baseEnv(), ARBEIDER_VERIFY_KEY_FILE: join(dir, "old-verify.pem") });
    expect(code).toBe(2);
    expect(output).toStartWith(`webhook: ARBEIDER_VERIFY_KEY_FILE: cannot use ${join(dir, "old-verify.pem")}`);
    expect(output.trim().split("\n")).toHaveLength(1);
  });

  test("a port that is taken or a host that is not this machine's: exit 2 and one line naming the variable", async () => {
    const taken = createServer().listen(0, "127.0.0.1");
    await once(taken, "listening");
    try {
      const port = String((taken.address() as AddressInfo).port);
      const inUse = await exitOf({ ...baseEnv(), PORT: port });
      expect(inUse.code).toBe(2);
      expect(inUse.output).toStartWith(`webhook: PORT: cannot listen on 127.0.0.1:${port}`);
      expect(inUse.output.trim().split("\n")).toHaveLength(1);
    } finally {
      taken.close();
    }
    const elsewhere = await exitOf({ ...baseEnv(), HOST: "no-such-host.invalid" });
    expect(elsewhere.code).toBe(2);
    expect(elsewhere.output).toStartWith("webhook: HOST: cannot listen on no-such-host.invalid:0");
    expect(elsewhere.output.trim().split("\n")).toHaveLength(1);
  });

  test("a broker nobody answers at: /healthz 503, and a deploy gets 503 with Retry-After", async () => {
    const proc = startProcess(["bun", "webhook.ts"], { ...baseEnv(), AMQP_URL: "amqp://guest:guest@127.0.0.1:1" });
    await proc.waitForLog('"msg":"listening"');
    const url = `http://127.0.0.1:${/"msg":"listening".*?"port":(\d+)/.exec(proc.output())![1]}`;
    await proc.waitForLog("cannot connect to broker");
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(503);
    const body = await Bun.file(join(import.meta.dir, "fixtures", "webhooks", "codeship-success-master.json")).bytes();
    const res = await fetch(`${url}/hooks/codeship?api_key=${API_KEY}`, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toBe("5");
    expect(await res.json()).toEqual({ error: "broker unavailable" });
    await proc.stop();
    expect(proc.output()).not.toContain(API_KEY);
  });

  test("deno run -A webhook.ts serves /healthz", async () => {
    const fleet = await openFleet("deno");
    try {
      const deno = join(import.meta.dir, "..", "node_modules", ".bin", "deno");
      const { proc, url } = await startWebhook({ ...baseEnv(), ARBEIDER_FLEET: fleet.fleet, ARBEIDER_HISTORY_MAX_AGE: "1h" }, [deno, "run", "-A", "webhook.ts"]);
      expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ ok: true });
      const unauthorized = await fetch(`${url}/api/deployments`);
      expect(unauthorized.status).toBe(401);
      expect(await proc.stop()).toBe(0);
    } finally {
      // Also when an expectation failed: the fleet's exchanges and history stream go (afterAll stops the process).
      await fleet.cleanup();
    }
  }, 60_000);
});
