/**
 * How a process reaches its broker, worked out once from the shared variables
 * (docs/configuration.md, docs/operations.md): the `AMQP_URL` list in this
 * process's own shuffled order, the AMQP heartbeat each URL asks for, the
 * publish confirm timeout, and the TLS socket options (a private CA, a client
 * certificate). Also the one place that turns a failed connection attempt into
 * a line an operator can act on. Pure apart from reading the TLS files it is
 * given.
 */
import { readFileSync } from "node:fs";
import type { SharedConfig } from "./config.ts";

/**
 * The AMQP heartbeat a URL asks for unless it names its own (`?heartbeat=N`).
 * Each side sends one every half period and gives the connection up after
 * about two silent periods (amqplib checks once a period): a dead peer is
 * noticed within 6 to 9 s, inside the 15 s a rollout driver has to fail over,
 * while a busy process has seconds of slack before it is taken for dead.
 */
export const HEARTBEAT_SECONDS = 3;

/** TLS options for amqps:// connections (Node's `tls.connect` names). */
export interface TlsSocketOptions {
  ca?: string[];
  cert?: string;
  key?: string;
  minVersion: "TLSv1.2";
}

export interface BrokerSettings {
  urls: string[];
  confirmTimeoutMs: number;
  tls: TlsSocketOptions;
}

/** The broker part of a process's configuration, as connectBroker takes it. */
export function brokerSettings(config: SharedConfig, random = Math.random): BrokerSettings {
  const read = (file: string | undefined) => (file === undefined ? undefined : readFileSync(file, "utf8"));
  const ca = read(config.ARBEIDER_AMQP_CA_FILE);
  return {
    urls: shuffle(config.AMQP_URL, random),
    confirmTimeoutMs: config.ARBEIDER_CONFIRM_TIMEOUT * 1000,
    tls: {
      // A given CA replaces the system's store for the broker connection: only it is trusted.
      ...(ca === undefined ? {} : { ca: [ca] }),
      ...(config.ARBEIDER_AMQP_CERT_FILE === undefined ? {} : { cert: read(config.ARBEIDER_AMQP_CERT_FILE), key: read(config.ARBEIDER_AMQP_KEY_FILE) }),
      minVersion: "TLSv1.2",
    },
  };
}

/** A copy of `items` in random order (Fisher-Yates), so each process of a fleet starts on another cluster node. */
export function shuffle<T>(items: readonly T[], random = Math.random): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

/** `url` with `heartbeat=seconds` added, unless it names a heartbeat already. */
export function withHeartbeat(url: string, seconds = HEARTBEAT_SECONDS): string {
  let named = false;
  try {
    named = new URL(url).searchParams.has("heartbeat");
  } catch {
    // amqplib reports a URL it cannot parse; leave it as it is
    return url;
  }
  return named ? url : `${url}${url.includes("?") ? "&" : "?"}heartbeat=${seconds}`;
}

const UNTRUSTED = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
]);

/** Why a connection attempt failed, with what to do about it where that is known. */
export function explainConnectError(error: unknown): string {
  const { message = String(error), code } = (error ?? {}) as { message?: string; code?: string };
  if (code && UNTRUSTED.has(code)) {
    return `TLS: the broker's certificate is not signed by a CA this process trusts (${code}); give the CA's PEM file in ARBEIDER_AMQP_CA_FILE`;
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return `TLS: the broker's certificate is not valid for the host in AMQP_URL (${message}); use a host name the certificate names`;
  }
  if (code === "CERT_HAS_EXPIRED" || code === "CERT_NOT_YET_VALID") return `TLS: the broker's certificate is outside its validity period (${code})`;
  // Alerts the broker sent during the handshake (Bun and Node name them slightly differently).
  if (/ALERT_CERTIFICATE_REQUIRED$/.test(code ?? "")) {
    return `TLS: the broker requires a client certificate (${code}); give it in ARBEIDER_AMQP_CERT_FILE and ARBEIDER_AMQP_KEY_FILE`;
  }
  if (/ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN)$/.test(code ?? "")) {
    return `TLS: the broker refused this process's client certificate (${code}); it must be signed by a CA the broker trusts`;
  }
  if (/ALERT_PROTOCOL_VERSION$/.test(code ?? "")) return `TLS: the broker and this process share no TLS version (${code}); arbeider needs TLS 1.2 or newer`;
  if (/PLAIN login refused|ACCESS.REFUSED - Login was refused/i.test(message)) return `${message} (check the user and password in AMQP_URL)`;
  if (/ACCESS.REFUSED/.test(message)) return `${message} (check the broker user's permissions: docs/install.md, step 1, and docs/operations.md)`;
  // The webhook declares the exchanges; a worker started first, or in another fleet, finds none.
  if (/NOT_FOUND - no exchange '[^']*\.commands'/.test(message)) return `${message} (is the webhook running, with the same ARBEIDER_FLEET? It declares the exchanges)`;
  return message;
}
