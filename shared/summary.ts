/**
 * A deployment's outcome in one short line, as CI providers and chat show it
 * beside the state (`9/10 succeeded, 1 failed, 9 rolled back`), and the
 * dashboard link of a deployment. GitHub refuses descriptions over 140
 * characters, so the line is cut to fit. Pure: a function of the served
 * deployment (shared/served.ts).
 */
import type { Deployment } from "./served.ts";

/** Node states a summary counts, in the order it names them after the succeeded ones. */
const NAMED = ["skipped", "failed", "rejected", "missing", "unhealthy"] as const;

/** `text` cut to at most `max` characters, with an ellipsis when cut. */
export function clipText(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`;
}

/** How many nodes the deployment concerns: the expected ones, or more if others reported. */
function total(d: Deployment): number {
  return Math.max(d.expected.length, Object.keys(d.nodes).length);
}

/** The node counts: `3/10 succeeded, 1 failed, 2 running, 4 waiting`, and what the rollback did. */
function nodeCounts(d: Deployment): string[] {
  const count = (state: string) => d.counts[state] ?? 0;
  const parts = [`${count("succeeded")}/${total(d)} succeeded`];
  for (const state of NAMED) if (count(state) > 0) parts.push(`${count(state)} ${state}`);
  const running = count("received") + count("started");
  if (running > 0) parts.push(`${running} running`);
  if (count("waiting") > 0) parts.push(`${count("waiting")} waiting`);
  if (d.rollback) {
    const back = Object.values(d.rollback.nodes);
    const done = back.filter((n) => n.state === "succeeded" || n.state === "skipped").length;
    const bad = back.filter((n) => ["failed", "rejected", "missing"].includes(n.state)).length;
    if (done > 0) parts.push(`${done} rolled back`);
    if (bad > 0) parts.push(`${bad} not rolled back`);
  }
  return parts;
}

/** What a state adds before the counts: why it is queued, paused or superseded. */
function preface(d: Deployment): string | undefined {
  if (d.state === "queued" && d.reason) return d.reason;
  if (d.state === "paused") return `paused after wave ${d.pausedAfter} of ${d.waves?.length ?? "?"}: waiting for approval`;
  if (d.state === "superseded" && d.supersededBy) return `superseded by ${d.supersededBy}`;
  return undefined;
}

/** The outcome line of `d`, at most `max` characters (140: GitHub's limit). */
export function outcomeSummary(d: Deployment, max = 140): string {
  const counts = nodeCounts(d).join(", ");
  const first = preface(d);
  return clipText(first ? `${first}; ${counts}` : counts, max);
}

/** Where the dashboard shows deployment `id`, under ARBEIDER_PUBLIC_URL; undefined without one. */
export function dashboardLink(publicUrl: string | undefined, id: string): string | undefined {
  return publicUrl === undefined ? undefined : `${publicUrl}/#deployment=${encodeURIComponent(id)}`;
}
