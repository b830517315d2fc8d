/**
 * The tables of `deploy.ts status` (recent deployments) and `deploy.ts nodes`
 * (each node's desired, running and last good commit, drift, and its
 * condition in the dashboard's words), as pure functions of the API's answers.
 */
import { ago, describeDeployment, durationOf, formatDuration, nodeCondition, shortSha } from "../../shared/format.ts";
import type { Deployment } from "../../shared/served.ts";
import type { NodeStatus } from "../../webhook/view.ts";
import { printable, table } from "./terminal.ts";

export type { NodeStatus };

export function deploymentsTable(list: Deployment[], now: number): string[] {
  return table(
    ["ID", "WHAT", "STATE", "NODES", "CREATED", "DURATION"],
    list.map((d) => {
      const good = (d.counts.succeeded ?? 0) + (d.counts.skipped ?? 0);
      const duration = formatDuration(durationOf(d, now));
      return [d.id, describeDeployment(d), d.state, `${good}/${d.expected.length}`, ago(d.createdAt, now), d.finishedAt ? duration : `${duration}…`];
    }),
  );
}

export function nodesTable(list: NodeStatus[], now: number): string[] {
  return table(
    ["NODE", "GROUPS", "DESIRED", "COMMIT", "LAST GOOD", "DRIFT", "STATE", "BUSY", "LAST SEEN"],
    list.map((n) => [
      n.node,
      n.groups.join(",") || "-",
      shortSha(n.desired) || "-",
      shortSha(n.commit) || "-",
      shortSha(n.lastGood) || "-",
      n.drift ?? "-",
      nodeCondition(n),
      n.busy ? "yes" : "no",
      ago(n.lastSeen, now),
    ]),
  );
}

/** Under the table: why each node whose last update failed failed, in which deployment. */
export function nodeNotes(list: NodeStatus[]): string[] {
  return list
    .filter((n) => n.lastOutcome?.state === "failed")
    .map((n) => printable(`${n.node}: its last update failed (${n.lastOutcome!.deployment})${n.lastOutcome!.reason ? `: ${n.lastOutcome!.reason}` : ""}`));
}
