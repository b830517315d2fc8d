/**
 * What `scripts/deploy.ts` shows and decides, as pure functions of the
 * webhook's answers (README, "API"): a deployment drawn one line per
 * node, the exit status it deserves, the merge of a live event into the last
 * deployment read, and the `status` / `nodes` tables.
 */
import type { NodeReport } from "../../shared/deployments.ts";
import type { Deployment } from "../../shared/served.ts";
import { ago, describeDeployment as describe, formatDuration, shortSha as short } from "../../shared/format.ts";

/** Deployments and node reports as the API serves them (`GET /api/deployments/:id`). */
export type { Deployment };
type NodeOutcome = NodeReport;

/** A node as `GET /api/nodes` serves it. */
export interface NodeInfo {
  node: string;
  groups: string[];
  commit: string | null;
  branch: string | null;
  busy: boolean;
  lastSeen: string;
  online: boolean;
}

const GOOD = new Set(["succeeded", "skipped"]);
const BAD = new Set(["failed", "rejected", "missing"]);
const RUNNING = new Set(["received", "started"]);
/** Order of a node's states, so a late-arriving older event never hides a newer one. */
const RANK: Record<string, number> = { received: 1, started: 2, succeeded: 3, skipped: 3, failed: 3, rejected: 3, missing: 4 };

export const isFinal = (state: string) => GOOD.has(state) || BAD.has(state);

/** Every node the deployment concerns: the expected ones, then any other that reported. */
export function nodeIds(d: Deployment): string[] {
  const others = Object.keys(d.nodes).filter((node) => !d.expected.includes(node)).sort();
  return [...d.expected, ...others];
}

const NO_NODE_GRACE_MS = 10_000;

export type Outcome = { done: false } | { done: true; code: 0 | 1; why: string };

/**
 * Whether the deployment is over and how the CLI exits: 0 only when every
 * expected node succeeded or skipped and no node failed, rejected or went
 * missing. A node that reported is waited for even if it was not expected.
 */
export function outcome(d: Deployment, now = Date.now()): Outcome {
  const ids = nodeIds(d);
  const stateOf = (node: string) => d.nodes[node]?.state ?? "waiting";
  if (ids.length === 0) {
    // Nobody was expected: give nodes that are up but had not yet sent a heartbeat a moment to report.
    if (now - Date.parse(d.createdAt) < NO_NODE_GRACE_MS) return { done: false };
    return { done: true, code: 1, why: `no online node matches target ${d.target}: nothing ran (see \`deploy.ts nodes\`)` };
  }
  if (ids.some((node) => !isFinal(stateOf(node)))) return { done: false };
  const bad = ids.filter((node) => BAD.has(stateOf(node)));
  if (bad.length > 0) return { done: true, code: 1, why: bad.map((node) => `${node} ${stateOf(node)}`).join(", ") };
  if (d.state === "failed") return { done: true, code: 1, why: "the webhook reports the deployment failed" };
  return { done: true, code: 0, why: `${ids.length} of ${ids.length} node${ids.length === 1 ? "" : "s"} succeeded` };
}

/** The deployment with one live event applied to its node, unless it is older than what is known. */
export function mergeEvent(d: Deployment, event: { node?: string; state: string; at: string } & Omit<Partial<NodeOutcome>, "state">): Deployment {
  if (!event.node || event.state === "created") return d;
  const known = d.nodes[event.node];
  if (known && ((RANK[known.state] ?? 0) > (RANK[event.state] ?? 0) || known.at > event.at)) return d;
  const { node, state, at, reason, commitBefore, commitAfter, durationMs, output } = event;
  const next = { state, at, reason, commitBefore, commitAfter, durationMs, output } as NodeOutcome;
  for (const key of Object.keys(next) as (keyof NodeOutcome)[]) if (next[key] === undefined) delete next[key];
  return { ...d, nodes: { ...d.nodes, [node]: next } };
}

/** Of two readings of one deployment, per node the more advanced; the served one wins ties. */
export function mergeDeployments(served: Deployment, local: Deployment | undefined): Deployment {
  if (!local) return served;
  let merged = served;
  for (const [node, outcome] of Object.entries(local.nodes) as [string, NodeOutcome][]) merged = mergeEvent(merged, { node, ...outcome });
  return merged;
}

// ---------------------------------------------------------------- drawing

const COLOURS: Record<string, string> = { green: "32", red: "31", yellow: "33", cyan: "36", dim: "2", bold: "1" };
export type Paint = (colour: keyof typeof COLOURS, text: string) => string;
export const plain: Paint = (_, text) => text;
export const ansi: Paint = (colour, text) => `\x1b[${COLOURS[colour]}m${text}\x1b[0m`;

function colourOf(state: string): keyof typeof COLOURS {
  if (GOOD.has(state)) return state === "skipped" ? "cyan" : "green";
  if (BAD.has(state)) return "red";
  if (RUNNING.has(state) || state === "running") return "yellow";
  return "dim";
}

const MARKS: Record<string, string> = { succeeded: "✔", skipped: "↷", failed: "✘", rejected: "✘", missing: "?", received: "…", started: "▶" };

/** One node's line: mark, name, state, commit, duration, reason. */
export function renderNode(node: string, outcome: NodeOutcome | undefined, width: number, now: number, paint: Paint = plain): string {
  const state = outcome?.state ?? "waiting";
  const commits = outcome?.commitAfter && outcome.commitBefore && outcome.commitAfter !== outcome.commitBefore
    ? `${short(outcome.commitBefore)} → ${short(outcome.commitAfter)}`
    : short(outcome?.commitAfter ?? outcome?.commitBefore);
  const duration = outcome?.durationMs !== undefined
    ? formatDuration(outcome.durationMs)
    : outcome && RUNNING.has(state) ? formatDuration(now - Date.parse(outcome.at)) : "";
  const reason = printable(outcome?.reason ?? "");
  const cells = [
    paint(colourOf(state), `${MARKS[state] ?? "·"} ${printable(node).padEnd(width)}  ${printable(state).padEnd(9)}`),
    commits.padEnd(17),
    duration.padStart(7),
    reason ? paint("dim", reason) : "",
  ];
  return `  ${cells.join("  ")}`.trimEnd();
}

/** The summary line: counts by state and the overall word. */
export function summarize(d: Deployment, paint: Paint = plain): string {
  const counts = new Map<string, number>();
  for (const node of nodeIds(d)) {
    const state = d.nodes[node]?.state ?? "waiting";
    const word = RUNNING.has(state) ? "running" : state;
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  const parts = [...counts].map(([word, n]) => paint(colourOf(word), `${n} ${word}`));
  const result = outcome(d);
  const overall = result.done ? (result.code === 0 ? "succeeded" : "failed") : d.state === "queued" ? "queued" : "running";
  return `  ${paint("bold", paint(colourOf(overall), overall.toUpperCase()))}  ${parts.join(", ") || "no nodes"}`;
}

/** The whole deployment: a heading, one line per node, the summary. */
export function renderDeployment(d: Deployment, now: number, paint: Paint = plain): string[] {
  const ids = nodeIds(d);
  const width = Math.max(4, ...ids.map((node) => node.length));
  const elapsed = formatDuration(now - Date.parse(d.createdAt));
  return [
    `${paint("bold", d.id)}  ${describe(d)}  ${paint("dim", elapsed)}`,
    ...ids.map((node) => renderNode(node, d.nodes[node], width, now, paint)),
    summarize(d, paint),
  ];
}

/**
 * Text from the webhook (node names, reasons) as one printable line: any node
 * can publish events and heartbeats, and a control character in them must not
 * move the cursor or restyle the operator's terminal.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ");
}

/** Rows under a heading, each column as wide as its widest cell. */
export function table(heading: string[], cells: string[][]): string[] {
  const rows = cells.map((row) => row.map((cell) => printable(cell ?? "")));
  const widths = heading.map((cell, i) => Math.max(cell.length, ...rows.map((row) => (row[i] ?? "").length)));
  return [heading, ...rows].map((row) => row.map((cell, i) => (cell ?? "").padEnd(widths[i])).join("  ").trimEnd());
}

export function deploymentsTable(list: Deployment[], now: number): string[] {
  return table(
    ["ID", "WHAT", "STATE", "NODES", "CREATED"],
    list.map((d) => {
      const ids = nodeIds(d);
      const good = ids.filter((node) => GOOD.has(d.nodes[node]?.state ?? "")).length;
      return [d.id, describe(d), d.state, `${good}/${ids.length}`, ago(d.createdAt, now)];
    }),
  );
}

export function nodesTable(list: NodeInfo[], now: number): string[] {
  return table(
    ["NODE", "GROUPS", "BRANCH", "COMMIT", "BUSY", "ONLINE", "LAST SEEN"],
    list.map((n) => [n.node, n.groups.join(",") || "-", n.branch ?? "-", short(n.commit) || "-", n.busy ? "yes" : "no", n.online ? "yes" : "NO", ago(n.lastSeen, now)]),
  );
}

/** `line` cut to `columns` visible characters, keeping its colour codes, so a redraw never wraps. */
export function clip(line: string, columns: number): string {
  let visible = 0;
  let out = "";
  for (const part of line.split(/(\x1b\[[0-9;]*m)/)) {
    if (part.startsWith("\x1b[")) {
      out += part;
      continue;
    }
    const chars = [...part];
    const room = columns - visible;
    if (chars.length > room) return `${out}${chars.slice(0, Math.max(0, room - 1)).join("")}…\x1b[0m`;
    out += part;
    visible += chars.length;
  }
  return out;
}
