/// <reference lib="dom" />
/**
 * Browser code of the dashboard, shipped as source text (webhook/dashboard-assets.ts
 * says how): the small DOM helpers every part of the page draws with. Every
 * value reaches the page as a text node or an attribute set one by one,
 * never as HTML, so nothing a CI or a node sends can become markup. States
 * are shown by colour (`t-<tone>`) and by word. Every function is exported
 * and self-contained: no module-level values, calls only to shipped functions.
 */
import { ago, formatDuration, shortSha } from "../shared/format.ts";

export type Child = Node | string | number | null | undefined | false | Child[];

/** An element with attributes (`class`, `title`, `data-*`, ...) and children; strings become text nodes. */
export function el(tag: string, attrs: Record<string, string | number | boolean | undefined> = {}, ...children: Child[]): HTMLElement {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

/** Appends children, flattening arrays and skipping empty ones. */
export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false || child === "") continue;
    if (Array.isArray(child)) append(parent, child);
    else parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** The colour family of a state word: ok, bad, run, warn, skip or wait. */
export function tone(state: string): string {
  switch (state) {
    case "succeeded":
    case "on latest":
    case "online":
      return "ok";
    case "failed":
    case "rejected":
    case "missing":
    case "unhealthy":
      return "bad";
    case "running":
    case "received":
    case "started":
    case "updating":
    case "baking":
      return "run";
    case "paused":
    case "rolled_back":
    case "behind":
    case "moved":
    case "dirty":
      return "warn";
    case "skipped":
    case "superseded":
      return "skip";
    default:
      return "wait";
  }
}

/** The mark drawn before a state word, so it reads without colour too. */
export function icon(state: string): string {
  const marks: Record<string, string> = {
    succeeded: "✔", "on latest": "✔", failed: "✘", rejected: "⊘", missing: "?", unhealthy: "✘", skipped: "↷",
    received: "…", started: "▶", running: "▶", updating: "▶", baking: "◔", paused: "‖", rolled_back: "↶",
    superseded: "⤼", behind: "↓", moved: "↔", dirty: "✎", offline: "○", stopping: "◌", queued: "…",
  };
  return marks[state] ?? "○";
}

/** A state as a coloured word with its mark: `✔ succeeded`. */
export function stateTag(state: string, kind = "tag"): HTMLElement {
  return el("span", { class: `${kind} t-${tone(state)}`, "data-state": state }, `${icon(state)} ${state.replace("_", " ")}`);
}

/** A relative time that the page keeps current: `3m ago`. */
export function agoTag(iso: string, now: number): HTMLElement {
  return el("time", { datetime: iso, title: iso, "data-ago": iso }, ago(iso, now));
}

/** A duration counting up from `since` while something runs, or fixed once it is known. */
export function durationTag(since: string, fixedMs: number | undefined, now: number): HTMLElement {
  if (fixedMs !== undefined) return el("span", { class: "t" }, formatDuration(fixedMs));
  return el("span", { class: "t", "data-since": since }, formatDuration(now - Date.parse(since)));
}

/** A commit, short, with the whole sha as its title. */
export function commitTag(sha: string | null | undefined): HTMLElement {
  return el("code", { title: sha ?? "" }, shortSha(sha) || "–");
}

/** Brings every ticking text of the page up to `now`: ages, running durations, bake countdowns. */
export function tickTexts(root: ParentNode, now: number, waveOf: (id: string) => string | undefined): void {
  for (const node of root.querySelectorAll<HTMLElement>("[data-ago]")) node.textContent = ago(node.dataset.ago!, now);
  for (const node of root.querySelectorAll<HTMLElement>("[data-since]")) node.textContent = formatDuration(now - Date.parse(node.dataset.since!));
  for (const node of root.querySelectorAll<HTMLElement>("[data-wave]")) node.textContent = waveOf(node.dataset.wave!) ?? "";
}
