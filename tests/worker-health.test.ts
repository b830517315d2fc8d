/**
 * Health checks and what heartbeats say: an update succeeds only once the
 * check passes after update.sh (a health URL served per node by a small HTTP
 * server in the test, or a health command in the checkout), fails `unhealthy:`
 * otherwise, and rolls back with ARBEIDER_ROLLBACK_ON_FAILURE; heartbeats carry
 * `healthy` from a probe of their own and `dirty` for changed tracked files.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { head, stopAll } from "./helpers.ts";
import { waitUntil, withNodes } from "./worker-fixture.ts";

setDefaultTimeout(60_000);
afterAll(stopAll);

/** A health endpoint whose answer the test sets; `hits` counts the probes it got. */
function healthServer(statuses: (hit: number) => number) {
  let hits = 0;
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("ok?", { status: statuses(++hits) }) });
  return { url: `http://127.0.0.1:${server.port}/health`, hits: () => hits, stop: () => server.stop(true) };
}

const FAST = { ARBEIDER_HEALTH_TIMEOUT: "3", ARBEIDER_HEALTH_INTERVAL: "1" };

test.concurrent("an update succeeds once the health URL answers 2xx; one that stays 503 fails unhealthy, and rolls back with rollback on failure", () =>
  withNodes([{ id: "good" }, { id: "sick" }, { id: "careful" }], async (t) => {
    // good answers 503 to its first two probes after update.sh ran, then 200: the gate must probe again.
    let sinceUpdate = 0;
    const good = healthServer(() => (existsSync(t.marker("good.runs")) && ++sinceUpdate > 2 ? 200 : 503));
    const sick = healthServer(() => 503);
    const careful = healthServer(() => 503);
    try {
      // The query holds a token: it must not show in any reason.
      const url = (server: { url: string }) => ({ ...FAST, ARBEIDER_HEALTH_URL: `${server.url}?token=s3cret` });
      await Promise.all([t.start("good", url(good)), t.start("sick", url(sick)), t.start("careful", { ...url(careful), ARBEIDER_ROLLBACK_ON_FAILURE: "true" })]);
      const v2 = t.origin.commit("master", { "app.txt": "v2\n" }, "v2");
      const cmd = await t.send({ command: "update", args: { branch: "master", commit: v2 } });

      const passed = await t.outcome(cmd, "good");
      expect(passed).toMatchObject({ state: "succeeded", commitAfter: v2 });
      expect(passed.output).toMatch(/\[arbeider\] health check passed \(probe [2-9]\)/);

      const failed = await t.outcome(cmd, "sick");
      expect(failed).toMatchObject({ state: "failed", commitAfter: v2 });
      expect(failed.reason).toStartWith(`unhealthy: GET ${sick.url} answered 503 (3 probes in `);
      expect(head(t.repos.sick)).toBe(v2);

      const back = await t.outcome(cmd, "careful");
      expect(back).toMatchObject({ state: "failed", commitBefore: t.base, commitAfter: t.base });
      expect(back.reason).toStartWith(`unhealthy: GET ${careful.url} answered 503`);
      expect(back.reason).toContain(`; rolled back to ${t.base.slice(0, 12)}`);
      expect(t.runs("careful").map((line) => line.match(/ commit=(\w+)/)![1])).toEqual([v2, t.base]);
      for (const reason of [failed.reason, back.reason]) expect(reason).not.toContain("s3cret");
    } finally {
      for (const server of [good, sick, careful]) server.stop();
    }
  }),
);

test.concurrent("a health command in the checkout gates the update; its failure is the reason", () =>
  withNodes([{ id: "n1" }], async (t) => {
    await t.start("n1", { ...FAST, ARBEIDER_HEALTH_CMD: "check.sh" });
    const check = `#!/bin/sh\necho "checked $ARBEIDER_NODE_ID" >> "$MARKER_DIR/checks"\nif [ -f unhealthy ]; then echo "app is down" >&2; exit 1; fi\n`;
    const ok = t.origin.commit("master", { "check.sh": check }, "adds the check");
    expect(await t.outcome(await t.send({ command: "update", args: { branch: "master", commit: ok } }), "n1")).toMatchObject({ state: "succeeded", commitAfter: ok });
    const down = t.origin.commit("master", { unhealthy: "1" }, "breaks the app");
    const failed = await t.outcome(await t.send({ command: "update", args: { branch: "master", commit: down } }), "n1");
    expect(failed).toMatchObject({ state: "failed", commitAfter: down });
    expect(failed.reason).toStartWith("unhealthy: health command exited with status 1: app is down (3 probes in ");
    expect(t.runs("n1")).toHaveLength(2);
  }),
);

test.concurrent("heartbeats carry healthy from a probe of their own, and dirty when tracked files are changed", async () => {
  let status = 503;
  const server = healthServer(() => status);
  try {
    await withNodes([{ id: "checked" }, { id: "plain" }], async (t) => {
      const fast = { ARBEIDER_HEARTBEAT_SECONDS: "1" };
      await Promise.all([t.start("checked", { ...fast, ARBEIDER_HEALTH_URL: server.url }), t.start("plain", fast)]);
      const latest = (node: string) => t.fleet.heartbeats.filter((h) => h.node === node).at(-1);
      expect(await waitUntil(() => latest("checked"), "a heartbeat of checked")).toMatchObject({ healthy: false, dirty: false });
      status = 200;
      await waitUntil(() => latest("checked")?.healthy === true, "a healthy heartbeat");

      const beat = await waitUntil(() => latest("plain"), "a heartbeat of plain");
      expect(beat).toMatchObject({ dirty: false });
      expect(beat).not.toHaveProperty("healthy");
      writeFileSync(join(t.repos.plain, "README"), "changed by hand\n");
      await waitUntil(() => latest("plain")?.dirty === true, "a dirty heartbeat");
    });
  } finally {
    server.stop();
  }
});
