/**
 * arbeider over TLS, on a private TLS-only broker with certificates made by
 * openssl at test time (tests/tls-fixture.ts): a webhook and three workers
 * connect over amqps:// with ARBEIDER_AMQP_CA_FILE (one worker with
 * NODE_EXTRA_CA_CERTS instead, one under Deno) and client certificates, and a
 * deployment goes through; a wrong CA, a host name the certificate does not
 * name, no client certificate and one from another CA are each refused with a
 * line saying what to fix; the broker speaks nothing older than TLS 1.2; and
 * scripts/rabbitmq.sh probes an amqps:// URL over TLS and never starts a
 * plain broker for one. A TLS file that cannot be read is a configuration
 * error (exit 2), broker or not.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { portFree, run, type BrokerNode } from "../scripts/cluster.ts";
import { ROOT, head, makeKeys, removeDirs, startProcess, stopAll, tempDir } from "./helpers.ts";
import { skipNote } from "./skip.ts";
import { startRemoteStack } from "./remote-stack.ts";
import { makeCertificates, startTlsNode, type Certificates } from "./tls-fixture.ts";

// Private brokers run as the rabbitmq user through Debian's wrapper, which needs root.
const reason = process.getuid?.() !== 0 ? "needs root to start private RabbitMQ nodes" : !existsSync("/usr/sbin/rabbitmq-server") ? "needs Debian's rabbitmq-server" : undefined;
const { testIf, title } = skipNote("TLS", reason);

describe("TLS", () => {
  const dir = tempDir("arbeider-tls-");
  let certs: Certificates;
  let node: BrokerNode;
  let url: string;
  beforeAll(async () => {
    if (reason) return;
    certs = await makeCertificates(dir);
    node = await startTlsNode(join(dir, "broker"), certs);
    url = `amqps://guest:guest@localhost:${node.port}`;
  }, 90_000);
  afterAll(async () => {
    await stopAll();
    await node?.kill();
    removeDirs(dir);
  });
  /** The client side of mutual TLS, as a process's environment. */
  const clientEnv = () => ({ ARBEIDER_AMQP_CERT_FILE: certs.clientCert, ARBEIDER_AMQP_KEY_FILE: certs.clientKey });

  testIf(title("a webhook and workers (one under Deno) connect with ARBEIDER_AMQP_CA_FILE (or NODE_EXTRA_CA_CERTS) and client certificates, and a deployment goes through"), async () => {
    const stack = await startRemoteStack({
      dir: join(dir, "fleet"),
      fleet: `tls-${crypto.randomUUID().slice(0, 8)}`,
      shared: { AMQP_URL: url, ...clientEnv() },
      webhook: { ARBEIDER_AMQP_CA_FILE: certs.ca },
      nodes: { t1: { ARBEIDER_AMQP_CA_FILE: certs.ca }, t2: { NODE_EXTRA_CA_CERTS: certs.ca }, t3: { ARBEIDER_AMQP_CA_FILE: certs.ca } },
      runtimes: { t3: [join(ROOT, "node_modules/.bin/deno"), "run", "-A", "worker.ts"] },
    });
    try {
      const commit = stack.origin.commit("master", { VERSION: "over TLS\n" }, "deploy over TLS");
      const done = await stack.finished(await stack.deploy({ command: "update", args: { branch: "master", commit } }), 30_000);
      expect(done.state).toBe("succeeded");
      for (const id of ["t1", "t2", "t3"]) expect(head(stack.repos[id]!)).toBe(commit);
      expect(stack.webhook.proc.output()).toMatch(/"msg":"connected to broker".*"broker":"amqps:\/\/guest:\*\*\*@localhost:/);
    } finally {
      await stopAll();
    }
  }, 90_000);

  const refusals: [string, () => Record<string, string>, string][] = [
    ["a CA that did not sign the broker's certificate", () => ({ AMQP_URL: url, ARBEIDER_AMQP_CA_FILE: certs.otherCa, ...clientEnv() }), "not signed by a CA this process trusts"],
    ["no CA at all (the system's store)", () => ({ AMQP_URL: url, ...clientEnv() }), "give the CA's PEM file in ARBEIDER_AMQP_CA_FILE"],
    ["a host name the certificate does not name", () => ({ AMQP_URL: url.replace("localhost", "127.0.0.1"), ARBEIDER_AMQP_CA_FILE: certs.ca, ...clientEnv() }), "not valid for the host in AMQP_URL"],
    ["no client certificate", () => ({ AMQP_URL: url, ARBEIDER_AMQP_CA_FILE: certs.ca }), "requires a client certificate"],
    [
      "a client certificate of another CA",
      () => ({ AMQP_URL: url, ARBEIDER_AMQP_CA_FILE: certs.ca, ARBEIDER_AMQP_CERT_FILE: certs.strangerCert, ARBEIDER_AMQP_KEY_FILE: certs.strangerKey }),
      "refused this process's client certificate",
    ],
  ];
  testIf(title("a wrong CA, a wrong host name and a missing or foreign client certificate are refused with a line saying what to fix"), async () => {
    const keys = makeKeys(join(dir, "refusal-keys"));
    const webhooks = refusals.map(([, env]) =>
      startProcess(["bun", "webhook.ts"], { PORT: "0", HOST: "127.0.0.1", ARBEIDER_FLEET: "tls-refused", ARBEIDER_SIGNING_KEY_FILE: keys.signingFile, ARBEIDER_API_KEY: "refused-0123456789", ...env() }),
    );
    try {
      await Promise.all(webhooks.map((proc, i) => proc.waitForLog(refusals[i]![2], 20_000)));
      for (const proc of webhooks) expect(proc.output()).not.toContain('"msg":"connected to broker"');
    } finally {
      await Promise.all(webhooks.map((proc) => proc.stop(2000)));
    }
  }, 30_000);

  testIf(title("the broker refuses TLS 1.1 and speaks TLS 1.2"), async () => {
    const client = ["-connect", `127.0.0.1:${node.port}`, "-CAfile", certs.ca, "-cert", certs.clientCert, "-key", certs.clientKey];
    const old = await run(["openssl", "s_client", ...client, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], {}, 10_000);
    // The broker's own alert (70, protocol version): the client offered TLS 1.1 and was refused.
    expect(old.output).toContain("alert protocol version");
    const current = await run(["openssl", "s_client", ...client, "-tls1_2"], {}, 10_000);
    expect(current.output).toMatch(/Protocol\s*: TLSv1\.2/);
    expect(current.output).not.toContain("alert");
  }, 30_000);

  testIf(title("scripts/rabbitmq.sh probes an amqps:// URL over TLS, and never starts a plain broker for one"), async () => {
    const script = (env: Record<string, string>) => run(["bash", join(ROOT, "scripts", "rabbitmq.sh")], env, 30_000);
    const good = await script({ AMQP_URL: url, ARBEIDER_AMQP_CA_FILE: certs.ca, ...clientEnv() });
    expect(good).toMatchObject({ code: 0, output: expect.stringContaining(`broker answers at localhost:${node.port} (TLS)`) });
    const untrusted = await script({ AMQP_URL: url, ARBEIDER_AMQP_CA_FILE: certs.otherCa, ...clientEnv() });
    expect(untrusted.code).toBe(1);
    expect(untrusted.output).toContain("handshake failed: SELF_SIGNED_CERT_IN_CHAIN");

    let port = node.port + 1;
    while (!(await portFree(port))) port++;
    const nobody = await script({ AMQP_URL: `amqps://guest:guest@localhost:${port}` });
    expect(nobody.code).toBe(1);
    expect(nobody.output).toContain(`no TLS broker answers at localhost:${port}`);
    expect(await portFree(port)).toBe(true);
    expect(existsSync(join(ROOT, ".rabbitmq", String(port)))).toBe(false);
  }, 60_000);
});

test("bun webhook.ts and bun worker.ts exit 2 with one line naming ARBEIDER_AMQP_CA_FILE when it cannot be read", async () => {
  const dir = tempDir();
  try {
    const keys = makeKeys(dir);
    const tls = { AMQP_URL: "amqps://guest:guest@localhost:5671", ARBEIDER_AMQP_CA_FILE: join(dir, "missing-ca.pem") };
    const webhook = startProcess(["bun", "webhook.ts"], { ...tls, ARBEIDER_SIGNING_KEY_FILE: keys.signingFile, ARBEIDER_API_KEY: "tls-config-0123456789" });
    const worker = startProcess(["bun", "worker.ts"], { ...tls, ARBEIDER_VERIFY_KEY_FILE: keys.verifyFile, ARBEIDER_REPO_DIR: ROOT });
    for (const proc of [webhook, worker]) {
      expect(await proc.exited).toBe(2);
      expect(proc.output().trim()).toMatch(new RegExp(`^[a-z ]+: ARBEIDER_AMQP_CA_FILE: cannot read ${join(dir, "missing-ca.pem")}: ENOENT$`));
    }
  } finally {
    removeDirs(dir);
  }
});
