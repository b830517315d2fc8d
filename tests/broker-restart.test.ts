/**
 * A whole broker restart under a running worker. The shared broker cannot be
 * restarted without disturbing other test files, so this test starts a
 * private one the way `make rabbitmq` does on a machine without a broker
 * (scripts/rabbitmq.sh on a free port), stops it, starts it again on the same
 * data, and expects the same worker process to consume again and execute the
 * next command.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import {
  ROOT,
  cloneNode,
  command,
  head,
  makeKeys,
  makeOrigin,
  openFleet,
  rabbitmqctl,
  removeDirs,
  startWorker,
  stopAll,
  tempDir,
  waitUntil,
} from "./helpers.ts";

setDefaultTimeout(120_000);
afterAll(stopAll);

/** Whether nothing listens on `port` of 127.0.0.1. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A port for the broker whose Erlang distribution port (port + 20000) is free too. */
async function brokerPort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if ((await portFree(port)) && (await portFree(port + 20_000))) return port;
  }
}

/** `make rabbitmq` for `url`: returns its output, throws if it did not get a broker answering. */
function ensureBroker(url: string): string {
  const result = spawnSync("bash", ["scripts/rabbitmq.sh"], { cwd: ROOT, encoding: "utf8", env: { ...process.env, AMQP_URL: url } });
  if (result.status !== 0) throw new Error(`scripts/rabbitmq.sh failed: ${result.stdout}${result.stderr}`);
  return result.stdout;
}

const count = (text: string, fragment: string) => text.split(fragment).length - 1;

test("a worker survives a broker restart without a process restart and runs the next command", async () => {
  const port = await brokerPort();
  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  const brokerNode = `arbeider-${port}@localhost`;
  const dir = tempDir();
  let brokerUp = false;
  try {
    expect(ensureBroker(url)).toContain("starting a private broker");
    brokerUp = true;
    const keys = makeKeys(join(dir, "keys"));
    const origin = makeOrigin(dir);
    const repo = cloneNode(origin.origin, join(dir, "node"));
    const before = await openFleet("restart", url);
    const worker = await startWorker({
      AMQP_URL: url,
      ARBEIDER_FLEET: before.fleet,
      ARBEIDER_NODE_ID: "n1",
      ARBEIDER_REPO_DIR: repo,
      ARBEIDER_VERIFY_KEY_FILE: keys.verifyFile,
      ARBEIDER_HEARTBEAT_SECONDS: "60",
    });
    const ping = await before.publish(command(before.fleet, { command: "ping", args: {} }), keys.key);
    expect((await before.waitState(ping.deployment, "n1", ["succeeded", "failed", "rejected"])).state).toBe("succeeded");

    rabbitmqctl("-n", brokerNode, "stop");
    brokerUp = false;
    await worker.waitForLog("lost broker connection", 30_000);
    expect(ensureBroker(url)).toContain("starting a private broker");
    brokerUp = true;
    await waitUntil(() => count(worker.output(), '"msg":"consuming"') >= 2, "the worker to consume again", 60_000, 100);
    expect(worker.child.exitCode).toBeNull();

    // Exchanges and the node's queue are durable: a new connection finds them as they were.
    const after = await openFleet("restart", url, before.fleet);
    after.track("n1");
    const commit = origin.commit("master", { "VERSION": "2\n" }, "after the restart");
    const update = await after.publish(command(after.fleet, { command: "update", args: { branch: "master", commit } }), keys.key);
    const outcome = await after.waitState(update.deployment, "n1", ["succeeded", "failed", "rejected"]);
    expect(outcome.state).toBe("succeeded");
    expect(head(repo)).toBe(commit);
    await worker.stop();
    await after.cleanup();
  } finally {
    await stopAll();
    if (brokerUp) rabbitmqctl("-n", brokerNode, "stop");
    removeDirs(dir, join(ROOT, ".rabbitmq", String(port)));
  }
});
