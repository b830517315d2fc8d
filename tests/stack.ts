/**
 * A whole installation for the operator-facing tests: `bun webhook.ts` on a
 * free port and `bun worker.ts` nodes (tests/worker-fixture.ts) in a fleet of
 * their own, ready once the webhook lists every node online. Also the CLI run
 * as a real process, and a webhook started alone (for bundles and Deno).
 */
import { afterAll, beforeAll, expect } from "bun:test";
import type { Deployment } from "../shared/served.ts";
import { randomUUID } from "node:crypto";
import { startProcess, waitUntil, type Proc } from "./helpers.ts";
import { withNodes, type NodeSpec, type Nodes } from "./worker-fixture.ts";

/** A webhook process and its base URL. */
export interface Webhook {
  proc: Proc;
  url: string;
}

/** Starts the webhook with `argv` on a free port and waits until `/healthz` answers 200. */
export async function startWebhook(env: Record<string, string>, argv = ["bun", "webhook.ts"], cwd?: string): Promise<Webhook> {
  const proc = startProcess(argv, { PORT: "0", HOST: "127.0.0.1", ...env }, cwd);
  const failed = proc.exited.then((code) => {
    throw new Error(`webhook exited with ${code} before it was ready:\n${proc.output()}`);
  });
  try {
    await Promise.race([proc.waitForLog('"msg":"listening"', 30_000), failed]);
    const url = `http://127.0.0.1:${/"msg":"listening".*?"port":(\d+)/.exec(proc.output())?.[1]}`;
    const healthy = async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.status === 200;
    await Promise.race([waitUntil(healthy, `${url}/healthz to answer 200`, 20_000), failed]);
    return { proc, url };
  } catch (error) {
    // A webhook that never became ready is stopped here: nobody else holds it.
    await proc.stop(2000);
    throw new Error(`${(error as Error).message}\nwebhook output:\n${proc.output()}`);
  }
}

export type Stack = Nodes & {
  url: string;
  apiKey: string;
  webhook: Proc;
  /** JSON from the webhook's API with the bearer key. */
  api<T = unknown>(path: string, init?: RequestInit): Promise<T>;
  /** `bun scripts/deploy.ts ...args` as a process with stdout a pipe (not a TTY). */
  cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Kills the webhook (SIGKILL by default) and starts it again on the same port and fleet. */
  restartWebhook(how?: "SIGKILL" | "SIGTERM"): Promise<Proc>;
  /** A second webhook of the same fleet and configuration, on a port of its own. */
  startReplica(): Promise<Webhook>;
};

/**
 * The workers' heartbeat period in these tests: short, so a node that stops
 * is seen gone in seconds, and not so short that a machine busy with many
 * processes stalls a node past its three periods and counts it gone.
 */
export const HEARTBEAT_SECONDS = "2";

export interface StackOptions {
  /** More variables for the webhook. */
  webhookEnv?: (nodes: Nodes) => Record<string, string>;
  /** More variables for every worker. */
  workerEnv?: (node: string, nodes: Nodes) => Record<string, string>;
}

/** Runs `body` with a webhook and `specs` workers ready, then stops and removes all of it. */
export async function withStack(specs: NodeSpec[], body: (stack: Stack) => Promise<void>, prefix = "op", options: StackOptions = {}): Promise<void> {
  await withNodes(specs, async (nodes) => {
    const apiKey = `k${randomUUID().replaceAll("-", "")}`;
    const webhookEnv = {
      ARBEIDER_FLEET: nodes.fleet.fleet,
      ARBEIDER_SIGNING_KEY_FILE: nodes.keys.signingFile,
      ARBEIDER_API_KEY: apiKey,
      ...options.webhookEnv?.(nodes),
    };
    let webhook = await startWebhook(webhookEnv);
    try {
      const api = async <T>(path: string, init: RequestInit = {}): Promise<T> => {
        const response = await fetch(`${webhook.url}${path}`, { ...init, headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" } });
        return (await response.json()) as T;
      };
      await Promise.all(specs.map((spec) => nodes.start(spec.id, { ARBEIDER_HEARTBEAT_SECONDS: HEARTBEAT_SECONDS, ...options.workerEnv?.(spec.id, nodes) })));
      await waitUntil(async () => {
        const { nodes: seen } = await api<{ nodes: { node: string; online: boolean }[] }>("/api/nodes");
        return specs.every((spec) => seen.some((n) => n.node === spec.id && n.online));
      }, "every node online at the webhook", 20_000);
      const cli = async (...args: string[]) => {
        const child = Bun.spawn([process.execPath, "scripts/deploy.ts", ...args], {
          cwd: `${import.meta.dir}/..`,
          env: { PATH: process.env.PATH ?? "", ARBEIDER_URL: webhook.url, ARBEIDER_API_KEY: apiKey },
          stdout: "pipe",
          stderr: "pipe",
        });
        const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
        return { code, stdout, stderr };
      };
      const stack: Stack = {
        ...nodes,
        url: webhook.url,
        apiKey,
        webhook: webhook.proc,
        api,
        cli,
        async restartWebhook(how = "SIGKILL") {
          if (how === "SIGKILL") webhook.proc.child.kill("SIGKILL");
          await webhook.proc.stop(5000);
          webhook = await startWebhook({ ...webhookEnv, PORT: String(new URL(webhook.url).port) });
          stack.webhook = webhook.proc;
          return webhook.proc;
        },
        startReplica: () => startWebhook(webhookEnv),
      };
      await body(stack);
    } finally {
      await webhook.proc.stop(5000);
    }
  }, prefix);
}

/** One stack for every test of a file: ready in `beforeAll`, removed in `afterAll`. */
export function useStack(specs: NodeSpec[], prefix?: string, options?: StackOptions): () => Stack {
  let stack: Stack | undefined;
  let release!: () => void;
  let finished: Promise<void> | undefined;
  beforeAll(
    () =>
      new Promise<void>((ready, fail) => {
        finished = withStack(specs, (s) => {
          stack = s;
          ready();
          return new Promise<void>((resolve) => (release = resolve));
        }, prefix, options).catch(fail);
      }),
    60_000,
  );
  afterAll(async () => {
    release?.();
    await finished;
  }, 30_000);
  return () => {
    if (!stack) throw new Error("the stack did not start (see beforeAll)");
    return stack;
  };
}

/** Posts an update of master at `commit` with `strategy`; returns the deployment id. */
export async function rollOut(s: Pick<Stack, "url" | "apiKey">, commit: string, strategy: string, target = "all"): Promise<string> {
  const res = await fetch(`${s.url}/api/deployments`, {
    method: "POST",
    headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ command: "update", target, args: { branch: "master", commit }, strategy }),
  });
  const body = (await res.json()) as { deployment: string };
  expect(res.status).toBe(202);
  return body.deployment;
}

/** Waits until the deployment's state is one of `states`, and returns it. */
export function settled(s: Pick<Stack, "api">, id: string, states: string[], timeoutMs = 40_000): Promise<Deployment> {
  return waitUntil(async () => {
    const d = await s.api<Deployment>(`/api/deployments/${id}`);
    return states.includes(d.state) ? d : undefined;
  }, `${id} to be ${states.join(" or ")}`, timeoutMs, 100);
}

