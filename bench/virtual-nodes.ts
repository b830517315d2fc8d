/**
 * Many simulated nodes in one process, for the scale benchmark. In `real`
 * mode each node is composed exactly as `worker.ts` composes itself (its own
 * broker connection through shared/broker.ts with its reconnect and jitter,
 * its own durable queue, state file and logger, the worker's consumer from
 * worker/consumer.ts with its verification, command execution, events and
 * after-command heartbeat); only the checkout is shared, which ping reads and
 * never writes, and the configuration is checked once instead of per node.
 * In `bare` mode each node is the floor's bare consumer. Every time a node's
 * consumer is (re)registered the process prints `consuming <node>` on stderr,
 * and `lost <node>` when a real node's connection drops.
 *
 *   BENCH_MODE=real|bare BENCH_FROM=0 BENCH_TO=250 BENCH_STATE_DIR=... (worker variables) bun bench/virtual-nodes.ts
 */
import { join } from "node:path";
import { connectBroker } from "../shared/broker.ts";
import { createLogger } from "../shared/log.ts";
import { createConsumer } from "../worker/consumer.ts";
import { startHeartbeats } from "../worker/heartbeat.ts";
import { loadSettings, type Settings } from "../worker/settings.ts";
import { openStore } from "../worker/state.ts";
import { bareConsumer } from "./bare-consumer.ts";

const announce = (node: string) => process.stderr.write(`consuming ${node}\n`);

/** One node as worker.ts's main() builds it, minus the checkout lock and the signal handling. */
function startNode(base: Settings, node: string, stateDir: string): void {
  const settings: Settings = { ...base, env: { ...base.env, ARBEIDER_NODE_ID: node }, stateFile: join(stateDir, `${node}.json`) };
  const { ARBEIDER_FLEET: fleet } = settings.env;
  const log = createLogger(settings.env.LOG_LEVEL, { node });
  const store = openStore(settings.stateFile);
  const broker = connectBroker({
    urls: settings.env.AMQP_URL,
    log,
    name: `arbeider-worker ${fleet}/${node}`,
    setup: async (channel) => {
      await consumer.setup(channel);
      announce(node);
    },
    onDisconnect: () => process.stderr.write(`lost ${node}\n`),
  });
  const heartbeats = startHeartbeats({ settings, log, broker, busy: () => consumer.busy });
  const consumer = createConsumer({
    settings,
    log,
    store,
    broker,
    afterCommand: () => void heartbeats.beat(),
    onFatal(error) {
      log.error("cannot go on", { error });
      process.exit(1);
    },
  });
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
      ids.map((node) => bareConsumer(env.AMQP_URL!, exchange, `${exchange}.${node}`).then(() => announce(node))),
    );
  }
  process.on("SIGTERM", () => process.exit(0));
}
