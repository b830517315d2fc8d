/**
 * `deploy.ts ... --wait` as a function over a recorded client: it follows
 * one deployment's SSE snapshots (merged with shared/served.ts
 * mergeSnapshot) and the deployment as read, never the raw node events; it
 * ends when the server says nothing runs any more, with the output tail of
 * failed nodes; Ctrl-C says the deployment goes on. The real webhook and
 * workers are in tests/cli-wait.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { follow, INTERRUPTED } from "../scripts/deploy/follow.ts";
import { at, deployment, ok, recordedClient } from "./cli-fixture.ts";
import { waitUntil } from "./helpers.ts";

const started = (ms: number) => ({ state: "started", at: at(ms) });
const collect = () => {
  const out: string[] = [];
  return { out, write: (t: string) => void out.push(t), text: () => out.join("") };
};

describe("follow", () => {
  test("shows what the server says, not what raw events say: fed failed then succeeded, the server says failed", async () => {
    const r = recordedClient([deployment({ n1: started(10), n2: started(20) })]);
    const { write, text } = collect();
    const done = follow(r.client, "api-1", { write, tty: false, pollMs: 60_000 });
    await waitUntil(() => r.connected() && text().includes("n2"), "the first reading drawn");
    const event = (node: string, body: object) => r.send("deployment", { v: 1, deployment: "api-1", command: "u-1", node, ...body });
    const failed = { state: "failed", at: at(900), reason: "update script exited with status 1" };
    event("n1", failed);
    r.send("state", { ...deployment({ n1: failed, n2: started(20) }, { state: "failed" }), full: true });
    // A second copy of the command ran later and succeeded: the server keeps the first outcome.
    event("n1", { state: "succeeded", at: at(1500) });
    event("n2", ok(1600));
    r.send("state", { ...deployment({ n1: failed, n2: ok(1600) }, { state: "failed", finishedAt: at(1600) }), full: true });
    expect(await done).toBe(1);
    expect(text()).toMatch(/✘ n1 +failed/);
    expect(text()).not.toMatch(/✔ n1/);
    expect(text().trimEnd().split("\n").at(-1)).toBe("FAILED: n1 failed");
    expect(r.requests).toEqual(["api-1"]);
  });

  test("waits while a failed deployment still has a node running, merges partial snapshots, then prints the failed node's output tail (read: snapshots carry none)", async () => {
    const failed = { state: "failed", at: at(900), reason: "update script exited with status 3", durationMs: 880 };
    const output = "fetching\nboom: this build is broken\n";
    const read = deployment({ n1: ok(2000), n2: { ...failed, output } }, { state: "failed", finishedAt: at(2000) });
    const r = recordedClient([deployment({ n1: started(10), n2: started(20) })]);
    const { write, text } = collect();
    let settled = false;
    const done = follow(r.client, "api-1", { write, tty: false, pollMs: 60_000 }).finally(() => (settled = true));
    await waitUntil(() => r.connected() && text().includes("n2"), "the first reading drawn");
    r.send("state", { id: "api-1", state: "failed", counts: { failed: 1, started: 1 }, nodes: { n2: failed } });
    await waitUntil(() => /✘ n2 +failed/.test(text()), "n2's failure drawn");
    expect(settled).toBe(false);
    r.serve(read);
    r.send("state", { id: "api-1", state: "failed", finishedAt: at(2000), counts: { failed: 1, succeeded: 1 }, nodes: { n1: ok(2000) } });
    expect(await done).toBe(1);
    expect(text()).toContain("output of n2 (last 2 lines):\n  fetching\n  boom: this build is broken\n");
    expect(text()).toMatch(/✔ n1 +succeeded/);
    expect(text()).toContain("  FAILED  1 succeeded, 1 failed\n");
  });

  test("on a log it appends a line per change and ends with ok when the server says succeeded", async () => {
    const r = recordedClient([undefined]);
    const { write, text } = collect();
    const done = follow(r.client, "api-1", { write, tty: false, pollMs: 60_000 });
    await waitUntil(() => r.connected(), "the stream open");
    r.send("heartbeat", { node: "n1" });
    r.send("state", { ...deployment({}), full: true });
    r.send("state", { id: "api-1", state: "running", counts: { started: 1, waiting: 1 }, nodes: { n1: started(1) } });
    r.send("state", { ...deployment({ n1: ok(), n2: ok() }, { state: "succeeded", finishedAt: at(1200) }), full: true });
    expect(await done).toBe(0);
    const lines = text().trimEnd().split("\n");
    expect(lines[0]).toBe("api-1  update master → all  0ms");
    expect(text()).toMatch(/n1 +waiting[\s\S]*n1 +started[\s\S]*n1 +succeeded/);
    expect(lines.slice(-2)).toEqual(["  SUCCEEDED  2 succeeded", "ok: 2 of 2 nodes succeeded"]);
    expect(text()).not.toContain("\x1b[");
  });

  test("on a terminal it redraws in place and exits 1 when the server says failed", async () => {
    const failed = deployment({ n1: ok(), n2: { state: "failed", at: at(2), reason: "update.sh exited 1" } }, { state: "failed", finishedAt: at(2) });
    const r = recordedClient([deployment({ n1: started(1) }), failed]);
    const { out, write } = collect();
    const code = await follow(r.client, "api-1", { write, tty: true, pollMs: 10 });
    expect(code).toBe(1);
    expect(out.join("")).toContain("\x1b[4A\r\x1b[J");
    expect(out.at(-1)).toBe("FAILED: n2 failed\n");
  });

  test("Ctrl-C stops following, says the deployment goes on and how to follow it again, and exits 130", async () => {
    const r = recordedClient([deployment({ n1: started(1) }, { state: "paused", pausedAfter: 1 })]);
    const { write, text } = collect();
    const interrupt = new AbortController();
    const done = follow(r.client, "api-1", { write, tty: false, pollMs: 60_000, interrupt: interrupt.signal });
    await waitUntil(() => text().includes("n1"), "the first reading drawn");
    interrupt.abort();
    expect(await done).toBe(INTERRUPTED);
    expect(text()).toContain("interrupted: deployment api-1 goes on; follow it again with `bun scripts/deploy.ts status api-1 --wait`");
    expect(text()).not.toContain("FAILED");
  });

  test("gives up at the timeout with exit 1", async () => {
    const r = recordedClient([deployment({})]);
    const { out, write } = collect();
    expect(await follow(r.client, "api-1", { write, tty: false, timeoutMs: 50, pollMs: 10 })).toBe(1);
    expect(out.at(-1)).toContain("gave up waiting after 0.05 s");
  });
});
