/**
 * Benchmark 2, webhook rate: Codeship `success` notifications with distinct
 * build ids (each a whole deploy: key check, validation, signing, confirmed
 * publish, history record) and Codeship steps that are not a success
 * (ignored), 50 connections for 10 s each. Floors on the same runtime: a bare
 * Hono app answering 202, a Hono app doing HMAC plus one persistent
 * confirmed publish, and one doing what the contract's order asks of the
 * broker, a confirmed command then a confirmed record into a stream it
 * follows (bench/http-floor.ts). Peer: Debian's `webhook`
 * (adnanh/webhook) with an HMAC rule running /bin/true, when installed.
 */
import { createHmac } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, waitForPort, type Harness, type Proc } from "./harness.ts";
import { API_KEY, codeship, startWebhook } from "./fleet.ts";
import { ensurePackages, runs } from "./install.ts";
import { ensureWrk, load, type LoadOptions, type LoadResult } from "./load.ts";
import { result, type Result } from "./results.ts";

const CONNECTIONS = 50;
const SECRET = "bench-hmac-secret";
const JSON_HEADERS = { "Content-Type": "application/json" };

/** The same body with a fixed build id and its GitHub-style HMAC header, for servers without deduplication. */
function signed(status: string): { body: string; headers: Record<string, string> } {
  const body = codeship(status).replaceAll("{{n}}", "70811234");
  return { body, headers: { ...JSON_HEADERS, "X-Hub-Signature-256": `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}` } };
}

/** Starts adnanh/webhook with one hook: HMAC over the body, status must be success, then /bin/true. */
async function startPeer(h: Harness): Promise<{ proc: Proc; url: string }> {
  const port = await freePort();
  const hooks = join(h.dir, "peer-hooks.json");
  const hmac = { match: { type: "payload-hmac-sha256", secret: SECRET, parameter: { source: "header", name: "X-Hub-Signature-256" } } };
  const success = { match: { type: "value", value: "success", parameter: { source: "payload", name: "build.status" } } };
  writeFileSync(hooks, JSON.stringify([{ id: "codeship", "execute-command": "/bin/true", "trigger-rule": { and: [hmac, success] } }]));
  const proc = h.spawn(["webhook", "-hooks", hooks, "-ip", "127.0.0.1", "-port", String(port)]);
  await waitForPort(port);
  return { proc, url: `http://127.0.0.1:${port}/hooks/codeship` };
}

/** Checks one request answers `status` before loading a server with it. */
async function expectStatus(url: string, body: string, headers: Record<string, string>, status: number): Promise<void> {
  const response = await fetch(url, { method: "POST", body: body.replaceAll("{{n}}", "1"), headers });
  const text = await response.text();
  if (response.status !== status) throw new Error(`${url} answered ${response.status} instead of ${status}: ${text}`);
}

export async function webhookRate(h: Harness): Promise<Result[]> {
  // A quick (smoke) run stays quick: it measures the rate only where wrk is installed already.
  if (!ensureWrk(!h.quick)) {
    console.error("bench: webhook rate skipped: wrk is not installed (Debian: apt-get install wrk)");
    return [];
  }
  const seconds = h.quick ? 1 : 10;
  let firstN = 1_000_000;
  const measure = async (options: Omit<LoadOptions, "connections" | "seconds" | "dir">): Promise<LoadResult> => {
    const common = { connections: CONNECTIONS, dir: h.dir, firstN };
    if (!h.quick) await load({ ...options, ...common, seconds: 1 }); // warm-up, not counted
    firstN += 10_000_000;
    const measured = await load({ ...options, ...common, firstN, seconds });
    firstN += 10_000_000;
    if (measured.errors > 0) throw new Error(`${options.url}: ${measured.errors} of ${measured.requests} requests failed`);
    return measured;
  };
  const procs: Proc[] = [];
  try {
    const webhook = await startWebhook(h, h.fleet("rate"));
    procs.push(webhook.proc);
    const hook = `${webhook.url}/hooks/codeship?api_key=${API_KEY}`;
    await expectStatus(hook, codeship("success"), JSON_HEADERS, 202);
    await expectStatus(hook, codeship("testing"), JSON_HEADERS, 200);
    // Ignored steps first: the peer runs its command after answering, so its accepted run leaves work behind.
    const ignored = await measure({ url: hook, body: codeship("testing"), headers: JSON_HEADERS });
    const accepted = await measure({ url: hook, body: codeship("success"), headers: JSON_HEADERS });
    await webhook.proc.stop();

    const bare = await startFloor(h, "bare");
    procs.push(bare.proc);
    const bareRun = await measure({ url: bare.url, body: codeship("testing"), headers: JSON_HEADERS });
    await bare.proc.stop();
    const publish = await startFloor(h, "publish");
    procs.push(publish.proc);
    const publishRun = await measure({ url: publish.url, ...signed("success") });
    await publish.proc.stop();
    const record = await startFloor(h, "record");
    procs.push(record.proc);
    const recordRun = await measure({ url: record.url, ...signed("success") });
    await record.proc.stop();

    let peer: { accepted: LoadResult; ignored: LoadResult } | undefined;
    if (ensurePackages(["webhook"], () => runs("webhook", "-version"), !h.quick)) {
      const p = await startPeer(h);
      procs.push(p.proc);
      const ok = signed("success");
      const step = signed("testing");
      await expectStatus(p.url, ok.body, ok.headers, 200);
      const stepRun = await measure({ url: p.url, ...step });
      peer = { ignored: stepRun, accepted: await measure({ url: p.url, ...ok }) };
      await p.proc.stop();
    } else {
      console.error("bench: peer skipped: Debian's webhook is not installed (apt-get install webhook)");
    }
    console.error(`bench: webhook accepted ${accepted.rps.toFixed(0)}/s, ignored ${ignored.rps.toFixed(0)}/s`);
    return [
      result("webhook accepted deploys/s vs peer", accepted.rps, "req/s", peer?.accepted.rps ?? null, { ratioAtLeast: 1.5 }),
      result("webhook accepted p99 vs peer", accepted.p99Ms, "ms", peer?.accepted.p99Ms ?? null, { ratioBelow: 1 }),
      result("webhook ignored steps/s vs peer", ignored.rps, "req/s", peer?.ignored.rps ?? null, { ratioAtLeast: 5 }),
      result("webhook ignored p99 vs peer", ignored.p99Ms, "ms", peer?.ignored.p99Ms ?? null),
      result("webhook accepted deploys/s vs HMAC+publish floor", accepted.rps, "req/s", publishRun.rps),
      result("webhook accepted p50 vs HMAC+publish floor", accepted.p50Ms, "ms", publishRun.p50Ms),
      result("webhook accepted p99 vs HMAC+publish floor", accepted.p99Ms, "ms", publishRun.p99Ms),
      result("webhook accepted deploys/s vs command+record floor", accepted.rps, "req/s", recordRun.rps),
      result("webhook ignored steps/s vs bare Hono", ignored.rps, "req/s", bareRun.rps),
      result("webhook ignored p50 vs bare Hono", ignored.p50Ms, "ms", bareRun.p50Ms),
      result("webhook ignored p99 vs bare Hono", ignored.p99Ms, "ms", bareRun.p99Ms),
    ];
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}

async function startFloor(h: Harness, mode: "bare" | "publish" | "record"): Promise<{ proc: Proc; url: string }> {
  const port = await freePort();
  const proc = h.spawn(["bun", "bench/http-floor.ts"], { BENCH_MODE: mode, PORT: String(port), BENCH_SECRET: SECRET, BENCH_EXCHANGE: `bench.floor.${port}` });
  await proc.waitForLine("listening");
  return { proc, url: `http://127.0.0.1:${port}/hooks/codeship` };
}
