/**
 * Private RabbitMQ nodes on this machine: a three-node cluster (or a single
 * TLS-only broker) with its own node names, ports and data folders, which
 * never touches the machine's own broker. The tests start them through
 * `startNode` and `startCluster`; an operator can try arbeider on a cluster
 * with the same code:
 *
 *   bun scripts/cluster.ts start DIR [SIZE]   starts SIZE (3) clustered nodes, prints AMQP_URL
 *   bun scripts/cluster.ts stop DIR           stops them and removes DIR
 *
 * Nodes start with Debian's wrapper (`rabbitmq-server -detached`, run as the
 * `rabbitmq` user, so they share the machine's Erlang cookie) and find each
 * other through `classic_config` peer discovery: no `join_cluster` calls,
 * whose CLI start-ups cost seconds of CPU each. Every process is started
 * asynchronously, so a Bun test's event loop is never frozen by one.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { join, resolve } from "node:path";

const SBIN_PATH = `${process.env.PATH ?? ""}:/usr/sbin:/usr/lib/rabbitmq/bin`;

/** Runs `argv` asynchronously; resolves with its exit code and output. */
export function run(argv: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, PATH: SBIN_PATH, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (error) => done({ code: -1, output: String(error) }));
    child.on("exit", (code) => {
      clearTimeout(timer);
      done({ code: code ?? -1, output });
    });
  });
}

/** `rabbitmqctl -q ...args`; throws with its output on a non-zero exit. */
export async function rabbitmqctl(...args: string[]): Promise<string> {
  const { code, output } = await run(["rabbitmqctl", "-q", ...args]);
  if (code !== 0) throw new Error(`rabbitmqctl ${args.join(" ")} failed (${code}): ${output.trim()}`);
  return output;
}

/** Whether nothing listens on `port` of 127.0.0.1. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A port in 20000-39999 that is free, with its Erlang distribution port (port + 20000) free too. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if ((await portFree(port)) && (await portFree(port + 20_000))) return port;
  }
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`, or throws after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port }, () => (socket.destroy(), resolve(true)));
      socket.on("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${what} did not listen on port ${port} within ${timeoutMs} ms`);
}

export interface NodeOptions {
  /** Folder for the node's data, logs and configuration (created; must be writable by root). */
  dir: string;
  port: number;
  /** Extra rabbitmq.conf lines; the default is one plain listener on 127.0.0.1:port. */
  config?: string[];
  /** Node names of a cluster to form at first start (classic_config peer discovery). */
  peers?: string[];
}

export interface BrokerNode {
  readonly name: string;
  readonly port: number;
  /** `amqp(s)://guest:guest@127.0.0.1:port`, or with `user`. */
  url(scheme?: "amqp" | "amqps", user?: string): string;
  /** Starts the node (again, on its data) and waits until its port accepts connections. */
  start(timeoutMs?: number): Promise<void>;
  /** Graceful stop; resolves once the process is gone. */
  stop(): Promise<void>;
  /** `kill -9` of the node's process; resolves once it is gone. */
  kill(): Promise<void>;
  /** The node's OS process id while it runs. */
  pid(): number | undefined;
  /** The node's log, for failure messages. */
  log(): string;
}

/** Defines a private node (nothing is started until `start`). */
export function defineNode(options: NodeOptions): BrokerNode {
  const dir = resolve(options.dir);
  const name = `arbeider-${options.port}@localhost`;
  const pidFile = join(dir, "pid");
  const env = {
    RABBITMQ_NODENAME: name,
    RABBITMQ_NODE_PORT: String(options.port),
    RABBITMQ_DIST_PORT: String(options.port + 20_000),
    // Our own config file, so /etc/rabbitmq/rabbitmq.conf and its 5672 are never read.
    RABBITMQ_CONFIG_FILE: join(dir, "rabbitmq.conf"),
    RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, "advanced.config"),
    RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: join(dir, "log"),
    RABBITMQ_PID_FILE: pidFile,
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
  };
  const peers = options.peers ?? [];
  const lines = [
    ...(options.config ?? [`listeners.tcp.default = 127.0.0.1:${options.port}`]),
    ...(peers.length > 1
      ? [
          "cluster_formation.peer_discovery_backend = classic_config",
          ...peers.map((peer, i) => `cluster_formation.classic_config.nodes.${i + 1} = ${peer}`),
          // The default waits 5-60 s before forming; the first node is started alone, so no race to avoid.
          "cluster_formation.randomized_startup_delay_range.min = 0",
          "cluster_formation.randomized_startup_delay_range.max = 1",
        ]
      : []),
  ];
  // The pid in the node's pid file, if that process is still this node: a pid can be reused once it is gone.
  const pid = () => {
    try {
      const value = Number(readFileSync(pidFile, "utf8").trim());
      const environ = readFileSync(`/proc/${value}/environ`, "utf8");
      return environ.split("\0").includes(`RABBITMQ_NODENAME=${name}`) ? value : undefined;
    } catch {
      return undefined;
    }
  };
  const gone = async (what: string) => {
    const deadline = Date.now() + 60_000;
    while (pid() !== undefined) {
      if (Date.now() > deadline) throw new Error(`node ${name} did not go away after ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  const log = () => {
    const file = join(dir, "log", `${name}.log`);
    return existsSync(file) ? readFileSync(file, "utf8") : "(no log yet)";
  };
  const boot = async (timeoutMs: number) => {
    for (const sub of ["mnesia", "log"]) mkdirSync(join(dir, sub), { recursive: true });
    writeFileSync(join(dir, "rabbitmq.conf"), `${lines.join("\n")}\n`);
    writeFileSync(join(dir, "enabled_plugins"), "[].\n");
    // Debian's wrapper runs the broker as the rabbitmq user when started by root.
    await run(["chown", "-R", "rabbitmq:rabbitmq", dir]);
    if ((await run(["runuser", "-u", "rabbitmq", "--", "test", "-w", dir])).code !== 0) {
      throw new Error(`the rabbitmq user cannot write ${dir}: its parent folders must be open to it (chmod o+x)`);
    }
    const started = await run(["rabbitmq-server", "-detached"], env, 60_000);
    if (started.code !== 0) throw new Error(`rabbitmq-server ${name} failed: ${started.output}`);
    try {
      await waitForPort(options.port, timeoutMs, `node ${name}`);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${log().slice(-3000)}`);
    }
  };
  let starting: Promise<void> | undefined;

  return {
    name,
    port: options.port,
    url: (scheme = "amqp", user = "guest:guest") => `${scheme}://${user}@127.0.0.1:${options.port}`,
    start(timeoutMs = 90_000) {
      starting = boot(timeoutMs);
      return starting;
    },
    async stop() {
      await starting?.catch(() => {});
      if (pid() === undefined) return;
      await rabbitmqctl("-n", name, "stop", pidFile);
      await gone("stop");
    },
    async kill() {
      // A node still starting would come up after the kill otherwise, and be left running.
      await starting?.catch(() => {});
      const value = pid();
      if (value !== undefined) process.kill(value, "SIGKILL");
      await gone("kill -9");
    },
    pid,
    log,
  };
}

/** Starts one private node with `config` lines (e.g. a TLS-only listener) in `dir`. */
export async function startNode(dir: string, config?: (port: number) => string[]): Promise<BrokerNode> {
  const port = await freePort();
  const node = defineNode({ dir: join(dir, String(port)), port, config: config?.(port) });
  await node.start();
  return node;
}

export interface Cluster {
  nodes: BrokerNode[];
  /** AMQP_URL for the whole cluster: every node, comma separated. */
  urls: string;
  /** Stops every node (kill -9, it is thrown away) and removes the folder. */
  remove(): Promise<void>;
}

/** Starts `size` nodes in `dir` that form one cluster; resolves when every node is a running member. */
export async function startCluster(dir: string, size = 3): Promise<Cluster> {
  const ports: number[] = [];
  while (ports.length < size) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  const peers = ports.map((port) => `arbeider-${port}@localhost`);
  const nodes = ports.map((port) => defineNode({ dir: join(dir, String(port)), port, peers }));
  const remove = async () => {
    await Promise.all(nodes.map((node) => node.kill().catch(() => {})));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // The first node forms the cluster; the others then join it at once.
    await nodes[0]!.start();
    await Promise.all(nodes.slice(1).map((node) => node.start()));
    await waitForMembers(nodes[0]!.name, peers, 60_000);
  } catch (error) {
    await remove();
    throw error;
  }
  writeFileSync(join(dir, "nodes.json"), JSON.stringify(ports));
  return { nodes, urls: nodes.map((node) => node.url()).join(","), remove };
}

/** Waits until `via` reports every one of `names` as a running cluster member. */
export async function waitForMembers(via: string, names: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await run(["rabbitmqctl", "-q", "-n", via, "cluster_status", "--formatter", "json"]);
    let running: string[] = [];
    try {
      running = JSON.parse(status.output).running_nodes ?? [];
    } catch {
      // not up yet
    }
    if (names.every((name) => running.includes(name))) return;
    if (Date.now() > deadline) throw new Error(`cluster did not form within ${timeoutMs} ms: ${status.output.trim()}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function main(args: string[]): Promise<void> {
  const [action, dir, size] = args;
  if (!dir || (action !== "start" && action !== "stop")) {
    process.stderr.write("usage: bun scripts/cluster.ts start DIR [SIZE] | stop DIR\n");
    process.exit(2);
  }
  if (action === "start") {
    const cluster = await startCluster(resolve(dir), Number(size ?? 3));
    process.stdout.write(`AMQP_URL=${cluster.urls}\n`);
    return;
  }
  const ports: number[] = JSON.parse(readFileSync(join(dir, "nodes.json"), "utf8"));
  await Promise.all(ports.map((port) => defineNode({ dir: join(dir, String(port)), port }).stop()));
  rmSync(dir, { recursive: true, force: true });
}

if (import.meta.main) await main(process.argv.slice(2));
