/// <reference lib="dom" />
/**
 * Browser code of the dashboard, shipped as source text: the fleet's parts of
 * the page. The summary cards, the node table (each node's desired, running
 * and last good commit, drift, its condition in one word, last heartbeat,
 * busy) and the panel of rejected commands that name no deployment on the
 * page. The summary counts nodes by the same word the table shows, so "on
 * the latest" is the number of rows that say `on latest` (the webhook's
 * `latest`: last update and check succeeded at the desired commit).
 */
import { nodeCondition } from "../shared/format.ts";
import type { Deployment } from "../shared/served.ts";
import { agoTag, commitTag, el, stateTag, tone } from "./dashboard-dom.ts";
import type { NodeStatus, Rejection } from "./view.ts";

export function summaryCards(nodes: NodeStatus[], last: Deployment | undefined, rejected: number): HTMLElement {
  const words = nodes.map((n) => nodeCondition(n));
  const online = nodes.filter((n) => n.online).length;
  const latest = words.filter((word) => word === "on latest").length;
  const attention = words.filter((word) => tone(word) === "bad" || tone(word) === "warn").length;
  const all = nodes.length;
  const stat = (key: string, state: string, value: string, label: string) =>
    el("div", { class: `stat t-${tone(state)}`, "data-stat": key }, el("div", { class: "v" }, value), el("div", { class: "l" }, label));
  return el(
    "div",
    { class: "stats", id: "stats" },
    stat("online", all > 0 && online === all ? "online" : online > 0 ? "behind" : "offline", `${online} / ${all}`, "nodes online"),
    stat("latest", all > 0 && latest === all ? "on latest" : "behind", `${latest} / ${all}`, "on the latest"),
    stat("attention", attention > 0 ? "failed" : "succeeded", String(attention), "need attention"),
    rejected > 0 && stat("rejected", "rejected", String(rejected), "commands rejected"),
    last && stat("last", last.state, last.state.replace("_", " "), "last deployment"),
  );
}

export function nodeTable(nodes: NodeStatus[], now: number): HTMLElement {
  if (nodes.length === 0) return el("p", { class: "empty" }, "No node has sent a heartbeat yet.");
  const columns = ["Node", "Groups", "Desired", "Running", "Last good", "Drift", "State", "Last seen", "Busy"];
  return el(
    "table",
    { class: "fleet" },
    el("thead", {}, el("tr", {}, columns.map((name) => el("th", { scope: "col" }, name)))),
    el("tbody", {}, nodes.map((n) => nodeRow(n, now))),
  );
}

/** One node's row; on a narrow screen each cell shows its column's name (`data-label`). */
export function nodeRow(n: NodeStatus, now: number): HTMLElement {
  const condition = nodeCondition(n);
  const cell = (label: string, ...children: (Node | string | false | null | undefined)[]) => el("td", { "data-label": label }, ...children);
  const why = n.lastOutcome?.state === "failed" ? n.lastOutcome.reason : undefined;
  return el(
    "tr",
    { "data-node": n.node, "data-condition": condition, "data-online": n.online },
    cell("Node", el("strong", { class: "n" }, n.node)),
    cell("Groups", n.groups.length ? el("span", {}, n.groups.map((g) => el("span", { class: "group" }, g))) : "–"),
    cell("Desired", commitTag(n.desired)),
    cell("Running", commitTag(n.commit), n.branch && el("span", { class: "meta" }, ` ${n.branch}`)),
    cell("Last good", commitTag(n.lastGood)),
    cell("Drift", n.drift ?? "–"),
    cell("State", stateTag(condition), why && el("span", { class: "why" }, why)),
    cell("Last seen", agoTag(n.lastSeen, now)),
    cell("Busy", n.busy ? stateTag("running") : "idle"),
  );
}

/** Commands nodes refused that name no deployment shown on the page (forged ones name none at all). */
export function rejectionsPanel(rejections: Rejection[], now: number): HTMLElement | undefined {
  if (rejections.length === 0) return undefined;
  return el(
    "section",
    { id: "rejections" },
    el("h2", {}, `Rejected commands (${rejections.length})`),
    el(
      "ul",
      { class: "panel rejections" },
      rejections.map((r) =>
        el(
          "li",
          { "data-node": r.node, "data-deployment": r.deployment },
          stateTag("rejected"),
          " ",
          el("span", { class: "n" }, r.node),
          " refused ",
          el("span", { class: "mono" }, r.deployment),
          ": ",
          el("span", { class: "why" }, r.reason || "no reason given"),
          " · ",
          agoTag(r.at, now),
        ),
      ),
    ),
  );
}
