/**
 * Drift and ARBEIDER_CONVERGE=all with a real webhook and workers: a HEAD
 * moved by other hands shows as `moved` and is put back to the desired commit
 * (update.sh run once there); a checkout whose tracked files were changed
 * shows as `dirty` and is left alone, its change kept.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { git, head, waitUntil } from "./helpers.ts";
import { rollOut, settled, useStack, type Stack } from "./stack.ts";

const stack = useStack([{ id: "a" }, { id: "b" }], "cv", { webhookEnv: () => ({ ARBEIDER_CONVERGE: "all" }) });

const nodeOf = async (s: Stack, node: string) =>
  (await s.api<{ nodes: { node: string; commit: string; drift: string | null; desired: string }[] }>("/api/nodes")).nodes.find((n) => n.node === node)!;

describe("converge=all", () => {
  test("a HEAD moved by other hands is put back to the desired commit; a checkout with changed files is left alone", async () => {
    const s = stack();
    const before = head(s.repos.a);
    const desired = s.origin.commit("master", { VERSION: "desired\n" }, "desired");
    await settled(s, await rollOut(s, desired, ""), ["succeeded"]);
    const runsAtDesired = (node: string) => s.runs(node).filter((line) => line.includes(`commit=${desired} `)).length;
    expect([runsAtDesired("a"), runsAtDesired("b")]).toEqual([1, 1]);

    // Someone checks an older commit out by hand on a: the next heartbeat shows it, the driver puts it back.
    git(s.repos.a, "checkout", "--quiet", "-B", "master", before);
    await waitUntil(async () => head(s.repos.a) === desired && (await nodeOf(s, "a")).drift === null, "a put back at the desired commit", 20_000, 100);
    expect(runsAtDesired("a")).toBe(2);

    // Someone edits a tracked file on b: dirty, and nothing touches it.
    const file = join(s.repos.b, "VERSION");
    writeFileSync(file, "edited by hand\n");
    await waitUntil(async () => (await nodeOf(s, "b")).drift === "dirty", "b dirty", 20_000, 100);
    const { heartbeats } = s.fleet;
    const seen = heartbeats.length;
    await waitUntil(() => heartbeats.length >= seen + 2, "two more heartbeats", 20_000, 100);
    expect(readFileSync(file, "utf8")).toBe("edited by hand\n");
    expect(runsAtDesired("b")).toBe(1);
  }, 60_000);
});
