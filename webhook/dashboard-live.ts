/// <reference lib="dom" />
/**
 * Browser code of the dashboard, shipped as source text: what the page holds
 * and how it stays live. It starts from the data the server put in the page,
 * then follows `/api/events`: a `state` message is merged into the deployment
 * it names by the rule of shared/served.ts mergeSnapshot (webhook/dashboard-merge.ts)
 * and redraws that deployment's card only;
 * a `node` message redraws that node's row; a `deployment` message matters
 * only when a node rejected a command. Redraws are coalesced into one per
 * animation frame. On every (re)connect the page reads the deployments, nodes
 * and rejections again, and replays on top what the stream brought meanwhile.
 */
import { waveSummary } from "../shared/format.ts";
import type { Deployment, Snapshot } from "../shared/served.ts";
import { tickTexts } from "./dashboard-dom.ts";
import { flush, onClick } from "./dashboard-draw.ts";
import { fetchOutputs, mergeInto } from "./dashboard-merge.ts";
import type { NodeStatus, Rejection } from "./view.ts";

export interface PageData {
  deployments: Deployment[];
  nodes: NodeStatus[];
  rejections: Rejection[];
  limit: number;
}

export interface Page {
  limit: number;
  deployments: Map<string, Deployment>;
  /** Deployment ids, newest first. */
  order: string[];
  nodes: Map<string, NodeStatus>;
  rejections: Rejection[];
  cards: Map<string, HTMLElement>;
  rows: Map<string, HTMLElement>;
  open: Set<string>;
  notes: Map<string, string>;
  /** Output of failed nodes read from their deployment, and the failures it was asked for (`deployment/node/at`). */
  outputs: Map<string, string>;
  asked: Set<string>;
  dirty: { all: boolean; cards: Set<string>; rows: Set<string>; layout: boolean; fleet: boolean };
  /** While the page reads everything again: the stream's messages, replayed on top afterwards. */
  buffer?: [string, unknown][];
  frame: number;
}

export function startDashboard(data: PageData): void {
  const page: Page = {
    limit: data.limit, deployments: new Map(), order: [], nodes: new Map(), rejections: [], cards: new Map(), rows: new Map(),
    open: new Set(), notes: new Map(), outputs: new Map(), asked: new Set(), dirty: { all: true, cards: new Set(), rows: new Set(), layout: false, fleet: true }, frame: 0,
  };
  load(page, data);
  flush(page);
  connect(page);
  setInterval(() => tickTexts(document, Date.now(), (id) => waveSummary(page.deployments.get(id) ?? { state: "" }, Date.now())), 1000);
  // A node's rows change by SSE (heartbeats, outcomes, falling silent); what a new deployment changes
  // in nodes it has not reached yet (their desired commit) is read again now and then.
  setInterval(() => void getJson("/api/nodes").then((body) => body.nodes.forEach((n: NodeStatus) => applyNode(page, n)), () => {}), 15_000);
  document.addEventListener("click", (event) => onClick(page, event));
  document.addEventListener("toggle", (event) => {
    const details = event.target as HTMLDetailsElement;
    if (details.dataset?.key) details.open ? page.open.add(details.dataset.key) : page.open.delete(details.dataset.key);
  }, true);
}

/** Replaces what the page holds with a whole reading of the API. */
export function load(page: Page, data: Omit<PageData, "limit">): void {
  page.deployments = new Map(data.deployments.map((d) => [d.id, d]));
  page.order = data.deployments.map((d) => d.id);
  page.nodes = new Map(data.nodes.map((n) => [n.node, n]));
  page.rejections = [...data.rejections];
  page.dirty.all = true;
  schedule(page);
}

export function connect(page: Page): void {
  const conn = document.getElementById("conn")!;
  const events = new EventSource("/api/events");
  events.onopen = () => {
    conn.textContent = "● live";
    conn.className = "on";
    void resync(page);
  };
  events.onerror = () => {
    conn.textContent = "○ reconnecting";
    conn.className = "off";
    // EventSource retries by itself unless the answer was an error; then the page does, later.
    if (events.readyState === EventSource.CLOSED) setTimeout(() => connect(page), 5000);
  };
  for (const kind of ["state", "node", "deployment"]) events.addEventListener(kind, (event) => receive(page, kind, (event as MessageEvent).data));
}

export function receive(page: Page, kind: string, text: string): void {
  let body: { state?: string };
  try {
    body = JSON.parse(text);
  } catch {
    return;
  }
  if (kind === "deployment" && body.state !== "rejected") return;
  page.buffer?.push([kind, body]);
  apply(page, kind, body);
}

export function apply(page: Page, kind: string, body: unknown): void {
  if (kind === "state") applyState(page, body as Snapshot);
  else if (kind === "node") applyNode(page, body as NodeStatus);
  else applyRejection(page, body as Rejection & { node?: string });
}

/** Reads deployments, nodes and rejections again (after a (re)connect), then replays what came meanwhile. */
export async function resync(page: Page): Promise<void> {
  const buffer: [string, unknown][] = [];
  page.buffer = buffer;
  try {
    const [list, fleet, refused] = await Promise.all([getJson(`/api/deployments?limit=${page.limit}`), getJson("/api/nodes"), getJson("/api/rejections")]);
    load(page, { deployments: list.deployments, nodes: fleet.nodes, rejections: refused.rejections });
    for (const [kind, body] of buffer) apply(page, kind, body);
    document.body.dataset.synced = String(Number(document.body.dataset.synced ?? 0) + 1);
  } catch {
    // The stream's next reconnect reads again.
  } finally {
    if (page.buffer === buffer) page.buffer = undefined;
  }
}

export async function getJson(path: string) {
  const response = await fetch(path, { headers: { accept: "application/json" }, cache: "no-store", credentials: "same-origin" });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

export function applyState(page: Page, snap: Snapshot): void {
  const held = page.deployments.get(snap.id);
  const merged = mergeInto(held, snap);
  if (!merged) return; // a deployment this page does not show
  if (!held) {
    const oldest = page.deployments.get(page.order[page.order.length - 1]);
    if (page.order.length >= page.limit && oldest && oldest.createdAt > merged.createdAt) return;
    const at = page.order.findIndex((id) => page.deployments.get(id)!.createdAt < merged.createdAt);
    page.order.splice(at < 0 ? page.order.length : at, 0, merged.id);
    for (const id of page.order.splice(page.limit)) page.deployments.delete(id);
    page.dirty.layout = true;
  }
  if (held && held.state !== merged.state) page.notes.delete(snap.id);
  page.deployments.set(snap.id, merged);
  fetchOutputs(page, merged);
  page.dirty.cards.add(snap.id);
  page.dirty.fleet = true;
  schedule(page);
}

export function applyNode(page: Page, n: NodeStatus): void {
  if (!page.nodes.has(n.node)) page.dirty.all = true;
  page.nodes.set(n.node, n);
  page.dirty.rows.add(n.node);
  page.dirty.fleet = true;
  schedule(page);
}

export function applyRejection(page: Page, event: Rejection & { node?: string }): void {
  if (!event.node) return;
  const r: Rejection = { node: event.node, deployment: event.deployment, command: event.command, reason: event.reason ?? "", at: event.at };
  if (page.rejections.some((x) => x.node === r.node && x.command === r.command && x.at === r.at)) return;
  page.rejections.unshift(r);
  page.rejections.length = Math.min(page.rejections.length, 50);
  if (page.deployments.has(r.deployment)) page.dirty.cards.add(r.deployment);
  page.dirty.fleet = true;
  schedule(page);
}

export function schedule(page: Page): void {
  if (!page.frame) page.frame = requestAnimationFrame(() => flush(page));
}
