/**
 * The webhook: the HTTP server that turns "CI says the build passed" into a
 * signed command for the fleet, and serves what every node did with it. It
 * keeps no database: at start it reads the fleet's history stream from the
 * beginning to rebuild its view, then follows it live.
 *
 *   bun webhook.ts            (or: deno run -A webhook.ts)
 *
 * Configuration is environment variables only (README "Webhook").
 */
import { readFileSync } from "node:fs";
import { connectBroker } from "./shared/broker.ts";
import { ConfigError, loadConfig, WebhookEnv } from "./shared/config.ts";
import { createLogger, type Logger } from "./shared/log.ts";
import { parseSigningKey, type SigningKey } from "./shared/signing.ts";
import { createApp } from "./webhook/app.ts";
import { followHistory } from "./webhook/history.ts";
import { createMetrics } from "./webhook/metrics.ts";
import { checkProviderPairs } from "./webhook/providers.ts";
import { serve } from "./webhook/serve.ts";
import { createView } from "./webhook/view.ts";

/** The validated configuration, or a ConfigError naming the variable. */
export function loadWebhookConfig(env: Record<string, string | undefined>): WebhookEnv {
  const config = loadConfig(WebhookEnv, env);
  checkProviderPairs(config);
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

/** Resolves on the first SIGTERM or SIGINT. */
export function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => resolve(signal));
  });
}

/** Runs the webhook until SIGTERM or SIGINT. */
export async function main(env: Record<string, string | undefined> = process.env): Promise<void> {
  let config: WebhookEnv;
  let signingKey: SigningKey;
  try {
    config = loadWebhookConfig(env);
    signingKey = readSigningKey(config.ARBEIDER_SIGNING_KEY_FILE);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`webhook: ${error.message}\n`);
    process.exit(2);
  }
  const log: Logger = createLogger(config.LOG_LEVEL, { process: "webhook", fleet: config.ARBEIDER_FLEET });

  const view = createView();
  const broker = connectBroker({
    urls: config.AMQP_URL,
    log,
    name: `arbeider webhook ${config.ARBEIDER_FLEET}`,
    // Runs on every (re)connect: topology, heartbeats, and the history read up to its end.
    setup: followHistory({ fleet: config.ARBEIDER_FLEET, maxAge: config.ARBEIDER_HISTORY_MAX_AGE, view, log }),
  });

  const app = createApp({
    config,
    signingKey,
    publish: (exchange, key, body, options) => broker.publish(exchange, key, body, options),
    view,
    connected: () => broker.connected,
    log,
    metrics: createMetrics(),
  });
  const server = serve(app.fetch, { port: config.PORT, hostname: config.HOST });
  log.info("listening", { host: config.HOST, port: server.port });

  const signal = await stopSignal();
  log.info("stopping", { signal });
  await server.close();
  await broker.close();
  log.info("stopped");
  process.exit(0);
}

if (import.meta.main) await main();
