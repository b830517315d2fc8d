/**
 * A smoke run of the benchmarks: `bun scripts/bench.ts --quick` (tiny fleets,
 * few rounds, one-second loads, the peers only where installed) must finish,
 * leave no vhost behind, and write results of the documented shape for every
 * part. The figures themselves are not judged
 * here; `make bench` is where they count.
 */
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { rabbitmqctl, removeDirs, ROOT, tempDir } from "./helpers.ts";

test("bench --quick writes one result of the documented shape per figure and cleans up", () => {
  const dir = tempDir("arbeider-bench-smoke-");
  try {
    const out = join(dir, "results.json");
    const run = spawnSync(process.execPath, ["scripts/bench.ts", "--quick", `--out=${out}`], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    expect(run.stderr).not.toContain("failed:");
    expect(run.status).toBe(0);
    expect(run.stdout).toContain("| metric | value | floor | ratio | goal | met |");

    const results = JSON.parse(readFileSync(out, "utf8")) as Record<string, unknown>[];
    const metrics = results.map((r) => String(r.metric));
    const prefixes = [
      "fan-out ping p50",
      "worker CPU per ping vs bare consumer",
      "idle RSS",
      "spawn to consuming",
      "real deploy p50, 2 nodes: arbeider vs floor",
      "real deploy CPU per round, 2 nodes: arbeider vs floor",
      "rollout p50, 2 nodes: 4 waves",
      "CI deploy 202 p99",
      "tracking: webhook CPU per node event",
      "tracking: SSE bytes per node event",
      "ping p50, 20 virtual nodes, one SSE client",
      "all 20 consuming again",
    ];
    for (const prefix of prefixes) {
      expect(metrics.some((m) => m.startsWith(prefix))).toBe(true);
    }
    for (const r of results) {
      expect(Object.keys(r).sort()).toEqual(["floor", "goal", "met", "metric", "ratio", "unit", "value"]);
      expect(typeof r.metric).toBe("string");
      expect(typeof r.value).toBe("number");
      expect(typeof r.unit).toBe("string");
      expect(r.floor === null || typeof r.floor === "number").toBe(true);
      expect(r.ratio === null || typeof r.ratio === "number").toBe(true);
      expect(typeof r.goal).toBe("string");
      expect(r.met === null || typeof r.met === "boolean").toBe(true);
      if (r.goal && r.ratio !== null) expect(typeof r.met).toBe("boolean");
    }
    expect(rabbitmqctl("list_vhosts", "name")).not.toContain(`arbeider-bench-${run.pid}-`);
  } finally {
    removeDirs(dir);
  }
}, 90_000);
