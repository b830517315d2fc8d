/**
 * arbeider's node agent: one per node or container. It consumes the node's
 * own durable queue, executes only commands signed by the webhook's key and
 * meant for this node, keeps the git checkout at the commit it was told, and
 * reports every step as an event. Configuration is environment variables only
 * (docs/configuration.md); run it as `bun worker.ts` or `deno run -A worker.ts`.
 *
 * The story of the process: load and check the configuration, lock the
 * checkout, clean up after a crash, connect and consume, and on SIGTERM say so
 * in a heartbeat, finish the command in hand, then exit 0.
 */
import { connectBroker } from "./shared/broker.ts";
import { brokerSettings } from "./shared/broker-settings.ts";
import { ConfigError } from "./shared/config.ts";
import { createLogger, type Logger } from "./shared/log.ts";
import { createConsumer } from "./worker/consumer.ts";
import { startHeartbeats, VERSION } from "./worker/heartbeat.ts";
import { acquireLock, type Lock } from "./worker/lock.ts";
import { groupStillOurs, killGroup } from "./worker/proc.ts";
import { loadSettings, type Settings } from "./worker/settings.ts";
import { openStore, type Store } from "./worker/state.ts";

/** Exits 2 with one line on stderr for a configuration problem; anything else is a bug and rethrown. */
export function exitOnConfigError(error: unknown): never {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`arbeider worker: ${error.message}\n`);
  process.exit(2);
}

/** The checkout's lock and state, or exit 2 if another worker holds it or the state file is unusable. */
export function claimCheckout(settings: Settings): { lock: Lock; store: Store } {
  try {
    const lock = acquireLock(settings.gitDir);
    try {
      return { lock, store: openStore(settings.stateFile) };
    } catch (error) {
      lock.release();
      throw error;
    }
  } catch (error) {
    return exitOnConfigError(error);
  }
}

/**
 * A command that was running when the worker died (SIGKILL, power loss) may
 * have left children running in their own process groups: a git fetch, its
 * update script. End every group it recorded before consuming, so the
 * redelivered command does not run beside them. The record of the command
 * stays: its redelivery goes on from where its first run started.
 */
export async function endInterruptedCommand(store: Store, log: Logger): Promise<void> {
  const running = store.state.running;
  const ours = (running?.groups ?? []).filter((stamp) => groupStillOurs(stamp));
  if (ours.length === 0) return;
  log.warn("ending the processes of a command interrupted by a crash", { command: running!.id, pgids: ours.map((stamp) => stamp.pid) });
  await Promise.all(ours.map((stamp) => killGroup(stamp.pid, 5000)));
}

/**
 * Resolves on the first SIGTERM or SIGINT; a second one ends the process at
 * once. One listener per signal, counting: a listener added while a signal is
 * being delivered may be called for that same signal (Deno does so).
 */
export function untilStopSignal(log: Logger): Promise<string> {
  return new Promise((resolve) => {
    let received = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (++received === 1) return resolve(signal);
      log.warn("second stop signal; exiting without finishing the command", { signal });
      process.exit(1);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}

/** Connects to the broker and consumes the node's queue, with heartbeats; reconnects by itself. */
export function startConsuming(settings: Settings, log: Logger, store: Store) {
  const { ARBEIDER_NODE_ID: node, ARBEIDER_FLEET: fleet } = settings.env;
  // `setup` first runs once the connection is open, after `consumer` below exists.
  const broker = connectBroker({
    ...brokerSettings(settings.env),
    log,
    name: `arbeider-worker ${fleet}/${node}`,
    setup: (channel, connection) => consumer.setup(channel, connection),
  });
  const heartbeats = startHeartbeats({ settings, log, broker, busy: () => consumer.busy });
  const consumer = createConsumer({
    settings,
    log,
    store,
    broker,
    afterCommand: (at) => void heartbeats.beat(at),
    onFatal(error) {
      if (error instanceof ConfigError) exitOnConfigError(error);
      log.error("cannot go on", { error });
      process.exit(1);
    },
  });
  return { broker, consumer, heartbeats };
}

export async function main(): Promise<void> {
  const settings = await loadSettings(process.env).catch(exitOnConfigError);
  const { ARBEIDER_NODE_ID: node, ARBEIDER_FLEET: fleet, ARBEIDER_GROUPS: groups } = settings.env;
  const log = createLogger(settings.env.LOG_LEVEL, { node });
  const { lock, store } = claimCheckout(settings);
  const stopSignal = untilStopSignal(log);
  log.info("worker starting", { version: VERSION, fleet, groups, repo: settings.repo, keys: settings.keys.length });
  await endInterruptedCommand(store, log);

  const { broker, consumer, heartbeats } = startConsuming(settings, log, store);
  void broker.waitConnected(60_000).then((connected) => connected && void heartbeats.beat());

  const signal = await stopSignal;
  log.info("stopping: finishing the command in hand", { signal, busy: consumer.busy });
  const saidSo = heartbeats.stopping();
  await consumer.stop();
  await saidSo; // published before the connection closes, also when nothing was running
  heartbeats.stop();
  await broker.close();
  lock.release();
  log.info("stopped");
  process.exit(0);
}

if (import.meta.main) await main();
