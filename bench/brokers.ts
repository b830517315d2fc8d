/**
 * Which broker a bench run uses. A full run as root starts a private
 * RabbitMQ of its own on a free port and runs every part on it: its CPU is
 * then arbeider's alone and is counted with arbeider's, and it can take the
 * scale part's 1,000 connections. RabbitMQ refuses connections beyond its
 * socket limit, and a broker started with the common default of 1,024 open
 * files (Debian's wrapper starts it through `su`, which applies that default)
 * has about 830 sockets: pushing it further ends in `emfile` and can take its
 * database down for everyone using it, so the private broker gets a higher
 * limit. A quick run, or one without root, stays in its vhost on the shared
 * broker (whose CPU is not counted: others use it too). The private broker
 * is stopped and its data deleted at the end.
 */
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import amqp from "amqplib";
import { waitUntil } from "../testkit/kit.ts";
import { freePort, rabbitmqctl, type BrokerHandle, type Harness } from "./harness.ts";

/** Sockets the shared broker can still accept. */
export function freeSockets(): number {
  const status = JSON.parse(rabbitmqctl("status", "--formatter", "json")) as {
    file_descriptors?: { sockets_limit: number; sockets_used: number };
  };
  const fd = status.file_descriptors;
  return fd ? fd.sockets_limit - fd.sockets_used : 0;
}

/** Moves a full run as root onto a private broker; otherwise the run stays on the shared one, and says why. */
export async function chooseBroker(h: Harness): Promise<void> {
  if (h.quick) return;
  if (process.getuid?.() !== 0) {
    console.error("bench: not root, so no private broker: the shared broker's CPU is not counted, and the scale part may lack sockets");
    return;
  }
  const t0 = performance.now();
  h.useBroker(await startPrivateBroker(h));
  console.error(`bench: private broker up in ${((performance.now() - t0) / 1000).toFixed(1)} s at ${h.broker.amqpUrl}`);
}

async function startPrivateBroker(h: Harness): Promise<BrokerHandle> {
  const port = await freePort();
  const node = `arbeider-bench-${port}@localhost`;
  // Not inside the run's folder: that one is private to root, and the broker runs as the rabbitmq user.
  const base = mkdtempSync(join(tmpdir(), "arbeider-bench-broker-"));
  for (const dir of ["mnesia", "log"]) mkdirSync(join(base, dir));
  writeFileSync(join(base, "rabbitmq.conf"), `listeners.tcp.default = 127.0.0.1:${port}\n`);
  writeFileSync(join(base, "enabled_plugins"), "[].\n");
  const uid = Number(rabbitmqUser("-u"));
  const gid = Number(rabbitmqUser("-g"));
  for (const path of [base, join(base, "mnesia"), join(base, "log"), join(base, "rabbitmq.conf"), join(base, "enabled_plugins")]) chownSync(path, uid, gid);
  const proc = h.spawn(["su", "rabbitmq", "-s", "/bin/sh", "-c", "ulimit -n 20000 && exec /usr/lib/rabbitmq/bin/rabbitmq-server"], {
    PATH: `${process.env.PATH}:/usr/sbin`,
    RABBITMQ_NODENAME: node,
    RABBITMQ_CONFIG_FILE: join(base, "rabbitmq.conf"),
    RABBITMQ_DIST_PORT: String(await freePort()),
    RABBITMQ_MNESIA_BASE: join(base, "mnesia"),
    RABBITMQ_LOG_BASE: join(base, "log"),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(base, "enabled_plugins"),
  }, { keep: true });
  const amqpUrl = `amqp://guest:guest@127.0.0.1:${port}`;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    try {
      rabbitmqctl("-n", node, "stop");
    } catch {
      // not up (yet): the signal below ends it
    }
    await proc.stop(15_000);
    rmSync(base, { recursive: true, force: true });
  };
  h.onCleanup(close);
  const up = async () => {
    if (proc.child.exitCode !== null) throw new Error(`the private broker exited:\n${proc.tail()}`);
    return amqp.connect(amqpUrl).then((c) => c.close().then(() => true), () => false);
  };
  await waitUntil(up, `the private broker on port ${port}`, 90_000, 250);
  return {
    amqpUrl,
    kind: "private",
    pids: [proc.pid],
    closeAllConnections: () => void rabbitmqctl("-n", node, "close_all_connections", "--vhost", "/", "arbeider bench: simulated broker restart"),
  };
}

function rabbitmqUser(flag: "-u" | "-g"): string {
  const result = Bun.spawnSync(["id", flag, "rabbitmq"]);
  if (result.exitCode !== 0) throw new Error("no rabbitmq user to run a private broker as");
  return result.stdout.toString().trim();
}
