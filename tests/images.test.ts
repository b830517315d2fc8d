/**
 * The images of examples/ built and run with podman the way
 * examples/docker-compose.yml runs them, with the values read from that file
 * (environment, the app's command and user, health checks): the webhook in a
 * container, a worker on a mounted checkout with the app beside it in its
 * process namespace, a worker that clones its checkout at start, and the
 * test's own broker fleet on the machine's RabbitMQ (host networking). A
 * deployment through the webhook's API must reach both workers, leave each
 * checkout at the new commit with that commit's own update.sh run, and
 * restart the app on the new code. The base image is made locally
 * (tests/podman.ts; no registry is needed). Where podman cannot run
 * containers the tests are reported skipped, with the reason.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chownSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, freePort, git, makeKeys, makeOrigin, openFleet, removeDirs, startProcess, stopAll, tempDir, waitUntil } from "./helpers.ts";
import { healthArgv, serviceEnv, type Compose } from "./compose.ts";
import { buildImage, containerSet, ensureBunImage, exec, podman, podmanUnavailable } from "./podman.ts";
import { skipNote } from "./skip.ts";

const compose = Bun.YAML.parse(readFileSync(join(ROOT, "examples/docker-compose.yml"), "utf8")) as Compose;
const BUN_VERSION = /^ARG BUN_VERSION=(\S+)$/m.exec(readFileSync(join(ROOT, "examples/worker.Dockerfile"), "utf8"))?.[1];
const APP_FILES = ["server.ts", "serve.sh", "update.sh", ".gitignore"];
const log = (line: string) => console.log(`images test: ${line}`);

test("the images and the compose app run the Bun that package.json pins and the tests run", () => {
  const pinned = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).devDependencies.bun;
  expect(BUN_VERSION).toBe(pinned);
  expect(readFileSync(join(ROOT, "examples/webhook.Dockerfile"), "utf8")).toContain(`ARG BUN_VERSION=${pinned}\n`);
  expect(compose.services["app-1"]!.image).toBe(`oven/bun:${pinned}-slim`);
  expect(Bun.version).toBe(pinned);
});

/** An origin whose first commit is examples/app, served over git:// as a remote origin would be. */
async function serveAppOrigin(dir: string) {
  const origin = makeOrigin(dir);
  origin.commit("master", Object.fromEntries(APP_FILES.map((f) => [f, readFileSync(join(ROOT, "examples/app", f), "utf8")])), "the app");
  const port = await freePort();
  const daemon = startProcess(["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", `--port=${port}`, `--base-path=${dir}`, dir], {});
  const originUrl = `git://127.0.0.1:${port}/origin.git`;
  await waitUntil(async () => (await exec(["git", "ls-remote", originUrl])).code === 0, `git daemon at ${originUrl}`, 15_000, 100);
  return { origin, originUrl, daemon };
}

/** JSON from the webhook's API with the bearer key: GET, or POST when there is a body. */
function apiOf(url: string, apiKey: string) {
  return async <T>(path: string, body?: unknown): Promise<T> => {
    const init = body === undefined ? {} : { method: "POST", body: JSON.stringify(body) };
    const response = await fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" } });
    return (await response.json()) as T;
  };
}

const unavailable = await podmanUnavailable();
const { testIf, title } = skipNote("image", unavailable);

describe("container images built and run with podman", () => {
  const images = { worker: "", webhook: "", bun: "" };
  const containers = containerSet(`arbeider-test-${process.pid}`);

  // Hooks of skipped tests would count as skipped tests of their own.
  if (!unavailable) beforeAll(async () => {
    const started = Date.now();
    const dist = await exec(["make", "dist"], { cwd: ROOT, timeoutMs: 120_000 });
    if (dist.code !== 0) throw new Error(`make dist failed: ${dist.stderr}`);
    images.bun = await ensureBunImage(BUN_VERSION!, realpathSync(process.execPath), log);
    images.worker = await buildImage(ROOT, "examples/worker.Dockerfile", "localhost/arbeider-worker:test");
    images.webhook = await buildImage(ROOT, "examples/webhook.Dockerfile", "localhost/arbeider-webhook:test");
    log(`images ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }, 900_000);

  if (!unavailable) afterAll(async () => {
    await containers.removeAll();
    await stopAll();
  }, 90_000);

  testIf(title("a build sends only the two bundles and the entrypoint: no node_modules, .git, keys or .demo"), async () => {
    const dir = tempDir("arbeider-context-");
    try {
      writeFileSync(join(dir, "Containerfile"), `FROM ${images.bun}\nCOPY . /context\n`);
      const id = await buildImage(ROOT, join(dir, "Containerfile"), `localhost/arbeider-context:${process.pid}`);
      const files = (await podman(["run", "--rm", "--network", "none", id, "find", "/context", "-type", "f"])).split("\n").sort();
      await podman(["rmi", "--force", id]);
      expect(files).toEqual(["/context/dist/webhook.js", "/context/dist/worker.js", "/context/examples/worker-entrypoint.sh"]);
    } finally {
      removeDirs(dir);
    }
  }, 120_000);

  testIf(title("both images run as bun (uid 1000), and the worker image has no update script of its own"), async () => {
    for (const image of [images.worker, images.webhook]) {
      expect(await podman(["image", "inspect", "--format", "{{.Config.User}}", image])).toBe("bun");
      expect(await podman(["run", "--rm", "--network", "none", "--entrypoint", "id", image, "-u"])).toBe("1000");
    }
    const opt = await podman(["run", "--rm", "--network", "none", "--entrypoint", "ls", images.worker, "/opt/arbeider"]);
    expect(opt.split("\n").sort()).toEqual(["entrypoint.sh", "worker.js"]);
    expect(await podman(["image", "inspect", "--format", "{{json .Config.Env}}", images.worker])).not.toContain("ARBEIDER_UPDATE_SCRIPT");
  });

  testIf(title("a worker container that has no checkout and cannot clone one exits non-zero with one clear line, before the worker starts"), async () => {
    const cases = [
      { env: ["APP_REPO_URL=https://deploy:secret-token@127.0.0.1:9/app.git", "APP_BRANCH=master"], code: 1, line: "cannot clone https://127.0.0.1:9/app.git (branch master) into /srv/app" },
      { env: [], code: 2, line: "/srv/app is not a git checkout and APP_REPO_URL is not set" },
    ];
    for (const { env, code, line } of cases) {
      const result = await exec(["podman", "run", "--rm", "--network", "none", ...env.flatMap((e) => ["-e", e]), images.worker], { timeoutMs: 60_000 });
      const output = result.stdout + result.stderr;
      expect(result.code, output).toBe(code);
      expect(output).toContain(`arbeider worker image: ${line}`);
      expect(output).not.toContain("secret-token");
      expect(output).not.toContain("worker starting");
    }
  }, 120_000);

  testIf(title("a deployment through the webhook container reaches workers in containers, runs each checkout's own update.sh and restarts the app"), async () => {
    const dir = tempDir("arbeider-images-");
    const fleet = await openFleet("img");
    const nodes = { mounted: "img-mounted", cloned: "img-cloned" };
    for (const node of Object.values(nodes)) fleet.track(node);
    try {
      const { origin, originUrl, daemon } = await serveAppOrigin(dir);

      const keys = makeKeys(join(dir, "keys"));
      chownSync(keys.signingFile, 1000, 1000);
      const checkout = join(dir, "node-mounted");
      git(dir, "clone", "--quiet", originUrl, checkout);
      const runDir = join(dir, "run-mounted");
      mkdirSync(runDir);
      await exec(["chown", "-R", "1000:1000", checkout, runDir]);

      const apiKey = `k${crypto.randomUUID().replaceAll("-", "")}`;
      const port = await freePort();
      const shared = { AMQP_URL: process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672", ARBEIDER_FLEET: fleet.fleet, LOG_LEVEL: "debug" };
      const webhook = await containers.start("webhook", [
        "--network", "host",
        "-v", `${keys.signingFile}:/run/secrets/arbeider_signing_key:ro`,
        ...serviceEnv(compose.services.webhook!, { ...shared, ARBEIDER_API_KEY: apiKey, PORT: String(port), HOST: "127.0.0.1" }),
      ], images.webhook);
      const url = `http://127.0.0.1:${port}`;
      const api = apiOf(url, apiKey);
      await waitUntil(async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.ok, "the webhook container's /healthz", 30_000, 100);
      await podman(["healthcheck", "run", webhook]);

      const worker = compose.services["worker-1"]!;
      const workerArgs = (node: string, env: Record<string, string>) => [
        "--network", "host", ...(worker.init ? ["--init"] : []), "--stop-timeout", "20",
        "-v", `${keys.verifyFile}:/run/secrets/arbeider_verify_key:ro`,
        ...serviceEnv(worker, { ...shared, ARBEIDER_NODE_ID: node, ARBEIDER_HEARTBEAT_SECONDS: "1", ...env }),
      ];
      const mounted = await containers.start("worker-mounted", [...workerArgs(nodes.mounted, { APP_REPO_URL: "unused: the checkout is mounted" }), "-v", `${checkout}:/srv/app`, "-v", `${runDir}:/run/app`], images.worker);
      const cloned = await containers.start("worker-cloned", workerArgs(nodes.cloned, { APP_REPO_URL: originUrl }), images.worker);

      // The app beside the mounted node, as compose's app-1: the checkout read-only, the worker's process namespace.
      const appService = compose.services["app-1"]!;
      const app = await containers.start("app", [
        "--network", "none", "--pid", `container:${mounted}`, "--user", appService.user!,
        "-v", `${checkout}:/srv/app:ro`, "-v", `${runDir}:/run/app`, ...serviceEnv(appService, {}),
      ], images.bun, appService.command);
      const healthy = async (name: string, service: string) => (await exec(["podman", "exec", name, ...healthArgv(compose.services[service]!)])).code === 0;
      const appState = async () => {
        const got = await exec(["podman", "exec", app, "bun", "-e", "console.log(await (await fetch('http://127.0.0.1:3000/')).text())"]);
        return got.code === 0 ? (JSON.parse(got.stdout) as { revision: string; pid: number }) : undefined;
      };

      try {
        await waitUntil(async () => {
          const { nodes: seen } = await api<{ nodes: { node: string; online: boolean }[] }>("/api/nodes");
          return Object.values(nodes).every((id) => seen.some((n) => n.node === id && n.online));
        }, "both worker containers online at the webhook", 60_000, 200);
        expect(await healthy(mounted, "worker-1")).toBe(true);
        expect(await healthy(cloned, "worker-1")).toBe(true);
        await waitUntil(() => healthy(app, "app-1"), "the app's health check", 30_000, 200);
        const before = (await appState())!;
        expect(before.revision).toBe("unknown");

        // The image has no update.sh; only this commit's own script writes RAN.
        const updateSh = `${readFileSync(join(ROOT, "examples/app/update.sh"), "utf8")}echo "\${ARBEIDER_NODE_ID} ran the update.sh of this commit" > RAN\n`;
        const commit = origin.commit("master", { "update.sh": updateSh }, "update.sh says it ran");
        const { deployment } = await api<{ deployment: string }>("/api/deployments", { command: "update", args: { branch: "master", commit } });
        for (const node of Object.values(nodes)) {
          const outcome = await fleet.waitState(deployment, node, ["succeeded", "failed", "rejected"], 60_000);
          expect(outcome.state, `${node}: ${outcome.reason ?? ""}\n${outcome.output ?? ""}`).toBe("succeeded");
          expect(outcome.commitAfter).toBe(commit);
        }
        // The checkout belongs to the container's bun user now; git asks root to say it is safe.
        expect(git(checkout, "-c", `safe.directory=${checkout}`, "rev-parse", "HEAD")).toBe(commit);
        expect(readFileSync(join(checkout, "RAN"), "utf8")).toBe(`${nodes.mounted} ran the update.sh of this commit\n`);
        expect(await podman(["exec", cloned, "git", "rev-parse", "HEAD"])).toBe(commit);
        expect(await podman(["exec", cloned, "cat", "RAN"])).toBe(`${nodes.cloned} ran the update.sh of this commit`);

        // update.sh restarted the app: a new process that read the new REVISION at its start.
        const after = await waitUntil(async () => { const s = await appState(); return s?.revision === commit ? s : undefined; }, "the app on the new commit", 30_000, 200);
        expect(after.pid).not.toBe(before.pid);

        // The same pid file serves the `signal` command (ARBEIDER_SERVICES): the app starts again.
        const signal = await api<{ deployment: string }>("/api/deployments", { command: "signal", target: `node:${nodes.mounted}`, args: { service: "app", signal: "TERM" } });
        expect((await fleet.waitState(signal.deployment, nodes.mounted, ["succeeded", "failed", "rejected"], 30_000)).state).toBe("succeeded");
        const again = await waitUntil(async () => { const s = await appState(); return s && s.pid !== after.pid ? s : undefined; }, "the app restarted by the signal command", 30_000, 200);
        expect(again.revision).toBe(commit);

        // `docker stop`: SIGTERM, the worker finishes and exits 0 well within the grace period.
        await podman(["stop", "--time", "20", cloned], { timeoutMs: 40_000 });
        expect(await podman(["inspect", "--format", "{{.State.ExitCode}}", cloned])).toBe("0");
      } catch (error) {
        throw new Error(`${(error as Error).message}\n\ncontainer logs:\n${await containers.logs()}`, { cause: error });
      } finally {
        await daemon.stop(2000);
      }
    } finally {
      await containers.removeAll();
      await fleet.cleanup();
      removeDirs(dir);
    }
  }, 240_000);
});
