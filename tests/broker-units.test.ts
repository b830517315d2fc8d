/**
 * The broker's pure parts as tables: the per-process URL order, the heartbeat
 * added to URLs, the lines a failed connection is explained with, the shared
 * variables for TLS and confirms, the node queue's arguments, and how a dead
 * letter becomes a `failed` event.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { brokerSettings, explainConnectError, shuffle, withHeartbeat } from "../shared/broker-settings.ts";
import { ConfigError, SharedEnv, loadConfig } from "../shared/config.ts";
import { generateKeyPair, parseSigningKey, parseVerifyKeys } from "../shared/signing.ts";
import { nodeQueueArguments } from "../shared/topology.ts";
import { deadLetterEvent } from "../webhook/dead-letters.ts";
import * as v from "valibot";
import { command, removeDirs, sign, tempDir } from "./helpers.ts";

/** A deterministic random source: the values in turn, over and over. */
const sequence = (...values: number[]) => {
  let i = 0;
  return () => values[i++ % values.length]!;
};

describe("URL order", () => {
  const urls = ["amqp://a", "amqp://b", "amqp://c"];
  test("is a permutation of the list, which is left as it was", () => {
    const order = shuffle(urls, sequence(0.5, 0.1));
    expect([...order].sort()).toEqual(urls);
    expect(urls).toEqual(["amqp://a", "amqp://b", "amqp://c"]);
  });
  test("differs between processes: each of the three nodes comes first for some random values", () => {
    const firsts = new Set([0, 0.4, 0.8].map((r) => shuffle(urls, sequence(r, r))[0]));
    expect(firsts.size).toBe(3);
  });
  test("is shuffled by brokerSettings, once", () => {
    const config = loadConfig(v.object(SharedEnv), { AMQP_URL: urls.join(",") });
    expect(brokerSettings(config, sequence(0)).urls).toEqual(["amqp://b", "amqp://c", "amqp://a"]);
  });
});

describe("withHeartbeat", () => {
  const cases: [string, string][] = [
    ["amqp://u:p@h:5672", "amqp://u:p@h:5672?heartbeat=3"],
    ["amqps://u:p@h/vhost?frameMax=8192", "amqps://u:p@h/vhost?frameMax=8192&heartbeat=3"],
    ["amqp://u:p@h?heartbeat=30", "amqp://u:p@h?heartbeat=30"],
    ["not a url", "not a url"],
  ];
  for (const [url, expected] of cases) test(`${url} -> ${expected}`, () => expect(withHeartbeat(url)).toBe(expected));
});

describe("explainConnectError", () => {
  const error = (code: string, message: string) => Object.assign(new Error(message), { code });
  const cases: [string, unknown, RegExp][] = [
    ["an untrusted CA", error("SELF_SIGNED_CERT_IN_CHAIN", "self signed certificate in certificate chain"), /not signed by a CA this process trusts.*ARBEIDER_AMQP_CA_FILE/],
    ["a missing issuer", error("UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "unable to get local issuer certificate"), /ARBEIDER_AMQP_CA_FILE/],
    ["another host name", error("ERR_TLS_CERT_ALTNAME_INVALID", "IP: 127.0.0.1 is not in the cert's list"), /not valid for the host in AMQP_URL.*127\.0\.0\.1/],
    ["an expired certificate", error("CERT_HAS_EXPIRED", "certificate has expired"), /outside its validity period/],
    ["no client certificate (Bun)", error("ERR_SSL_TLSV1_ALERT_CERTIFICATE_REQUIRED", "error:1000045c"), /requires a client certificate.*ARBEIDER_AMQP_CERT_FILE/],
    ["no client certificate (Node)", error("ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED", "alert 116"), /requires a client certificate/],
    ["a client certificate of another CA", error("ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE", "alert 42"), /refused this process's client certificate/],
    ["TLS 1.1 only", error("ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION", "alert 70"), /TLS 1\.2 or newer/],
    ["a wrong password", new Error('Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN."'), /check the user and password/],
    ["a missing permission", new Error("Operation failed: QueueDeclare; 403 (ACCESS-REFUSED) with message \"ACCESS_REFUSED - access to exchange 'arbeider.shop.dead' refused\""), /check the broker user's permissions/],
    ["no commands exchange yet", new Error("Operation failed: QueueBind; 404 (NOT-FOUND) with message \"NOT_FOUND - no exchange 'arbeider.shop.commands' in vhost '/'\""), /is the webhook running, with the same ARBEIDER_FLEET/],
    ["a refused connection", error("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:1"), /^connect ECONNREFUSED 127\.0\.0\.1:1$/],
  ];
  for (const [name, input, expected] of cases) test(name, () => expect(explainConnectError(input)).toMatch(expected));
});

describe("SharedEnv for brokers", () => {
  const dir = tempDir();
  const pem = join(dir, "ca.pem");
  const key = join(dir, "client.key");
  const notPem = join(dir, "notes.txt");
  writeFileSync(pem, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  writeFileSync(key, "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
  writeFileSync(notPem, "hello\n");
  const TLS = "amqps://u:p@rmq:5671";
  const load = (env: Record<string, string>) => loadConfig(v.object(SharedEnv), env);

  test("defaults: a 10 s confirm timeout and no TLS files", () => {
    expect(load({})).toMatchObject({ ARBEIDER_CONFIRM_TIMEOUT: 10 });
    expect(brokerSettings(load({})).tls).toEqual({ minVersion: "TLSv1.2" });
  });
  test("the CA, client certificate and key become socket options; the timeout milliseconds", () => {
    const config = load({ AMQP_URL: TLS, ARBEIDER_AMQP_CA_FILE: pem, ARBEIDER_AMQP_CERT_FILE: pem, ARBEIDER_AMQP_KEY_FILE: key, ARBEIDER_CONFIRM_TIMEOUT: "3" });
    const settings = brokerSettings(config);
    expect(settings.confirmTimeoutMs).toBe(3000);
    expect(settings.tls.ca![0]).toStartWith("-----BEGIN CERTIFICATE-----");
    expect(settings.tls.key).toStartWith("-----BEGIN PRIVATE KEY-----");
  });

  const problems: [string, Record<string, string>, string][] = [
    ["a CA file that does not exist", { AMQP_URL: TLS, ARBEIDER_AMQP_CA_FILE: join(dir, "nope.pem") }, "ARBEIDER_AMQP_CA_FILE: cannot read"],
    ["a CA file that is a folder", { AMQP_URL: TLS, ARBEIDER_AMQP_CA_FILE: dir }, "ARBEIDER_AMQP_CA_FILE: cannot read"],
    ["a CA file with no certificate", { AMQP_URL: TLS, ARBEIDER_AMQP_CA_FILE: notPem }, "ARBEIDER_AMQP_CA_FILE: " + notPem + " holds no PEM certificate"],
    ["a key file with no key", { AMQP_URL: TLS, ARBEIDER_AMQP_CERT_FILE: pem, ARBEIDER_AMQP_KEY_FILE: pem }, "ARBEIDER_AMQP_KEY_FILE: " + pem + " holds no PEM private key"],
    ["a certificate without its key", { AMQP_URL: TLS, ARBEIDER_AMQP_CERT_FILE: pem }, "ARBEIDER_AMQP_KEY_FILE: is required with ARBEIDER_AMQP_CERT_FILE"],
    ["a key without its certificate", { AMQP_URL: TLS, ARBEIDER_AMQP_KEY_FILE: key }, "ARBEIDER_AMQP_CERT_FILE: is required with ARBEIDER_AMQP_KEY_FILE"],
    ["a CA with only plain URLs", { AMQP_URL: "amqp://u:p@rmq", ARBEIDER_AMQP_CA_FILE: pem }, "AMQP_URL: must have amqps:// URLs"],
    ["a confirm timeout of zero", { ARBEIDER_CONFIRM_TIMEOUT: "0" }, "ARBEIDER_CONFIRM_TIMEOUT: must be at least 1"],
    ["a confirm timeout with a unit", { ARBEIDER_CONFIRM_TIMEOUT: "10s" }, "ARBEIDER_CONFIRM_TIMEOUT: must be a whole number"],
  ];
  for (const [name, env, message] of problems) {
    test(`${name} is a ConfigError naming the variable`, () => {
      let error: unknown;
      try {
        load(env);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toStartWith(message);
    });
  }
  afterAll(() => removeDirs(dir));
});

describe("node queue arguments", () => {
  test("a classic queue only expires", () => expect(nodeQueueArguments("shop", "classic")).toEqual({ "x-expires": 604_800_000 }));
  test("a quorum queue dead-letters to the fleet's dead exchange after 5 deliveries", () =>
    expect(nodeQueueArguments("shop", "quorum")).toEqual({
      "x-expires": 604_800_000,
      "x-queue-type": "quorum",
      "x-delivery-limit": 5,
      "x-dead-letter-exchange": "arbeider.shop.dead",
    }));
});

describe("deadLetterEvent", () => {
  const { signingPem, verifyPem } = generateKeyPair();
  const key = parseSigningKey(signingPem);
  const keys = parseVerifyKeys(verifyPem);
  const other = parseSigningKey(generateKeyPair().signingPem);
  const now = new Date("2030-01-02T03:04:05.000Z");
  const cmd = command("shop", { command: "update", args: { branch: "master" }, target: "all" });
  const letter = (body: unknown, signer = key, headers: Record<string, unknown> = {}) => {
    const { bytes, signature } = sign(body, signer);
    const base = { "x-arbeider-signature": signature, "x-first-death-queue": "arbeider.shop.node.web-1", "x-first-death-reason": "delivery_limit" };
    return { content: Buffer.from(bytes), properties: { headers: { ...base, ...headers } } } as never;
  };

  test("a signed command dead in web-1's queue is failed for web-1 with reason delivery limit", () => {
    expect(deadLetterEvent(letter(cmd), "shop", keys, now)).toEqual({
      ok: true,
      event: { v: 1, deployment: cmd.deployment, command: cmd.id, node: "web-1", state: "failed", at: now.toISOString(), reason: expect.stringMatching(/^delivery limit: delivered 6 times/) },
    });
  });
  const refused: [string, unknown, RegExp][] = [
    ["signed by another key", letter(cmd, other), /not signed by the webhook's key/],
    ["from another fleet's queue", letter(cmd, key, { "x-first-death-queue": "arbeider.other.node.web-1" }), /not from a node queue of fleet shop/],
    ["without a death queue", letter(cmd, key, { "x-first-death-queue": undefined }), /not from a node queue/],
    ["for another node than its queue's", letter({ ...cmd, target: "node:web-2" }), /node:web-2 dead in the queue of web-1/],
    ["that is not a command", letter({ hello: "world" }), /does not fit the schema/],
  ];
  for (const [name, message, reason] of refused) {
    test(`a dead letter ${name} is dropped`, () => {
      const verdict = deadLetterEvent(message as never, "shop", keys, now);
      expect(verdict.ok).toBe(false);
      expect(verdict.ok ? "" : verdict.reason).toMatch(reason);
    });
  }
});
