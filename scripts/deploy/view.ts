/**
 * What `scripts/deploy.ts` shows and decides about one deployment, as pure
 * functions of the deployment the webhook serves (shared/served.ts): the
 * live view (a heading, a rollout's progress, one line per node, the
 * rollback, a summary), the output tail of each failed node, and the exit
 * status. The CLI folds no events of its own: the state, the counts and the
 * end come from the server, so the screen says what the API says.
 */
import type { NodeReport } from "../../shared/deployments.ts";
import { countsPhrase, describeDeployment, durationOf, formatDuration, outputTail, shortSha, strategyPhrase, waveSummary } from "../../shared/format.ts";
import type { Deployment } from "../../shared/served.ts";
import { clip, colourOf, plain, printable, visibleLength, wrap, type Paint } from "./terminal.ts";

export type { Deployment };

const MARKS: Record<string, string> = {
  succeeded: "✔", skipped: "↷", failed: "✘", rejected: "✘", missing: "?", unhealthy: "✘", received: "…", started: "▶", waiting: "○", pending: "○",
};
const BAD = new Set(["failed", "rejected", "missing", "unhealthy"]);

/** Every node the deployment concerns: in rollout order (wave by wave), else the expected ones; then any other that reported. */
export function nodeIds(d: Deployment): string[] {
  const first = d.waves && d.waves.length > 0 ? d.waves.flatMap((wave) => wave.nodes) : d.expected;
  const known = new Set(first);
  return [...first, ...Object.keys(d.nodes).filter((node) => !known.has(node)).sort()];
}

export type Outcome = { done: false } | { done: true; code: 0 | 1; why: string };

/** Whether the deployment is over (its state final, nothing running) and how the CLI exits: 0 only for `succeeded`. */
export function outcome(d: Deployment): Outcome {
  if (!d.finishedAt) return { done: false };
  if (d.state === "succeeded") {
    const good = (d.counts.succeeded ?? 0) + (d.counts.skipped ?? 0);
    return { done: true, code: 0, why: `${good} of ${d.expected.length} node${d.expected.length === 1 ? "" : "s"} succeeded` };
  }
  const bad = nodeIds(d).filter((node) => BAD.has(d.nodes[node]?.state ?? ""));
  const nodes = bad.map((node) => `${printable(node)} ${d.nodes[node].state}`).join(", ");
  if (d.state === "rolled_back") return { done: true, code: 1, why: `rolled back${d.reason ? `: ${printable(d.reason)}` : ""}` };
  if (d.state === "superseded") return { done: true, code: 1, why: `superseded by ${d.supersededBy ?? "a newer rollout"}` };
  return { done: true, code: 1, why: nodes || printable(d.reason ?? `the deployment ${d.state}`) };
}

/**
 * One node's line: mark, name, state, commits, duration, reason. When the
 * line would be wider than `columns`, the reason goes on lines of its own
 * under it instead of being cut off.
 */
export function renderNode(node: string, report: NodeReport | undefined, options: { width: number; now: number; paint?: Paint; idle?: string; columns?: number }): string[] {
  const { width, now, paint = plain, idle = "waiting", columns = Infinity } = options;
  const state = report?.state ?? idle;
  const running = state === "received" || state === "started";
  const commits = report?.commitAfter && report.commitBefore && report.commitAfter !== report.commitBefore
    ? `${shortSha(report.commitBefore)} → ${shortSha(report.commitAfter)}`
    : shortSha(report?.commitAfter ?? report?.commitBefore);
  const duration = report?.durationMs !== undefined ? formatDuration(report.durationMs) : report?.at && running ? formatDuration(now - Date.parse(report.at)) : "";
  const head = `  ${[paint(colourOf(state), `${MARKS[state] ?? "·"} ${printable(node).padEnd(width)}  ${state.padEnd(9)}`), commits.padEnd(17), duration.padStart(7)].join("  ")}`;
  const reason = printable(report?.reason ?? "");
  if (!reason) return [head.trimEnd()];
  const line = `${head}  ${paint("dim", reason)}`;
  if (visibleLength(line) <= columns) return [line];
  return [head.trimEnd(), ...wrap(reason, Math.max(20, columns - 6)).map((part) => `      ${paint("dim", part)}`)];
}

/** A piece of the view, keyed by what it says: in a log (not a terminal) a piece is written once per key. */
export interface Part {
  key: string;
  lines: string[];
  /** Drawn on a terminal only (a log has the rollout's progress line instead). */
  terminalOnly?: boolean;
}

/** The whole deployment: heading, rollout progress, nodes (wave by wave), reason, rollback, where it was reported, summary. */
export function deploymentParts(d: Deployment, now: number, paint: Paint = plain, columns = Infinity): Part[] {
  const ids = nodeIds(d);
  const width = Math.max(4, ...ids.map((node) => printable(node).length));
  const took = d.finishedAt ? `took ${formatDuration(durationOf(d, now))}` : formatDuration(durationOf(d, now));
  const what = `${describeDeployment(d)}  ${paint("dim", took)}`;
  // On a narrow terminal what it does goes under its id instead of being cut off.
  const top = visibleLength(`${d.id}  ${what}`) <= columns ? [`${paint("bold", d.id)}  ${what}`] : [paint("bold", d.id), `  ${what}`];
  const parts: Part[] = [{ key: "head", lines: top }];
  const progress = waveSummary(d, now);
  if (progress) parts.push({ key: `progress ${progress.replace(/baking \d+ s/, "baking")}`, lines: [`  ${progress}`] });
  if (progress && d.strategy) parts.push({ key: "strategy", lines: [`  ${paint("dim", strategyPhrase(d.strategy))}`] });
  if (d.state === "paused") {
    parts.push({ key: `paused ${d.pausedAfter}`, lines: [`  ${paint("magenta", `paused after wave ${d.pausedAfter}: approve with deploy.ts approve ${d.id} (or stop it with deploy.ts abort ${d.id})`)}`] });
  }
  const waveOf = new Map((d.waves ?? []).flatMap((wave, i) => wave.nodes.map((node) => [node, i] as const)));
  let heading: number | undefined;
  for (const node of ids) {
    const wave = waveOf.get(node);
    if (d.waves && d.waves.length > 1 && wave !== undefined && wave !== heading) {
      heading = wave;
      parts.push({ key: `wave ${wave}`, lines: [`  ${paint("dim", `wave ${wave + 1} · ${d.waves[wave].state}`)}`], terminalOnly: true });
    }
    const idle = wave !== undefined && d.waves![wave].state === "pending" ? "pending" : "waiting";
    const report = d.nodes[node];
    parts.push({ key: `node ${node} ${report?.state ?? idle}`, lines: renderNode(node, report, { width, now, paint, idle, columns }) });
  }
  if (d.reason) parts.push({ key: `reason ${d.reason}`, lines: wrap(printable(d.reason), Math.max(20, columns - 2)).map((part) => `  ${paint(colourOf(d.state), part)}`) });
  if (d.rollback) {
    parts.push({ key: `rollback ${d.rollback.state}`, lines: [`  ${paint(colourOf(d.rollback.state), `rollback ${d.rollback.state}`)}: nodes it changed, back to their commit before`] });
    for (const [node, run] of Object.entries(d.rollback.nodes)) {
      const report = { state: run.state as NodeReport["state"], at: "", commitAfter: run.commitAfter ?? run.commit, ...(run.reason ? { reason: run.reason } : {}) };
      parts.push({ key: `rollback ${node} ${run.state}`, lines: renderNode(node, report, { width, now, paint, columns }) });
    }
  }
  const reported = reportLine(d, paint);
  if (reported) parts.push({ key: "reports", lines: [reported], terminalOnly: true });
  const state = d.state.replace("_", " ").toUpperCase();
  parts.push({ key: "summary", lines: [`  ${paint("bold", paint(colourOf(d.state), state))}  ${countsPhrase(d.counts ?? {}, ", ") || "no nodes"}`] });
  return parts;
}

const REPORT_MARKS = { delivered: "✔", failed: "✘", pending: "…" } as const;

/** Where the deployment was reported (docs/reporting.md): each target's latest state, and why one failed or waits. */
export function reportLine(d: Deployment, paint: Paint = plain): string | undefined {
  const latest = new Map((d.reports ?? []).map((r) => [r.target, r]));
  if (latest.size === 0) return undefined;
  const parts = [...latest.values()].map((r) => {
    const colour = r.state === "delivered" ? "green" : r.state === "failed" ? "red" : "yellow";
    const why = r.state === "delivered" ? "" : ` (${r.attempts} ${r.attempts === 1 ? "try" : "tries"}${r.reason ? `: ${printable(r.reason)}` : ""})`;
    return `${paint(colour, `${printable(r.target)} ${REPORT_MARKS[r.state]} ${printable(r.event.replace(/^deployment\./, ""))}`)}${why}`;
  });
  return `  reported  ${parts.join(", ")}`;
}

/** The whole deployment as lines, as `status ID` prints it and a terminal redraws it. */
export function renderDeployment(d: Deployment, now: number, paint: Paint = plain, columns = Infinity): string[] {
  return deploymentParts(d, now, paint, columns).flatMap((part) => part.lines);
}

/** The last lines of output of every node whose update or check failed, each line printable and clipped to `columns`. */
export function failureTails(d: Deployment, columns = Infinity, count = 20): string[] {
  const out: string[] = [];
  for (const node of nodeIds(d)) {
    const report = d.nodes[node];
    const tail = report && (report.state === "failed" || report.state === "unhealthy") ? outputTail(report.output, count) : [];
    if (tail.length === 0) continue;
    out.push(clip(`output of ${printable(node)} (last ${tail.length} line${tail.length === 1 ? "" : "s"}):`, columns));
    for (const line of tail) out.push(clip(`  ${printable(line)}`, columns));
  }
  return out;
}
