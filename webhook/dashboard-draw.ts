/// <reference lib="dom" />
/**
 * Browser code of the dashboard, shipped as source text: turning what changed
 * into DOM once per animation frame. A changed deployment's card is drawn
 * again and swapped in place; a changed node's row likewise; every other
 * element stays as it was (the page never re-renders the whole list for one
 * event). Also the approve and abort buttons: same-origin POSTs to the API,
 * JSON, with the browser's HTTP Basic credentials.
 */
import { waveSummary } from "../shared/format.ts";
import type { Deployment } from "../shared/served.ts";
import { deploymentCard } from "./dashboard-cards.ts";
import { el, tickTexts } from "./dashboard-dom.ts";
import { nodeRow, nodeTable, rejectionsPanel, summaryCards } from "./dashboard-fleet.ts";
import { schedule, type Page } from "./dashboard-live.ts";

export function flush(page: Page): void {
  page.frame = 0;
  const now = Date.now();
  const { dirty } = page;
  if (dirty.all) drawAll(page, now);
  else {
    for (const id of dirty.cards) {
      const d = page.deployments.get(id);
      const old = page.cards.get(id);
      if (!d) continue;
      const card = cardOf(page, d, now);
      page.cards.set(id, card);
      if (old) old.replaceWith(card);
    }
    if (dirty.layout) placeCards(page);
    for (const node of dirty.rows) {
      const n = page.nodes.get(node);
      const row = n && nodeRow(n, now);
      if (row) page.rows.get(node)?.replaceWith(row);
      if (row) page.rows.set(node, row);
    }
    if (dirty.fleet) drawFleet(page, now);
  }
  dirty.all = dirty.layout = dirty.fleet = false;
  dirty.cards.clear();
  dirty.rows.clear();
  tickTexts(document, now, (id) => waveSummary(page.deployments.get(id) ?? { state: "" }, now));
}

/** The whole page from what it holds: at start and after a (re)connect. */
export function drawAll(page: Page, now: number): void {
  const live = document.getElementById("live")!;
  const nodes = [...page.nodes.values()].sort((a, b) => (a.node < b.node ? -1 : 1));
  const table = nodeTable(nodes, now);
  page.rows = new Map([...table.querySelectorAll<HTMLElement>("tr[data-node]")].map((row) => [row.dataset.node!, row]));
  page.cards = new Map(page.order.map((id) => [id, cardOf(page, page.deployments.get(id)!, now)]));
  live.replaceChildren(
    el("div", { id: "stats" }),
    el("section", {}, el("h2", {}, "Nodes"), el("div", { class: "panel", id: "nodes" }, table)),
    el("section", {}, el("h2", {}, "Deployments"), el("div", { class: "panel", id: "deployments" })),
    el("div", { id: "rejections-slot" }),
  );
  placeCards(page);
  drawFleet(page, now);
}

/** Puts the cards in order (moving, not redrawing, those already there). */
export function placeCards(page: Page): void {
  const list = document.getElementById("deployments")!;
  for (const [id, card] of page.cards) {
    if (page.deployments.has(id)) continue;
    page.cards.delete(id);
    card.remove();
  }
  const cards = page.order.map((id) => page.cards.get(id)!).filter(Boolean);
  if (cards.length === 0) list.replaceChildren(el("p", { class: "empty" }, "No deployments yet. A successful CI build or ", el("code", {}, "bun scripts/deploy.ts"), " starts one."));
  else list.replaceChildren(...cards);
}

/** The summary cards and the panel of rejected commands that have no card. */
export function drawFleet(page: Page, now: number): void {
  const last = page.deployments.get(page.order[0]);
  document.getElementById("stats")!.replaceWith(summaryCards([...page.nodes.values()], last, page.rejections.length));
  const loose = page.rejections.filter((r) => !page.deployments.has(r.deployment));
  const slot = document.getElementById("rejections-slot")!;
  slot.replaceChildren(...[rejectionsPanel(loose, now)].filter((x): x is HTMLElement => !!x));
}

export function cardOf(page: Page, d: Deployment, now: number): HTMLElement {
  const rejections = page.rejections.filter((r) => r.deployment === d.id);
  return deploymentCard(d, { rejections, open: page.open, outputs: page.outputs, note: page.notes.get(d.id) }, now);
}

export function onClick(page: Page, event: Event): void {
  const button = (event.target as Element | null)?.closest?.("button[data-action]") as HTMLButtonElement | null;
  if (!button || button.disabled) return;
  const { action, id } = button.dataset;
  if (!action || !id) return;
  if (action === "abort" && !confirm(`Abort ${id}? It dispatches no further wave, and its on_failure applies (by default the nodes it changed are rolled back).`)) return;
  button.disabled = true;
  void act(page, id, action);
}

/** POSTs approve or abort; the outcome shows on the card until its state changes. */
export async function act(page: Page, id: string, action: string): Promise<void> {
  let note: string;
  try {
    const response = await fetch(`/api/deployments/${encodeURIComponent(id)}/${action}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: "{}",
    });
    const body = await response.json().catch(() => ({}));
    note = response.ok ? (action === "approve" ? "approved: the next wave starts" : "aborted: stopping") : `could not ${action}: ${body.error ?? response.status}`;
  } catch (error) {
    note = `could not ${action}: ${(error as Error).message}`;
  }
  page.notes.set(id, note);
  page.dirty.cards.add(id);
  schedule(page);
}
