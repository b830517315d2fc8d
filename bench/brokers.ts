/**
 * Where the scale benchmark's 1,000 connections may go. RabbitMQ refuses
 * connections beyond its socket limit, and a broker started with the common
 * default of 1,024 open files (Debian's wrapper starts it through `su`, which
 * applies that default) has about 830 sockets: pushing it further ends in
 * `emfile` and can take its database down for everyone using it. So the
 * shared broker is used only when its limit leaves room; otherwise, as root,
 * the benchmark starts a private broker of its own with a higher limit on a
 * free port, and stops it and deletes its data at the end.
 */
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import amqp from "amqplib";
import { waitUntil } from "../tests/helpers.ts";
import { freePort, rabbitmqctl, type Harness } from "./harness.ts";

export interface BrokerHandle {
  amqpUrl: string;
  /** Closes every client connection, as a broker restart would. */
  closeAllConnections(): void;
  /** Stops what was started for it (nothing for the shared broker). */
  close(): Promise<void>;
}

/** Sockets the broker behind `rabbitmqctl args` can still accept. */
function freeSockets(...node: string[]): number {
  const status = JSON.parse(rabbitmqctl(...node, "status", "--formatter", "json")) as {
    file_descriptors?: { sockets_limit: number; sockets_used: number };
  };
  const fd = status.file_descriptors;
  return fd ? fd.sockets_limit - fd.sockets_used : 0;
}

/** The run's vhost on the shared broker when it can take `connections` more; else a private broker, when we are root. */
export async function brokerFor(h: Harness, connections: number): Promise<BrokerHandle> {
  const room = freeSockets();
  if (room >= connections || process.getuid?.() !== 0) {
    if (room < connections) console.error(`bench: the broker can take ${room} more connections, fewer than ${connections}; expect refusals`);
    return { amqpUrl: h.amqpUrl, closeAllConnections: () => h.closeAllConnections(), close: async () => {} };
  }
  console.error(`bench: the shared broker can take ${room} more connections; starting a private one for ${connections}`);
  return startPrivateBroker(h);
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
  });
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
    closeAllConnections: () => void rabbitmqctl("-n", node, "close_all_connections", "--vhost", "/", "arbeider bench: simulated broker restart"),
    close,
  };
}

function rabbitmqUser(flag: "-u" | "-g"): string {
  const result = Bun.spawnSync(["id", flag, "rabbitmq"]);
  if (result.exitCode !== 0) throw new Error("no rabbitmq user to run a private broker as");
  return result.stdout.toString().trim();
}
