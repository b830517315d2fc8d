/**
 * The dashboard at `GET /`, behind HTTP Basic (password = the API key; the app
 * applies the check before this route): recent deployments with every node's
 * state, and the node list with each node's commit and whether it is on the
 * latest deployed commit of its branch. Rendered on the server with
 * `hono/html` (every value escaped); the inline script in
 * webhook/dashboard-assets.ts keeps it live over `/api/events`. State is
 * always shown by colour and by word.
 */
import { Hono } from "hono";
import { html, raw } from "hono/html";
import type { Deployment, NodeReport } from "../shared/deployments.ts";
import { ago, describeDeployment, formatDuration, shortSha } from "../shared/format.ts";
import type { NodeStatus, View } from "./view.ts";
import { SCRIPT, STYLE } from "./dashboard-assets.ts";

/** How many deployments the page lists; older ones (up to HISTORY_SCAN) still count for "latest commit". */
export const DASHBOARD_DEPLOYMENTS = 20;
const HISTORY_SCAN = 1000;

export interface DashboardInput {
  fleet: string;
  /** Newest first. */
  deployments: Deployment[];
  nodes: NodeStatus[];
  now: number;
}

const ICONS: Record<string, string> = {
  succeeded: "✔", failed: "✘", rejected: "⊘", missing: "?", skipped: "↷",
  received: "…", started: "▶", running: "▶", queued: "…", waiting: "○",
};

/**
 * The commit each branch was last deployed at: from the newest `update` of
 * that branch that succeeded on at least one node.
 */
export function latestCommits(deployments: readonly Deployment[]): Map<string, string> {
  const latest = new Map<string, string>();
  for (const d of deployments) {
    if (d.command !== "update" || !("branch" in d.args)) continue;
    const branch = d.args.branch;
    if (latest.has(branch)) continue;
    const done = Object.values(d.nodes).find((n) => n.state === "succeeded" && n.commitAfter);
    const commit = done?.commitAfter ?? (d.state === "succeeded" ? d.args.commit : undefined);
    if (commit) latest.set(branch, commit);
  }
  return latest;
}

/** Whether a node runs its branch's latest deployed commit: `current`, `behind`, or `unknown` when no deployment says. */
export function freshness(node: Pick<NodeStatus, "commit" | "branch">, latest: Map<string, string>): "current" | "behind" | "unknown" {
  const commit = node.branch ? latest.get(node.branch) : undefined;
  if (!commit || !node.commit) return "unknown";
  return node.commit.startsWith(commit) || commit.startsWith(node.commit) ? "current" : "behind";
}

const time = (iso: string, now: number) => html`<time data-ago datetime="${iso}" title="${iso}">${ago(iso, now)}</time>`;

function nodeChip(d: Deployment, node: string, report: NodeReport | undefined, now: number) {
  const state = report?.state ?? "waiting";
  const running = state === "received" || state === "started";
  const took = report?.durationMs !== undefined ? formatDuration(report.durationMs) : running && report ? formatDuration(now - Date.parse(report.at)) : "";
  return html`<li class="chip s-${state}" data-node="${node}" data-state="${state}" title="${report?.reason ?? ""}">
    <span>${ICONS[state] ?? "·"} ${node}</span><b>${state}</b>${report?.commitAfter ? html`<code>${shortSha(report.commitAfter)}</code>` : ""}${took ? html`<span class="meta">${took}</span>` : ""}${report?.reason ? html`<span class="why">${report.reason}</span>` : ""}
  </li>`;
}

function outputs(d: Deployment) {
  return Object.entries(d.nodes)
    .filter(([, r]) => r.output && (r.state === "failed" || r.state === "rejected"))
    .map(([node, r]) => html`<details class="out" id="out-${d.id}-${node}"><summary>output of ${node}</summary><pre>${r.output}</pre></details>`);
}

function source(d: Deployment) {
  const s = d.source as Record<string, string>;
  const url = s.url && /^https?:\/\//.test(s.url) ? s.url : undefined;
  const parts = [s.committer, s.message && (s.message.length > 90 ? `${s.message.slice(0, 89)}…` : s.message)].filter(Boolean);
  return html`via ${url ? html`<a href="${url}" rel="noreferrer">${s.provider}</a>` : s.provider}${parts.length ? ` · ${parts.join(" · ")}` : ""}`;
}

function deploymentCard(d: Deployment, now: number) {
  const ids = [...d.expected, ...Object.keys(d.nodes).filter((n) => !d.expected.includes(n)).sort()];
  const took = d.finishedAt ? ` · took ${formatDuration(Date.parse(d.finishedAt) - Date.parse(d.createdAt))}` : "";
  return html`<article class="dep s-${d.state}" data-deployment="${d.id}" data-state="${d.state}">
  <div class="head">
    <span class="badge s-${d.state}">${ICONS[d.state]} ${d.state}</span>
    <span class="what">${describeDeployment(d as { command: string; target: string; args: Record<string, string> })}</span>
    <span class="id mono">${d.id}</span>
    <span class="meta">${source(d)} · ${time(d.createdAt, now)}${took}</span>
  </div>
  <ul class="nodes">${ids.length ? ids.map((node) => nodeChip(d, node, d.nodes[node], now)) : html`<li class="meta">no node was online for this target</li>`}</ul>
  ${outputs(d)}
</article>`;
}

function nodeRow(n: NodeStatus, latest: Map<string, string>, now: number) {
  const fresh = freshness(n, latest);
  const word = { current: "✔ latest", behind: "✘ behind", unknown: "– unknown" }[fresh];
  return html`<tr data-node="${n.node}" data-online="${n.online}">
  <td><strong>${n.node}</strong></td>
  <td>${n.groups.length ? n.groups.map((g) => html`<span class="group">${g}</span>`) : html`<span class="meta">–</span>`}</td>
  <td class="mono">${n.branch ?? "–"}</td>
  <td><code title="${n.commit ?? ""}">${shortSha(n.commit) || "–"}</code></td>
  <td><span class="tag s-${fresh === "unknown" ? "waiting" : fresh}" data-fresh="${fresh}">${word}</span></td>
  <td>${n.busy ? html`<span class="tag s-running">▶ busy</span>` : "idle"}</td>
  <td>${time(n.lastSeen, now)}</td>
  <td><span class="tag s-${n.online ? "online" : "offline"}">${n.online ? "● online" : "○ offline"}</span></td>
</tr>`;
}

/** The strip at the top: nodes online, nodes on their branch's latest commit, the last deployment's state. */
function stats(deployments: Deployment[], nodes: NodeStatus[], latest: Map<string, string>) {
  const online = nodes.filter((n) => n.online).length;
  const current = nodes.filter((n) => freshness(n, latest) === "current").length;
  const last = deployments[0];
  const stat = (state: string, n: unknown, label: unknown) =>
    html`<div class="stat s-${state}"><div class="n">${n}</div><div class="l">${label}</div></div>`;
  return html`<div class="stats" id="stats">
    ${stat(nodes.length && online === nodes.length ? "online" : online ? "behind" : "offline", `${online} / ${nodes.length}`, "nodes online")}
    ${stat(nodes.length && current === nodes.length ? "current" : "behind", `${current} / ${nodes.length}`, "on the latest deployed commit")}
    ${last ? stat(last.state, html`${ICONS[last.state]} ${last.state}`, html`last deployment <span class="mono">${last.id}</span>`) : ""}
  </div>`;
}

/** The live part of the page: what the script swaps in on every event. */
export function renderLive(input: DashboardInput) {
  const { deployments, nodes, now } = input;
  const latest = latestCommits(deployments);
  const shown = deployments.slice(0, DASHBOARD_DEPLOYMENTS);
  return html`<div id="live">
  ${stats(shown, nodes, latest)}
  <section>
    <h2>Deployments</h2>
    <div class="panel">${shown.length ? shown.map((d) => deploymentCard(d, now)) : html`<p class="empty">No deployments yet. A successful CI build or <code>bun scripts/deploy.ts</code> starts one.</p>`}</div>
  </section>
  <section>
    <h2>Nodes</h2>
    <div class="panel">${nodes.length
      ? html`<table><thead><tr><th>Node</th><th>Groups</th><th>Branch</th><th>Commit</th><th>Latest deploy</th><th>Work</th><th>Last seen</th><th>Status</th></tr></thead>
        <tbody>${nodes.map((n) => nodeRow(n, latest, now))}</tbody></table>`
      : html`<p class="empty">No node has sent a heartbeat yet.</p>`}</div>
  </section>
</div>`;
}

/** The whole page. */
export function renderDashboard(input: DashboardInput) {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>arbeider · ${input.fleet}</title>
<style>${raw(STYLE)}</style>
</head>
<body>
<header class="top">
  <h1>arbeider</h1><span class="fleet">fleet <strong>${input.fleet}</strong></span>
  <span class="summary"><span id="conn" class="off">○ connecting</span></span>
</header>
<main>${renderLive(input)}</main>
<script>${raw(SCRIPT)}</script>
</body>
</html>`;
}

/** The dashboard's routes, for the fleet `fleet`, drawn from `view`. */
export function createDashboard(options: { fleet: string; view: View; now?: () => number }): Hono {
  const { fleet, view } = options;
  const now = options.now ?? Date.now;
  const app = new Hono();
  app.get("/", (c) => {
    c.header("cache-control", "no-store");
    return c.html(renderDashboard({ fleet, deployments: view.list(HISTORY_SCAN), nodes: view.nodes(), now: now() }));
  });
  return app;
}
