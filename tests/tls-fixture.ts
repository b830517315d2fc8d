/**
 * Certificates made with openssl at test time, and a private TLS-only
 * RabbitMQ node that uses them: a CA, a server certificate for `localhost`
 * only (so `127.0.0.1` is a host name the certificate does not name), a
 * client certificate signed by the CA, and a second CA with a client
 * certificate of its own, which the broker must refuse. The node has no plain
 * listener, offers TLS 1.2 and 1.3 only, and requires a client certificate.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { run, startNode, type BrokerNode } from "../scripts/cluster.ts";

export interface Certificates {
  dir: string;
  ca: string;
  otherCa: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate and key signed by the other CA. */
  strangerCert: string;
  strangerKey: string;
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"];

async function openssl(...args: string[]): Promise<void> {
  const { code, output } = await run(["openssl", ...args]);
  if (code !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${output}`);
}

/** Makes every certificate in `dir` (about a second). */
export async function makeCertificates(dir: string): Promise<Certificates> {
  const file = (name: string) => join(dir, name);
  const ca = (name: string, subject: string) => openssl("req", "-x509", ...EC, "-keyout", file(`${name}.key`), "-out", file(`${name}.pem`), "-subj", subject);
  const signed = async (name: string, by: string, subject: string, extra: string[] = []) => {
    await openssl("req", ...EC, "-keyout", file(`${name}.key`), "-out", file(`${name}.csr`), "-subj", subject, ...extra);
    // A serial of its own: certificates of one CA are signed at the same time, so a shared serial file would race.
    const issuer = ["-CA", file(`${by}.pem`), "-CAkey", file(`${by}.key`), "-set_serial", `0x${randomBytes(8).toString("hex")}`];
    await openssl("x509", "-req", "-in", file(`${name}.csr`), ...issuer, "-days", "2", "-copy_extensions", "copy", "-out", file(`${name}.pem`));
  };
  await Promise.all([ca("ca", "/CN=arbeider test CA"), ca("other-ca", "/CN=another CA")]);
  await Promise.all([
    signed("server", "ca", "/CN=localhost", ["-addext", "subjectAltName=DNS:localhost"]),
    signed("client", "ca", "/CN=arbeider-node"),
    signed("stranger", "other-ca", "/CN=stranger"),
  ]);
  return {
    dir,
    ca: file("ca.pem"),
    otherCa: file("other-ca.pem"),
    serverCert: file("server.pem"),
    serverKey: file("server.key"),
    clientCert: file("client.pem"),
    clientKey: file("client.key"),
    strangerCert: file("stranger.pem"),
    strangerKey: file("stranger.key"),
  };
}

/** Starts a TLS-only node in `dir` with `certs`; the certificates must be readable by the rabbitmq user. */
export async function startTlsNode(dir: string, certs: Certificates): Promise<BrokerNode> {
  await run(["chown", "-R", "rabbitmq:rabbitmq", certs.dir]);
  return startNode(dir, (port) => [
    "listeners.tcp = none",
    `listeners.ssl.default = 127.0.0.1:${port}`,
    `ssl_options.cacertfile = ${certs.ca}`,
    `ssl_options.certfile = ${certs.serverCert}`,
    `ssl_options.keyfile = ${certs.serverKey}`,
    "ssl_options.verify = verify_peer",
    "ssl_options.fail_if_no_peer_cert = true",
    // Without a list, Erlang offers TLS 1.0 and 1.1 too.
    "ssl_options.versions.1 = tlsv1.3",
    "ssl_options.versions.2 = tlsv1.2",
  ]);
}
