/**
 * Tighter inputs at the webhook's doors, against `bun webhook.ts` over real
 * sockets: a body over ARBEIDER_MAX_BODY is answered 413 in a way a client
 * that writes its whole body first still reads (no broken pipe), and a
 * browser holding the dashboard's credentials cannot be made to deploy by a
 * page of another origin, nor with a body that is not JSON.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { makeKeys, openFleet, removeDirs, tempDir, type Fleet } from "./helpers.ts";
import { startWebhook, type Webhook } from "./stack.ts";

const API_KEY = "inputs-test-key-0123456789abcdef";
const MAX_BODY = 65_536;
let fleet: Fleet;
let webhook: Webhook;
let dir: string;

beforeAll(async () => {
  dir = tempDir();
  fleet = await openFleet("in");
  webhook = await startWebhook({
    ARBEIDER_FLEET: fleet.fleet,
    ARBEIDER_SIGNING_KEY_FILE: makeKeys(dir).signingFile,
    ARBEIDER_API_KEY: API_KEY,
    CODESHIP_PROJECT_ID: "412345",
    ARBEIDER_MAX_BODY: String(MAX_BODY),
  });
}, 60_000);

afterAll(async () => {
  await webhook?.proc.stop(5000);
  await fleet?.cleanup();
  removeDirs(dir);
});

/** Writes a whole request (head and body) at once, then reads the answer's status line, over a raw socket. */
function rawRequest(path: string, body: Uint8Array, headers: Record<string, string> = {}): Promise<string> {
  const { port } = new URL(webhook.url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port: Number(port) });
    let answer = "";
    socket.on("data", (chunk) => (answer += chunk.toString("latin1")));
    socket.on("error", (error) => reject(error));
    socket.on("close", () => resolve(answer.split("\r\n")[0] ?? ""));
    socket.on("connect", () => {
      const head = [`POST ${path} HTTP/1.1`, "Host: 127.0.0.1", "Content-Type: application/json", `Content-Length: ${body.byteLength}`, "Connection: close"];
      for (const [name, value] of Object.entries(headers)) head.push(`${name}: ${value}`);
      socket.write(`${head.join("\r\n")}\r\n\r\n`);
      socket.end(body);
    });
  });
}

describe("bodies over the limit", () => {
  test("a client that writes its whole body before reading gets the 413, every time", async () => {
    const body = new Uint8Array(MAX_BODY * 64).fill(0x20);
    const statuses = [];
    for (let i = 0; i < 12; i++) statuses.push(await rawRequest(`/hooks/codeship?api_key=${API_KEY}`, body));
    expect(statuses).toEqual(Array(12).fill("HTTP/1.1 413 Payload Too Large"));
    // The webhook is still fine afterwards.
    expect((await fetch(`${webhook.url}/healthz`)).status).toBe(200);
  }, 60_000);

  test("the 413 names the setting, also at the API", async () => {
    const res = await fetch(`${webhook.url}/api/deployments`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ command: "ping", pad: "x".repeat(MAX_BODY) }),
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toContain("ARBEIDER_MAX_BODY");
  });
});

describe("requests a browser could be made to send", () => {
  const basic = `Basic ${btoa(`any:${API_KEY}`)}`;
  const deploy = (headers: Record<string, string>) =>
    fetch(`${webhook.url}/api/deployments`, { method: "POST", headers: { authorization: basic, ...headers }, body: '{"command":"ping","allowEmpty":true}' });

  test("with HTTP Basic, an Origin of another site is refused 403; the webhook's own origin deploys", async () => {
    const foreign = await deploy({ "content-type": "application/json", origin: "https://evil.example" });
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as { error: string }).error).toContain("https://evil.example");
    expect((await deploy({ "content-type": "application/json", "sec-fetch-site": "cross-site" })).status).toBe(403);
    expect((await deploy({ "content-type": "application/json", origin: webhook.url })).status).toBe(202);
  });

  test("no Content-Type, or a form's, is a 415 and deploys nothing", async () => {
    for (const type of [undefined, "application/x-www-form-urlencoded", "text/plain"]) {
      const res = await deploy(type ? { "content-type": type } : {});
      expect(res.status).toBe(415);
    }
    const { deployments } = (await (await fetch(`${webhook.url}/api/deployments`, { headers: { authorization: basic } })).json()) as { deployments: unknown[] };
    expect(deployments).toHaveLength(1);
  });
});
