/// <reference lib="dom" />
/**
 * Browser code of the dashboard, shipped as source text: one deployment's
 * card, drawn whole from the deployment as served (shared/served.ts). Its
 * state by colour and word, what it does, where it came from, its age and
 * true duration (finishedAt - createdAt; a running one ticks), its counts, a
 * rollout's waves with each wave's node chips, the reason, approve and abort
 * buttons while they apply, the rollback, the commands nodes rejected in its
 * name, and the output tail of each failed node.
 */
import type { NodeReport } from "../shared/deployments.ts";
import { countsPhrase, describeDeployment, durationOf, outputTail, strategyPhrase, waveSummary } from "../shared/format.ts";
import type { Deployment } from "../shared/served.ts";
import { agoTag, commitTag, durationTag, el, stateTag, tone, type Child } from "./dashboard-dom.ts";
import { outputOf } from "./dashboard-merge.ts";
import type { Rejection } from "./view.ts";

/** What the page knows beside the deployment itself. */
export interface CardContext {
  rejections: Rejection[];
  /** Output panels the operator opened (`deployment/node`), kept open across redraws. */
  open: Set<string>;
  /** Output of failed nodes the page read aside (snapshots carry none). */
  outputs: Map<string, string>;
  /** The answer to the operator's last approve or abort. */
  note?: string;
}

export function deploymentCard(d: Deployment, context: CardContext, now: number): HTMLElement {
  return el(
    "article",
    { class: `dep t-${tone(d.state)}`, "data-deployment": d.id, "data-state": d.state },
    cardHead(d, now),
    d.reason && el("p", { class: "reason" }, d.reason),
    d.supersededBy && el("p", { class: "reason" }, `superseded by ${d.supersededBy}`),
    d.waves && d.waves.length > 0 && el("p", { class: "wave-line", "data-wave": d.id }, waveSummary(d, now) ?? ""),
    d.waves && d.waves.length > 0 && d.strategy && el("p", { class: "strategy" }, strategyPhrase(d.strategy)),
    cardActions(d, context.note),
    nodeSection(d, now),
    rollbackSection(d),
    rejectedSection(context.rejections, now),
    failedOutputs(d, context),
  );
}

export function cardHead(d: Deployment, now: number): HTMLElement {
  const running = !d.finishedAt;
  const counts = countsPhrase(d.counts ?? {});
  return el(
    "div",
    { class: "head" },
    stateTag(d.state, "badge"),
    el("span", { class: "what" }, describeDeployment(d)),
    el("span", { class: "id mono" }, d.id),
    el(
      "div",
      { class: "meta" },
      sourceLine(d.source as Record<string, string>),
      " · ",
      agoTag(d.createdAt, now),
      " · ",
      el("span", { class: "took" }, running ? (d.state === "queued" ? "queued for " : "running ") : "took ", durationTag(d.createdAt, running ? undefined : durationOf(d, now), now)),
      counts && ` · ${counts}`,
    ),
  );
}

/** Where it came from: the CI (a link only when it is http or https), committer and message. */
export function sourceLine(source: Record<string, string>): Child[] {
  const url = source.url && /^https?:\/\//i.test(source.url) ? source.url : undefined;
  const provider = url ? el("a", { href: url, rel: "noreferrer" }, source.provider) : source.provider;
  const message = source.message && (source.message.length > 90 ? `${source.message.slice(0, 89)}…` : source.message);
  return ["via ", provider, ...[source.committer, message].filter(Boolean).map((text) => ` · ${text}`)];
}

/** Approve while paused; abort while a rollout can still be stopped. */
export function cardActions(d: Deployment, note: string | undefined): HTMLElement | undefined {
  const open = d.waves && !d.finishedAt && !d.rollback && !d.reason && (d.state === "running" || d.state === "paused" || d.state === "queued");
  if (!open && !note) return undefined;
  const approve = d.state === "paused" && el("button", { type: "button", class: "approve", "data-action": "approve", "data-id": d.id }, `Approve wave ${(d.pausedAfter ?? 0) + 1}`);
  const abort = open && el("button", { type: "button", class: "abort", "data-action": "abort", "data-id": d.id }, "Abort");
  return el("div", { class: "actions" }, approve, abort, note && el("span", { class: "note" }, note));
}

/** The node chips: per wave for a rollout, else one list. */
export function nodeSection(d: Deployment, now: number): Child {
  if (!d.waves || d.waves.length === 0) {
    const ids = [...d.expected, ...Object.keys(d.nodes).filter((node) => !d.expected.includes(node)).sort()];
    if (ids.length === 0) return el("p", { class: "meta" }, "no node was online for this target");
    return el("ul", { class: "nodes" }, ids.map((node) => nodeChip(node, d.nodes[node], "waiting", now)));
  }
  const inWaves = new Set(d.waves.flatMap((wave) => wave.nodes));
  const late = Object.keys(d.nodes).filter((node) => !inWaves.has(node)).sort();
  return [
    d.waves.map((wave, i) =>
      el(
        "div",
        { class: "wave", "data-wave-index": i + 1, "data-state": wave.state },
        el("span", { class: "wave-name" }, `wave ${i + 1}`),
        stateTag(wave.state),
        el("ul", { class: "nodes" }, wave.nodes.map((node) => nodeChip(node, d.nodes[node], wave.state === "pending" ? "pending" : "waiting", now))),
      ),
    ),
    late.length > 0 && el("div", { class: "wave" }, el("span", { class: "wave-name" }, "caught up later"), el("ul", { class: "nodes" }, late.map((node) => nodeChip(node, d.nodes[node], "waiting", now)))),
  ];
}

/** One node: its state, the commit it ended at, how long it took (ticking while it runs), why. */
export function nodeChip(node: string, report: NodeReport | undefined, idle: string, now: number): HTMLElement {
  const state = report?.state ?? idle;
  const running = state === "received" || state === "started";
  return el(
    "li",
    { class: `chip t-${tone(state)}`, "data-node": node, "data-state": state, title: report?.reason },
    el("span", { class: "n" }, node),
    stateTag(state, "word"),
    report?.commitAfter && commitTag(report.commitAfter),
    report?.at && (running || report.durationMs !== undefined) && durationTag(report.at, running ? undefined : report.durationMs, now),
    report?.reason && el("span", { class: "why" }, report.reason),
  );
}

export function rollbackSection(d: Deployment): HTMLElement | undefined {
  if (!d.rollback) return undefined;
  const nodes = Object.entries(d.rollback.nodes);
  return el(
    "div",
    { class: "rollback", "data-state": d.rollback.state },
    el("span", { class: "wave-name" }, `rollback of ${nodes.length} node${nodes.length === 1 ? "" : "s"}`),
    stateTag(d.rollback.state),
    el("ul", { class: "nodes" }, nodes.map(([node, run]) => nodeChip(node, { state: run.state as NodeReport["state"], at: "", commitAfter: run.commitAfter ?? run.commit, reason: run.reason }, "waiting", 0))),
  );
}

/** Commands refused in this deployment's name (forged or changed on the way): counted and listed. */
export function rejectedSection(rejections: Rejection[], now: number): HTMLElement | undefined {
  if (rejections.length === 0) return undefined;
  return el(
    "div",
    { class: "rejected", "data-rejected": rejections.length },
    el("strong", {}, `⊘ ${rejections.length} command${rejections.length === 1 ? "" : "s"} rejected by nodes`),
    el("ul", {}, rejections.map((r) => el("li", {}, el("span", { class: "n" }, r.node), ": ", r.reason || "no reason given", " · ", agoTag(r.at, now)))),
  );
}

/** The last 20 lines of each failed node's output, folded away until opened. */
export function failedOutputs(d: Deployment, context: CardContext): HTMLElement[] {
  return Object.entries(d.nodes)
    .map(([node, r]) => [node, r.state === "failed" || r.state === "unhealthy" ? outputOf(context.outputs, d.id, node, r) : undefined] as const)
    .filter(([, output]) => output)
    .map(([node, output]) =>
      el(
        "details",
        { class: "out", "data-key": `${d.id}/${node}`, open: context.open.has(`${d.id}/${node}`) },
        el("summary", {}, `output of ${node} (last 20 lines)`),
        el("pre", {}, outputTail(output).join("\n")),
      ),
    );
}
