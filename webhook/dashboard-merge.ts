/// <reference lib="dom" />
/**
 * Browser code of the dashboard, shipped as source text: how the page folds
 * what the server sends into what it holds. `mergeInto` is a copy of
 * shared/served.ts mergeSnapshot, the one rule every client merges an SSE
 * `state` snapshot by; the browser cannot import it, so it keeps this small
 * copy, and tests/dashboard-layout.test.ts checks the two agree on every
 * snapshot of a busy fleet. Snapshots carry nodes without their output: the
 * output of a node that failed is read once from its deployment and kept
 * aside, by report, so what the page holds stays exactly what the rule makes.
 */
import type { Deployment, ServedWave, Snapshot } from "../shared/served.ts";
import { schedule, type Page } from "./dashboard-live.ts";

/** shared/served.ts mergeSnapshot, copied: `held` with `snap` merged in (undefined when a partial snapshot finds nothing held). */
export function mergeInto(held: Deployment | undefined, snap: Snapshot): Deployment | undefined {
  const { nodes = {}, waves, full, ...top } = snap;
  if (full) return { ...top, nodes, ...(waves ? { waves } : {}) } as Deployment;
  if (!held) return undefined;
  const merged = { ...held } as Deployment & Record<string, unknown>;
  // The fields that change: one a snapshot lacks is no longer true (shared/served.ts CHANGING).
  for (const key of ["state", "counts", "finishedAt", "reason", "waves", "pausedAfter", "rollback", "supersededBy"]) delete merged[key];
  Object.assign(merged, top, { nodes: { ...held.nodes, ...nodes } });
  if (held.waves) merged.waves = held.waves.map((w, i) => ({ nodes: w.nodes, ...(waves?.[i] ?? { state: w.state }) }) as ServedWave);
  return merged;
}

/** The output of a node's report, from the report or from what the page read for it. */
export function outputOf(outputs: Map<string, string>, id: string, node: string, report: { at: string; output?: string }): string | undefined {
  return report.output ?? outputs.get(`${id}/${node}/${report.at}`);
}

/** Reads `d` once when a snapshot brought a node's failure without its output (snapshots carry none), and keeps the output aside. */
export function fetchOutputs(page: Page, d: Deployment): void {
  const failed = (r: { state: string }) => r.state === "failed" || r.state === "unhealthy";
  const missing = Object.entries(d.nodes).filter(([node, r]) => failed(r) && outputOf(page.outputs, d.id, node, r) === undefined && !page.asked.has(`${d.id}/${node}/${r.at}`));
  if (missing.length === 0) return;
  for (const [node, r] of missing) page.asked.add(`${d.id}/${node}/${r.at}`);
  void fetch(`/api/deployments/${encodeURIComponent(d.id)}`, { headers: { accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
    .then((response) => (response.ok ? response.json() : undefined))
    .then((whole: Deployment | undefined) => {
      for (const [node, r] of Object.entries(whole?.nodes ?? {})) if (r.output !== undefined) page.outputs.set(`${d.id}/${node}/${r.at}`, r.output);
      page.dirty.cards.add(d.id);
      schedule(page);
    }, () => {});
}
