/**
 * End to end with real processes: `bun webhook.ts` and three `bun worker.ts`
 * on three clones of a real origin, in a fleet of their own. One installation
 * serves the cases of this file in order; each case uses its own builds and
 * commits. Codeship is played as Codeship plays it (initiated, testing,
 * success); restarts and a second webhook read the same history; a node down
 * until its command expires shows `missing`. At the end, no secret appears in
 * anything any process wrote.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Deployment } from "../shared/served.ts";
import { currentBranch, head, isClean, waitUntil, type Proc } from "./helpers.ts";
import { startWebhook, type Webhook } from "./stack.ts";
import { withNodes, type Nodes } from "./worker-fixture.ts";

const API_KEY = "e2e-api-key-5f3c2a9b7d1e";
const GITHUB_SECRET = "fixture-github-secret-9c1e";
const GITLAB_TOKEN = "fixture-gitlab-token-51ad";
const FIXTURES = join(import.meta.dir, "fixtures", "webhooks");
const NODES = [
  { id: "n1", groups: ["web"] },
  { id: "n2", groups: ["web"] },
  { id: "n3", groups: ["staging"] },
];

let nodes: Nodes;
let webhook: Webhook;
let release!: () => void;
let finished: Promise<void>;
/** Every webhook process started here, for the final look for secrets. */
const webhooks: Proc[] = [];

function webhookEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    ARBEIDER_FLEET: nodes.fleet.fleet,
    ARBEIDER_SIGNING_KEY_FILE: nodes.keys.signingFile,
    ARBEIDER_API_KEY: API_KEY,
    ARBEIDER_BRANCHES: "master,staging=group:staging,canary=node:n1",
    CODESHIP_PROJECT_ID: "412345",
    GITHUB_WEBHOOK_SECRET: GITHUB_SECRET,
    GITHUB_REPOSITORY: "acme/shop",
    GITLAB_WEBHOOK_TOKEN: GITLAB_TOKEN,
    GITLAB_PROJECT_ID: "2231",
    ARBEIDER_HISTORY_MAX_AGE: "1h",
    LOG_LEVEL: "debug",
    ...extra,
  };
}

async function startOwnWebhook(extra: Record<string, string> = {}): Promise<Webhook> {
  const started = await startWebhook(webhookEnv(extra));
  webhooks.push(started.proc);
  return started;
}

beforeAll(
  () =>
    new Promise<void>((ready, fail) => {
      finished = withNodes(NODES, async (made) => {
        nodes = made;
        webhook = await startOwnWebhook();
        await Promise.all(NODES.map((n) => nodes.start(n.id, { ARBEIDER_HEARTBEAT_SECONDS: "1" })));
        await waitUntil(async () => (await nodesAt(webhook.url)).filter((n) => n.online).length === 3, "three nodes online at the webhook");
        ready();
        await new Promise<void>((resolve) => (release = resolve));
        for (const proc of webhooks) await proc.stop(5000);
      }, "e2e").catch(fail);
    }),
  60_000,
);

afterAll(async () => {
  release?.();
  await finished;
}, 30_000);

async function api<T>(url: string, path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(`${url}${path}`, { ...init, headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" } });
  return (await res.json()) as T;
}

const nodesAt = async (url: string) => (await api<{ nodes: { node: string; online: boolean }[] }>(url, "/api/nodes")).nodes;
const deploymentAt = (url: string, id: string) => api<Deployment>(url, `/api/deployments/${id}`);

let builds = 0;
/** Codeship's notification for one step of a build of `branch` at `commit`. */
function codeship(url: string, build: number, status: string, branch: string, commit: string): Promise<Response> {
  const payload = JSON.parse(readFileSync(join(FIXTURES, "codeship-success-master.json"), "utf8"));
  Object.assign(payload.build, { build_id: build, status, branch, commit_id: commit, short_commit_id: commit.slice(0, 5) });
  return fetch(`${url}/hooks/codeship?api_key=${API_KEY}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload, null, 2) });
}

/** Plays a build as Codeship does: initiated, testing, then success; returns the answer to the last. */
async function playBuild(branch: string, commit: string): Promise<{ id: string; answer: Response }> {
  const build = 90_000_000 + ++builds;
  for (const status of ["initiated", "testing"]) {
    const res = await codeship(webhook.url, build, status, branch, commit);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ignored: `build status is ${status}` });
  }
  return { id: `codeship-${build}`, answer: await codeship(webhook.url, build, "success", branch, commit) };
}

function finished_(url: string, id: string, state: Deployment["state"] = "succeeded", timeoutMs = 20_000): Promise<Deployment> {
  return waitUntil(async () => {
    const d = await deploymentAt(url, id);
    return d.state === state ? d : undefined;
  }, `${id} to be ${state} at ${url}`, timeoutMs);
}

const runsOf = (node: string, id: string) => nodes.runs(node).filter((line) => line.includes(`deployment=${id} `));

let firstDeployment: Deployment;

describe("webhook end to end", () => {
  test("a Codeship build played as Codeship plays it puts every checkout at the commit", async () => {
    const commit = nodes.origin.commit("master", { "app.txt": "release 1\n" }, "release 1");
    const { id, answer } = await playBuild("master", commit);
    expect(answer.status).toBe(202);
    expect(await answer.json()).toEqual({ deployment: id, duplicate: false });

    const deployment = await finished_(webhook.url, id);
    expect(deployment.expected).toEqual(["n1", "n2", "n3"]);
    expect(Object.keys(deployment.nodes).sort()).toEqual(["n1", "n2", "n3"]);
    for (const node of ["n1", "n2", "n3"]) {
      expect(deployment.nodes[node]).toMatchObject({ state: "succeeded", commitAfter: commit });
      expect(head(nodes.repos[node])).toBe(commit);
      expect(currentBranch(nodes.repos[node])).toBe("master");
      expect(isClean(nodes.repos[node])).toBe(true);
    }
    firstDeployment = deployment;

    const again = await codeship(webhook.url, Number(id.slice("codeship-".length)), "success", "master", commit);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ deployment: id, duplicate: true });
    expect(nodes.fleet.of(id).filter((e) => e.state === "created")).toHaveLength(1);
    for (const node of ["n1", "n2", "n3"]) expect(runsOf(node, id)).toHaveLength(1);
  });

  test("ARBEIDER_BRANCHES routes staging to group:staging and canary to node:n1", async () => {
    const staging = nodes.origin.commit("staging", { "app.txt": "staging build\n" }, "staging");
    const toGroup = await playBuild("staging", staging);
    expect(toGroup.answer.status).toBe(202);
    const canary = nodes.origin.commit("canary", { "app.txt": "canary build\n" }, "canary");
    const toNode = await playBuild("canary", canary);
    expect(toNode.answer.status).toBe(202);

    const group = await finished_(webhook.url, toGroup.id);
    expect(group.expected).toEqual(["n3"]);
    expect(Object.keys(group.nodes)).toEqual(["n3"]);
    expect(head(nodes.repos.n3)).toBe(staging);
    const node = await finished_(webhook.url, toNode.id);
    expect(node.expected).toEqual(["n1"]);
    expect(Object.keys(node.nodes)).toEqual(["n1"]);
    expect(head(nodes.repos.n1)).toBe(canary);
    expect(runsOf("n2", toGroup.id)).toHaveLength(0);
    expect(runsOf("n2", toNode.id)).toHaveLength(0);
  });

  test("a second webhook serves the same view, and a restarted webhook still serves every node's outcome", async () => {
    const second = await startOwnWebhook();
    expect(await deploymentAt(second.url, firstDeployment.id)).toEqual(firstDeployment);
    const listed = async (url: string) => (await api<{ deployments: Deployment[] }>(url, "/api/deployments")).deployments.map((d) => [d.id, d.state]);
    expect(await listed(second.url)).toEqual(await listed(webhook.url));

    await webhook.proc.stop();
    webhook = await startOwnWebhook();
    expect(await deploymentAt(webhook.url, firstDeployment.id)).toEqual(firstDeployment);
    await second.proc.stop();
  });

  test("an expected node that is down until the command expires shows missing, and the deployment failed", async () => {
    const shortLived = await startOwnWebhook({ ARBEIDER_COMMAND_TTL: "2" });
    await waitUntil(async () => (await nodesAt(shortLived.url)).some((n) => n.node === "n3" && n.online), "n3 online at the new webhook");
    // Down the way a node goes down: at once, without a word (its last heartbeat is at most a second old).
    nodes.worker("n3").child.kill("SIGKILL");
    await nodes.worker("n3").exited;
    const { deployment: id } = await api<{ deployment: string }>(shortLived.url, "/api/deployments", {
      method: "POST",
      body: JSON.stringify({ command: "ping", target: "group:staging" }),
    });
    expect((await deploymentAt(shortLived.url, id)).expected).toEqual(["n3"]);
    const failed = await finished_(shortLived.url, id, "failed", 10_000);
    expect(failed.nodes.n3).toMatchObject({ state: "missing" });
    expect(Date.parse(failed.expiresAt) - Date.parse(failed.createdAt)).toBe(2000);
    await shortLived.proc.stop();
  });

  test("no secret appears in anything a webhook or worker wrote", async () => {
    // Authentic but not deploying (main is not a deploy branch), and refused: both are logged.
    for (const file of ["github-workflow_run-success.json", "gitlab-pipeline-success.json"]) {
      const c = JSON.parse(readFileSync(join(FIXTURES, "cases.json"), "utf8")).find((x: { file: string }) => x.file === file);
      const body = readFileSync(join(FIXTURES, file));
      expect((await fetch(`${webhook.url}/hooks/${c.provider}`, { method: "POST", headers: c.headers, body })).status).toBe(200);
      expect((await fetch(`${webhook.url}/hooks/${c.provider}`, { method: "POST", headers: { ...c.headers, "X-Gitlab-Token": "nope" }, body })).status).toBeOneOf([200, 401]);
    }
    expect((await fetch(`${webhook.url}/hooks/codeship?api_key=wrong-${API_KEY}`, { method: "POST", body: "{}" })).status).toBe(401);
    const privateKey = readFileSync(nodes.keys.signingFile, "utf8").split("\n")[1];
    const output = [...webhooks.map((p) => p.output()), ...NODES.map((n) => nodes.worker(n.id).output())].join("\n");
    expect(output).toContain('"msg":"webhook"');
    for (const secret of [API_KEY, GITHUB_SECRET, GITLAB_TOKEN, privateKey]) expect(output).not.toContain(secret);
  });
});
