/**
 * A worker's life around its commands: bad configuration, the checkout lock,
 * a SIGKILL mid-command, catching up after downtime, a broker connection
 * closed under it, SIGTERM while busy, heartbeats and groups it left (the
 * same worker under Deno: tests/deno.test.ts). Real processes, the real
 * broker, real checkouts.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { Heartbeat } from "../shared/protocol.ts";
import { readState } from "../worker/state.ts";
import { ROOT, makeKeys, rabbitmqctl, removeDirs, startProcess, stopAll } from "./helpers.ts";
import { crashAndRestart, startGatedUpdate, statesOf, waitUntil, withNodes } from "./worker-fixture.ts";

setDefaultTimeout(60_000);
afterAll(stopAll);

const count = (text: string, fragment: string) => text.split(fragment).length - 1;

/** The broker's id for the connection named `name`, from `rabbitmqctl list_connections`. */
function connectionPid(name: string): string | undefined {
  const line = rabbitmqctl("list_connections", "pid", "client_properties")
    .split("\n")
    .find((l) => l.includes(`{"connection_name","${name}"}`));
  return line?.split("\t")[0];
}

describe("starting", () => {
  // Made only when a test of this block runs (a filtered run makes nothing to clean up).
  const keys = join(tmpdir(), `arbeider-test-keys-${randomUUID()}`);
  const verifyFile = join(keys, "verify.pem");
  beforeAll(() => void makeKeys(keys));
  afterAll(() => removeDirs(keys));

  const cases: [string, Record<string, string>, string][] = [
    ["nothing configured", {}, "ARBEIDER_VERIFY_KEY_FILE: is required"],
    ["a missing key file", { ARBEIDER_VERIFY_KEY_FILE: join(keys, "nope.pem") }, "ARBEIDER_VERIFY_KEY_FILE: cannot use"],
    ["a private key as the verify key", { ARBEIDER_VERIFY_KEY_FILE: join(keys, "signing.pem") }, "ARBEIDER_VERIFY_KEY_FILE: cannot use"],
    ["a repo dir that is not a git checkout", { ARBEIDER_VERIFY_KEY_FILE: verifyFile, ARBEIDER_REPO_DIR: keys }, "ARBEIDER_REPO_DIR:"],
    ["a bad node id", { ARBEIDER_VERIFY_KEY_FILE: verifyFile, ARBEIDER_NODE_ID: "-rf" }, "ARBEIDER_NODE_ID: must match"],
    ["a bad timeout", { ARBEIDER_VERIFY_KEY_FILE: verifyFile, ARBEIDER_TIMEOUT: "soon" }, "ARBEIDER_TIMEOUT: must be a whole number"],
  ];
  for (const [name, env, line] of cases) {
    test.concurrent(`a worker with ${name} exits 2 with one line naming the variable`, async () => {
      const proc = startProcess(["bun", "worker.ts"], env);
      expect(await proc.exited).toBe(2);
      const lines = proc.output().trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toStartWith(`arbeider worker: ${line}`);
    });
  }

  test.concurrent("a second worker on the same checkout is refused; a lock left by a dead worker is taken over", () =>
    withNodes([{ id: "n1" }], async (t) => {
      const first = await t.start("n1");
      const second = startProcess(["bun", "worker.ts"], t.envOf("n1", { ARBEIDER_NODE_ID: "n2" }));
      expect(await second.exited).toBe(2);
      expect(second.output().trim()).toMatch(new RegExp(`^arbeider worker: ARBEIDER_REPO_DIR: another worker \\(pid ${first.child.pid}\\)`));

      first.child.kill("SIGKILL");
      await first.exited;
      const lock = join(t.repos.n1, ".git", "arbeider-worker.lock");
      expect(JSON.parse(readFileSync(lock, "utf8")).pid).toBe(first.child.pid);
      await t.start("n1");
      expect(await t.outcome(await t.send({ command: "ping", args: {} }), "n1")).toMatchObject({ state: "succeeded" });
    }),
  );
});

describe("crashes and downtime", () => {
  test.concurrent("a worker SIGKILLed while update.sh runs ends the old script when restarted, then completes the command once", () =>
    withNodes([{ id: "n1" }], async (t) => {
      await t.start("n1");
      const { cmd, gated, pid, open } = await startGatedUpdate(t, "n1");
      await crashAndRestart(t, "n1", pid);
      open();
      expect(await t.fleet.waitState(cmd.deployment, "n1", ["succeeded"])).toMatchObject({ commitAfter: gated });
      const fence = await t.send({ command: "ping", args: {} });
      await t.outcome(fence, "n1");
      expect(statesOf(t.fleet, cmd.deployment, "n1").filter((s) => s === "succeeded")).toHaveLength(1);
      expect(t.runs("n1")).toHaveLength(2);
    }),
  );

  test.concurrent("a worker that was down catches up on its queue; an expired command waiting there is rejected, not run", () =>
    withNodes([{ id: "n1" }], async (t) => {
      expect(await (await t.start("n1")).stop()).toBe(0);
      const v2 = t.origin.commit("master", { "app.txt": "v2\n" }, "v2");
      const stale = await t.send({ command: "update", args: { branch: "master", commit: v2 }, expiresAt: new Date(Date.now() - 1000).toISOString() });
      const current = await t.send({ command: "update", args: { branch: "master", commit: v2 } });

      await t.start("n1");
      expect(await t.outcome(current, "n1")).toMatchObject({ state: "succeeded", commitAfter: v2 });
      expect(await t.outcome(stale, "n1")).toMatchObject({ state: "rejected" });
      expect(t.fleet.of(stale.deployment, "n1").at(-1)!.reason).toStartWith("expired");
      expect(t.runs("n1")).toHaveLength(1);
    }),
  );

  test.concurrent("a worker whose broker connection is force-closed reconnects by itself, reports the command in flight, and runs the next", () =>
    withNodes([{ id: "n1" }], async (t) => {
      const worker = await t.start("n1");
      const name = `arbeider-worker ${t.fleet.fleet}/n1`;
      const inFlight = await startGatedUpdate(t, "n1");
      rabbitmqctl("close_connection", (await waitUntil(() => connectionPid(name), "the worker's connection"))!, "test closes it");
      await waitUntil(() => count(worker.output(), '"msg":"consuming"') === 2, "the worker to consume again");
      inFlight.open();
      expect(await t.fleet.waitState(inFlight.cmd.deployment, "n1", ["succeeded"])).toMatchObject({ commitAfter: inFlight.gated });

      const next = await t.send({ command: "ping", args: {} });
      expect(await t.outcome(next, "n1")).toMatchObject({ state: "succeeded", commitAfter: inFlight.gated });
      expect(t.runs("n1")).toHaveLength(1);
      expect(worker.child.exitCode).toBeNull();
    }),
  );

  test.concurrent("SIGTERM sends a stopping heartbeat at once, lets the running command finish and be acknowledged, then the worker exits 0", () =>
    withNodes([{ id: "n1" }], async (t) => {
      const worker = await t.start("n1");
      const { cmd, open } = await startGatedUpdate(t, "n1");
      worker.child.kill("SIGTERM");
      // It says so at once, while it still works on the command: the webhook counts it offline.
      const stopping = await waitUntil(() => t.fleet.heartbeats.find((h) => h.node === "n1" && h.stopping === true), "a stopping heartbeat");
      expect(stopping).toMatchObject({ busy: true });
      expect(worker.child.exitCode).toBeNull();
      open();
      expect(await worker.exited).toBe(0);
      expect(statesOf(t.fleet, cmd.deployment, "n1")).toEqual(["received", "started", "succeeded"]);
      const after = t.fleet.heartbeats.filter((h) => h.node === "n1" && Date.parse(String(h.at)) >= Date.parse(String(stopping.at)));
      expect(after.every((h) => h.stopping === true)).toBe(true);
      // Acknowledged: a new worker does not get it again.
      await t.start("n1");
      await t.outcome(await t.send({ command: "ping", args: {} }), "n1");
      expect(statesOf(t.fleet, cmd.deployment, "n1")).toEqual(["received", "started", "succeeded"]);
      expect(t.runs("n1")).toHaveLength(1);
    }),
  );
});

describe("presence", () => {
  test.concurrent("heartbeats come every ARBEIDER_HEARTBEAT_SECONDS and right after every command but a ping", () =>
    withNodes([{ id: "steady", groups: ["web"] }, { id: "quiet" }], async (t) => {
      await Promise.all([t.start("steady", { ARBEIDER_HEARTBEAT_SECONDS: "1" }), t.start("quiet")]);
      const of = (node: string) => t.fleet.heartbeats.filter((h) => h.node === node);
      await waitUntil(() => of("steady").length >= 3, "three heartbeats from steady", 10_000);
      const beat = v.parse(Heartbeat, of("steady")[0]);
      const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
      expect(beat).toMatchObject({ node: "steady", groups: ["web"], commit: t.base, branch: "master", busy: false, version });

      // quiet beats once at start and then only after a command that can change it (its period is a minute):
      // not after a ping, whose outcome already carries the commit and branch.
      await waitUntil(() => of("quiet").length === 1, "quiet's first heartbeat");
      await t.outcome(await t.send({ command: "ping", target: "node:quiet", args: {} }), "quiet");
      const updated = await t.outcome(await t.send({ command: "update", target: "node:quiet", args: { branch: "master" } }), "quiet");
      const second = await waitUntil(() => of("quiet")[1], "quiet's second heartbeat");
      expect(Date.parse(String(second.at))).toBeGreaterThanOrEqual(Date.parse(updated.at));
    }),
  );

  test.concurrent("a worker restarted without a group no longer receives that group's commands", () =>
    withNodes([{ id: "n1", groups: ["web", "db"] }], async (t) => {
      await (await t.start("n1")).stop();
      await t.start("n1", { ARBEIDER_GROUPS: "web" });
      const db = await t.send({ command: "ping", target: "group:db", args: {} });
      const web = await t.send({ command: "ping", target: "group:web", args: {} });
      expect(await t.outcome(web, "n1")).toMatchObject({ state: "succeeded" });
      expect(t.fleet.of(db.deployment)).toEqual([]);
      expect(readState(join(t.repos.n1, ".git", "arbeider-state.json")).groups).toEqual(["web"]);
    }),
  );

});
