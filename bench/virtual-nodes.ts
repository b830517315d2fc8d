/**
 * Many simulated nodes in one process, for the scale benchmark. In `real`
 * mode each node is started by worker.ts's own `startConsuming`, as `bun
 * worker.ts` starts itself: its own broker connection (shared/broker.ts, with
 * its reconnect and jitter), durable queue, state file, logger, heartbeats and
 * the worker's consumer with its verification, command execution and events.
 * Only the checkout is shared, which ping reads and never writes, and the
 * configuration is checked once instead of per node. Each node sends its
 * first heartbeat once connected, as `bun worker.ts` does, so the webhook
 * counts it online and a deployment expects it.
 * In `bare` mode each node is the floor's bare consumer. Every time a node's
 * consumer is (re)registered the process prints `consuming <node>` on stderr,
 * and `lost <node>` when a real node's connection drops.
 *
 *   BENCH_MODE=real|bare BENCH_FROM=0 BENCH_TO=250 BENCH_STATE_DIR=... (worker variables) bun bench/virtual-nodes.ts
 */
import { join } from "node:path";
import { createLogger, type Level, type Logger } from "../shared/log.ts";
import { loadSettings, type Settings } from "../worker/settings.ts";
import { openStore } from "../worker/state.ts";
import { startConsuming } from "../worker.ts";
import { bareConsumer } from "./bare-consumer.ts";

const announce = (what: string, node: string) => process.stderr.write(`${what} ${node}\n`);

/** The node's logger, also telling the benchmark when the consumer is (re)registered and when the connection drops. */
function watchedLogger(level: Level, node: string): Logger {
  const log = createLogger(level, { node });
  return {
    ...log,
    info(msg, fields) {
      if (msg === "consuming") announce("consuming", node);
      log.info(msg, fields);
    },
    warn(msg, fields) {
      if (msg.startsWith("lost broker connection")) announce("lost", node);
      log.warn(msg, fields);
    },
  };
}

/** One node as worker.ts's main() starts it (startConsuming, then a first heartbeat), minus the checkout lock and the signal handling. */
function startNode(base: Settings, node: string, stateDir: string): void {
  const settings: Settings = { ...base, env: { ...base.env, ARBEIDER_NODE_ID: node }, stateFile: join(stateDir, `${node}.json`) };
  const { broker, heartbeats } = startConsuming(settings, watchedLogger(settings.env.LOG_LEVEL, node), openStore(settings.stateFile));
  void broker.waitConnected(60_000).then((connected) => connected && void heartbeats.beat());
}

if (import.meta.main) {
  const env = process.env;
  const from = Number(env.BENCH_FROM);
  const to = Number(env.BENCH_TO);
  const ids = Array.from({ length: to - from }, (_, i) => `v${from + i}`);
  if (env.BENCH_MODE === "real") {
    const base = await loadSettings({ ...env, ARBEIDER_NODE_ID: ids[0] });
    for (const node of ids) startNode(base, node, env.BENCH_STATE_DIR!);
  } else {
    const exchange = env.BENCH_EXCHANGE!;
    await Promise.all(
      ids.map((node) => bareConsumer(env.AMQP_URL!, exchange, `${exchange}.${node}`).then(() => announce("consuming", node))),
    );
  }
  process.on("SIGTERM", () => process.exit(0));
}
