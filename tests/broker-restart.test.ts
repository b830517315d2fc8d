/**
 * A broker restart under a running worker. The shared broker cannot be
 * restarted without disturbing other test files, so this test starts a
 * private one the way `make rabbitmq` does on a machine without a broker
 * (scripts/rabbitmq.sh on a free port), restarts RabbitMQ on it, and expects
 * the same worker process to consume again and execute the next command.
 * The restart is `rabbitmqctl stop_app` and `start_app`: every connection is
 * closed and the port refuses new ones, then RabbitMQ starts again from its
 * data on disk (durable exchanges and queues), as after a full stop, without
 * the seconds the Erlang runtime takes to boot a second time.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { connect, createServer } from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { rabbitmqctl } from "../scripts/cluster.ts";
import { brokerNode } from "../testkit/kit.ts";
import { run } from "../worker/run.ts";
import {
  ROOT,
  cloneNode,
  command,
  head,
  makeKeys,
  makeOrigin,
  openFleet,
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

/** Whether a connection to `port` of 127.0.0.1 is refused: nothing listens there. */
function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => socket.destroy() && resolve(false));
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"));
  });
}

/** A port for the broker whose Erlang distribution port (port + 20000) is free too. */
async function brokerPort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if ((await portFree(port)) && (await portFree(port + 20_000))) return port;
  }
}

/** Runs `argv` without blocking the test's event loop (the broker takes seconds to start); returns stdout, throws on failure. */
async function spawnChecked(argv: string[], env: Record<string, string | undefined> = process.env): Promise<string> {
  const result = await run(argv, { cwd: ROOT, env, deadline: Date.now() + 90_000 });
  if (result.code !== 0) throw new Error(`${argv.join(" ")} failed (${result.code ?? result.signal ?? result.error}): ${result.stdout}${result.stderr}`);
  return result.stdout;
}

/** `make rabbitmq` for `url`: returns its output, throws if it did not get a broker answering. */
const ensureBroker = (url: string) => spawnChecked(["bash", "scripts/rabbitmq.sh"], { ...process.env, AMQP_URL: url });

/** Whether `pid` has ended: gone, or a zombie its parent has not reaped yet. */
function ended(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

/** Ends the broker whose pid file is `pidFile` and waits until its process has ended. */
async function killBroker(pidFile: string): Promise<void> {
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  process.kill(pid, "SIGKILL");
  await waitUntil(() => ended(pid), `broker process ${pid} to end`, 10_000);
}

const count = (text: string, fragment: string) => text.split(fragment).length - 1;

test("a worker survives a broker restart without a process restart and runs the next command", async () => {
  const port = await brokerPort();
  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  const node = `arbeider-${port}@localhost`;
  const dir = tempDir();
  let brokerUp = false;
  try {
    // The broker boots while the keys and the repositories are made.
    const broker = ensureBroker(url);
    const keys = makeKeys(join(dir, "keys"));
    const origin = makeOrigin(dir);
    const repo = cloneNode(origin.origin, join(dir, "node"));
    expect(await broker).toContain("starting a private broker");
    brokerUp = true;
    // The tests' rabbitmqctl finds this broker by its URL, as on a machine where make started the only one.
    expect(brokerNode(url)).toBe(node);
    expect(brokerNode("amqp://guest:guest@127.0.0.1:1")).toBeUndefined();
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

    await rabbitmqctl("-n", node, "stop_app");
    await worker.waitForLog("lost broker connection", 30_000);
    expect(await refuses(port)).toBe(true);
    await rabbitmqctl("-n", node, "start_app");
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
    // A throwaway broker: killed at once rather than the seconds a clean stop takes, then its data removed.
    if (brokerUp) await killBroker(join(ROOT, ".rabbitmq", String(port), "pid"));
    removeDirs(dir, join(ROOT, ".rabbitmq", String(port)));
  }
});
