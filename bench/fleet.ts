/**
 * Real arbeider processes for the benchmarks, started the way users start
 * them: `bun webhook.ts` (ready once `/healthz` answers 200) and `bun
 * worker.ts` per node on its own clone (ready once it logs that it consumes),
 * plus the origin repository and clones they work on.
 */
import amqp from "amqplib";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { declareExchanges } from "../shared/topology.ts";
import { cloneNode, git, waitUntil } from "../tests/helpers.ts";
import { freePort, type Harness, type Proc } from "./harness.ts";
import type { Tap } from "./tap.ts";

export const API_KEY = "bench-api-key-0123456789";
export const CODESHIP_PROJECT = "412345";
/** What a worker logs once its consumer is registered. */
export const CONSUMING = '"msg":"consuming"';

export interface Webhook {
  proc: Proc;
  url: string;
  /** POST /api/deployments; resolves with the deployment id. */
  deploy(request: DeployRequest): Promise<string>;
  /** Deploys `request` and resolves with the ms from the POST until `n` nodes' `succeeded` reached `tap`. */
  roundTrip(tap: Tap, request: DeployRequest, n: number, timeoutMs: number): Promise<number>;
}

type DeployRequest = { command: string; target?: string; args?: Record<string, string> };

/** `bun webhook.ts` for `fleet` (with `env` added), ready to take requests. */
export async function startWebhook(h: Harness, fleet: string, env: Record<string, string> = {}): Promise<Webhook> {
  const port = await freePort();
  const proc = h.spawn(["bun", "webhook.ts"], {
    ARBEIDER_FLEET: fleet,
    PORT: String(port),
    HOST: "127.0.0.1",
    ARBEIDER_SIGNING_KEY_FILE: h.keys.signingFile,
    ARBEIDER_API_KEY: API_KEY,
    ARBEIDER_BRANCHES: "master",
    CODESHIP_PROJECT_ID: CODESHIP_PROJECT,
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  const healthy = async () => {
    if (proc.child.exitCode !== null) throw new Error(`the webhook exited with ${proc.child.exitCode}:\n${proc.tail()}`);
    return fetch(`${url}/healthz`).then((r) => r.ok, () => false);
  };
  await waitUntil(healthy, "the webhook's /healthz to answer 200", 30_000, 20);
  const webhook: Webhook = {
    proc,
    url,
    async roundTrip(tap, request, n, timeoutMs) {
      const t0 = performance.now();
      const deployment = await webhook.deploy(request);
      const at = await tap.tally.wait(deployment, n, timeoutMs);
      tap.tally.drop(deployment);
      return at - t0;
    },
    async deploy(request) {
      const response = await fetch(`${url}/api/deployments`, {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
        body: JSON.stringify(request),
      });
      const body = (await response.json()) as { deployment?: string; error?: string };
      if (response.status !== 202 || !body.deployment) throw new Error(`POST /api/deployments answered ${response.status}: ${JSON.stringify(body)}`);
      return body.deployment;
    },
  };
  return webhook;
}

export interface Repos {
  origin: string;
  /** Commits a change on master and pushes it; returns the sha. */
  commit(files: Record<string, string>): string;
  /** A new clone of origin on master at `dir/<name>`. */
  clone(name: string): string;
}

const IDENTITY = ["-c", "user.name=arbeider bench", "-c", "user.email=bench@arbeider.invalid"];

/** An origin repository whose master has a trivial update.sh, in `dir`. */
export function makeRepos(dir: string): Repos {
  const origin = join(dir, "origin.git");
  const author = join(dir, "author");
  mkdirSync(author, { recursive: true });
  git(dir, "init", "--quiet", "--bare", "--initial-branch=master", origin);
  git(author, "init", "--quiet", "--initial-branch=master");
  git(author, "remote", "add", "origin", origin);
  const commit = (files: Record<string, string>) => {
    for (const [name, content] of Object.entries(files)) writeFileSync(join(author, name), content, { mode: name.endsWith(".sh") ? 0o755 : 0o644 });
    git(author, "add", "-A");
    git(author, ...IDENTITY, "commit", "--quiet", "-m", `bench: ${Object.keys(files).join(", ")}`);
    git(author, "push", "--quiet", "origin", "master");
    return git(author, "rev-parse", "HEAD");
  };
  commit({ "update.sh": "#!/bin/sh\nexit 0\n" });
  return { origin, commit, clone: (name) => cloneNode(origin, join(dir, name)) };
}

/** Fleets whose exchanges this run declared. */
const declared = new Set<string>();

/**
 * `bun worker.ts` (or `argv`) as `node` on `repo`; resolves once it consumes.
 * The fleet's exchanges are declared first, as a webhook would (a worker declares only its queue).
 */
export async function startWorker(h: Harness, fleet: string, node: string, repo: string, argv = ["bun", "worker.ts"]): Promise<Proc> {
  if (!declared.has(fleet)) {
    const connection = await amqp.connect(h.amqpUrl);
    await declareExchanges(await connection.createConfirmChannel(), fleet);
    await connection.close();
    declared.add(fleet);
  }
  const proc = h.spawn(argv, {
    ARBEIDER_FLEET: fleet,
    ARBEIDER_NODE_ID: node,
    ARBEIDER_REPO_DIR: repo,
    ARBEIDER_VERIFY_KEY_FILE: h.keys.verifyFile,
  });
  await proc.waitForLine(CONSUMING, 60_000);
  return proc;
}
