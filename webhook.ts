/**
 * The webhook: the HTTP server that turns "CI says the build passed" into a
 * signed command for the fleet, and serves what every node did with it. It
 * keeps no database: at start it reads the fleet's history stream from the
 * beginning to rebuild its view, then follows it live.
 *
 *   bun webhook.ts            (or: deno run -A webhook.ts)
 *
 * Configuration is environment variables only (docs/configuration.md).
 */
import { readFileSync } from "node:fs";
import { connectBroker } from "./shared/broker.ts";
import { brokerSettings } from "./shared/broker-settings.ts";
import { ConfigError, loadConfig, readVerifyKeyFiles, WebhookEnv } from "./shared/config.ts";
import { createLogger, type Logger } from "./shared/log.ts";
import { parseSigningKey, verifyKeyOf, type SigningKey, type VerifyKey } from "./shared/signing.ts";
import { createApp } from "./webhook/app.ts";
import { setupDeadLetters } from "./webhook/dead-letters.ts";
import { createCommandSender } from "./webhook/deployer.ts";
import { createDriver } from "./webhook/driver.ts";
import { followHistory } from "./webhook/history.ts";
import { createMetrics, type Metrics } from "./webhook/metrics.ts";
import { checkProviderPairs } from "./webhook/providers.ts";
import { createRecorder, createSealer } from "./webhook/records.ts";
import { DEFAULT_POLICY } from "./webhook/delivery.ts";
import { checkReportConfig, reportSecrets, reportTargets } from "./webhook/report-targets.ts";
import { createReporter } from "./webhook/reporter.ts";
import { serve, type Server } from "./webhook/serve.ts";
import { createView } from "./webhook/view.ts";

/** The validated configuration, or a ConfigError naming the variable. */
export function loadWebhookConfig(env: Record<string, string | undefined>): WebhookEnv {
  const config = loadConfig(WebhookEnv, env);
  checkProviderPairs(config);
  checkReportConfig(config);
  return config;
}

/** The private key the commands are signed with; a ConfigError if the file is unreadable or not Ed25519. */
export function readSigningKey(file: string): SigningKey {
  try {
    return parseSigningKey(readFileSync(file, "utf8"));
  } catch (error) {
    // The message of a failed parse names the problem, never the key's content.
    throw new ConfigError("ARBEIDER_SIGNING_KEY_FILE", `cannot read an Ed25519 private key from ${file}: ${(error as Error).message}`);
  }
}

/**
 * Serves `fetch` at HOST:PORT, or throws a ConfigError naming the variable to
 * change: PORT when the port is taken or not allowed, HOST otherwise (not an
 * address of this machine).
 */
export function listen(fetch: (request: Request) => Response | Promise<Response>, config: Pick<WebhookEnv, "HOST" | "PORT">): Server {
  try {
    return serve(fetch, { port: config.PORT, hostname: config.HOST });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const variable = code === "EADDRINUSE" || code === "EACCES" ? "PORT" : "HOST";
    const why = String((error as Error).message ?? error).split("\n")[0];
    throw new ConfigError(variable, `cannot listen on ${config.HOST}:${config.PORT}: ${why}`);
  }
}

/** Prints a configuration problem as one line and exits 2; anything else is a bug and rethrown. */
function exitOnConfigError(error: unknown): never {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`webhook: ${error.message}\n`);
  process.exit(2);
}

/** Resolves on the first SIGTERM or SIGINT. */
export function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => resolve(signal));
  });
}

/**
 * The webhook's broker side: the view fed from the history stream, the
 * rollout driver (elected among replicas), the reporter (when a target is
 * configured) and the dead letters, all set up again on every reconnect.
 */
export function connectFleet(options: { config: WebhookEnv; signingKey: SigningKey; verifyKeys: VerifyKey[]; log: Logger; metrics: Metrics }) {
  const { config, signingKey, verifyKeys, log, metrics } = options;
  const view = createView();
  const sealer = createSealer(signingKey, verifyKeys);
  // The driver's part of the broker setup needs the broker's publish: both exist before the first connection.
  const publish = (exchange: string, key: string, body: Uint8Array, options?: { messageId?: string; headers?: Record<string, string> }) =>
    broker.publish(exchange, key, body, options);
  const send = createCommandSender({ signingKey, publish, fleet: config.ARBEIDER_FLEET });
  const record = createRecorder({ fleet: config.ARBEIDER_FLEET, sealer, publish });
  const driver = createDriver({
    fleet: config.ARBEIDER_FLEET,
    view,
    record,
    send: (command) => send(command).then(() => metrics.published(command.command)),
    log,
    converge: config.ARBEIDER_CONVERGE,
    queueType: config.ARBEIDER_QUEUE_TYPE,
  });
  // Reporting back (docs/reporting.md): the driver reports each state change, beside the rollouts.
  const targets = reportTargets(config);
  const reporter = targets.length === 0 ? undefined : createReporter({
    view,
    record,
    targets,
    driving: () => driver.driving,
    metrics,
    log,
    secrets: reportSecrets(config),
    policy: { ...DEFAULT_POLICY, timeoutMs: config.ARBEIDER_REPORT_TIMEOUT * 1000 },
  });
  const history = followHistory({ fleet: config.ARBEIDER_FLEET, maxAge: config.ARBEIDER_HISTORY_MAX_AGE, view, log, sealer });
  const broker = connectBroker({
    ...brokerSettings(config),
    log,
    name: `arbeider webhook ${config.ARBEIDER_FLEET}`,
    // Runs on every (re)connect: topology, heartbeats and the history read up to its end, the driver's election, dead letters.
    setup: async (channel, connection) => {
      await history(channel, connection);
      await driver.setup(channel, connection);
      await setupDeadLetters(channel, connection, { fleet: config.ARBEIDER_FLEET, queueType: config.ARBEIDER_QUEUE_TYPE, log, publish, verifyKeys });
    },
  });
  // Awaited nodes that will not report are marked missing by the clock, not only by events.
  const ticker = setInterval(() => view.tick(), 1000);
  return {
    view,
    sealer,
    publish,
    broker,
    async close(): Promise<void> {
      clearInterval(ticker);
      driver.stop();
      reporter?.stop();
      await broker.close();
    },
  };
}

/** Runs the webhook until SIGTERM or SIGINT. */
export async function main(env: Record<string, string | undefined> = process.env): Promise<void> {
  let config: WebhookEnv;
  let signingKey: SigningKey;
  let verifyKeys: VerifyKey[];
  try {
    config = loadWebhookConfig(env);
    signingKey = readSigningKey(config.ARBEIDER_SIGNING_KEY_FILE);
    // Its own records, and those of the keys it replaced.
    verifyKeys = [verifyKeyOf(signingKey), ...readVerifyKeyFiles(config.ARBEIDER_VERIFY_KEY_FILE)];
  } catch (error) {
    exitOnConfigError(error);
  }
  const log: Logger = createLogger(config.LOG_LEVEL, { process: "webhook", fleet: config.ARBEIDER_FLEET });

  const metrics = createMetrics();
  const fleet = connectFleet({ config, signingKey, verifyKeys, log, metrics });
  const { view, sealer, publish } = fleet;
  const app = createApp({ config, signingKey, sealer, publish, view, connected: () => fleet.broker.connected, log, metrics });
  let server: Server;
  try {
    server = listen(app.fetch, config);
  } catch (error) {
    exitOnConfigError(error);
  }
  log.info("listening", { host: config.HOST, port: server.port });

  const signal = await stopSignal();
  log.info("stopping", { signal });
  await server.close();
  await fleet.close();
  log.info("stopped");
  process.exit(0);
}

if (import.meta.main) await main();
