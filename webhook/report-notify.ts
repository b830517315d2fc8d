/**
 * Reports to people and their tools, on every change of a deployment's
 * state: each URL of ARBEIDER_NOTIFY_URLS gets `POST` JSON
 * `{ type: "deployment.<state>", deployment, at }` with a delivery id and an
 * HMAC-SHA256 signature of the body under ARBEIDER_NOTIFY_SECRET (the same
 * `sha256=<hex>` form GitHub uses for its webhooks); a `slack+https://` URL
 * gets a Slack incoming-webhook message instead: `text` for notifications
 * and clients without blocks, `blocks` with the per-node summary.
 */
import type { WebhookEnv } from "../shared/config.ts";
import type { NodeReport } from "../shared/deployments.ts";
import { describeDeployment, shortSha } from "../shared/format.ts";
import type { Deployment, DeploymentState } from "../shared/served.ts";
import { clipText, dashboardLink, outcomeSummary } from "../shared/summary.ts";
import { USER_AGENT } from "./delivery.ts";
import type { ReportTarget } from "./report-targets.ts";
import { githubSignature } from "./secrets.ts";

export const DELIVERY_HEADER = "X-Arbeider-Delivery";
export const NOTIFY_SIGNATURE_HEADER = "X-Arbeider-Signature";

export function notifyTargets(config: WebhookEnv): ReportTarget[] {
  return config.ARBEIDER_NOTIFY_URLS.map(({ kind, url }, i) => (kind === "slack" ? slackTarget(config, url, i + 1) : notifyTarget(config, url, i + 1)));
}

/** Every state is a word of its own: each change is notified. */
const everyState = (_record: unknown, state: DeploymentState) => state;

function notifyTarget(config: WebhookEnv, url: string, n: number): ReportTarget {
  const secret = config.ARBEIDER_NOTIFY_SECRET!;
  return {
    name: `notify:${n}`,
    word: everyState,
    async send(job, http) {
      const body = JSON.stringify({ type: job.event, deployment: job.deployment, at: job.at });
      await http({
        method: "POST",
        url,
        headers: {
          "Content-Type": "application/json",
          "User-Agent": USER_AGENT,
          [DELIVERY_HEADER]: job.delivery,
          [NOTIFY_SIGNATURE_HEADER]: githubSignature(secret, new TextEncoder().encode(body)),
        },
        body,
      });
    },
  };
}

function slackTarget(config: WebhookEnv, url: string, n: number): ReportTarget {
  return {
    name: `slack:${n}`,
    word: everyState,
    async send(job, http) {
      const message = slackMessage(job.deployment, dashboardLink(config.ARBEIDER_PUBLIC_URL, job.deployment.id));
      await http({ method: "POST", url, headers: { "Content-Type": "application/json", "User-Agent": USER_AGENT }, body: JSON.stringify(message) });
    },
  };
}

const EMOJI: Record<DeploymentState, string> = {
  queued: ":hourglass_flowing_sand:", running: ":rocket:", paused: ":double_vertical_bar:", succeeded: ":white_check_mark:",
  failed: ":x:", rolled_back: ":leftwards_arrow_with_hook:", superseded: ":fast_forward:",
};
const MARKS: Record<string, string> = { succeeded: "✔", skipped: "↷", failed: "✘", rejected: "✘", missing: "?", unhealthy: "✘", received: "…", started: "▶" };
const ORDER: Record<string, number> = { failed: 0, rejected: 0, missing: 0, unhealthy: 0, started: 1, received: 1, waiting: 2, skipped: 3, succeeded: 4 };
const NODE_LINES = 15;

/** Text as Slack's mrkdwn reads it literally: its three control characters escaped, one line. */
export const slackEscape = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/[\u0000-\u001f]+/g, " ");

/** One node's line: mark, name, state, commit, reason. */
function nodeLine(node: string, report: NodeReport | undefined): string {
  const state = report?.state ?? "waiting";
  const commit = shortSha(report?.commitAfter ?? report?.commitBefore);
  const reason = report?.reason ? `: ${clipText(report.reason, 100)}` : "";
  return slackEscape(`${MARKS[state] ?? "·"} ${node} ${state}${commit ? ` ${commit}` : ""}${reason}`);
}

/** The per-node summary: the nodes that need a look first, at most NODE_LINES of them. */
function nodeLines(d: Deployment): string {
  const ids = [...new Set([...d.expected, ...Object.keys(d.nodes)])];
  const rank = (node: string) => ORDER[d.nodes[node]?.state ?? "waiting"] ?? 2;
  ids.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const lines = ids.slice(0, NODE_LINES).map((node) => nodeLine(node, d.nodes[node]));
  if (ids.length > NODE_LINES) lines.push(`… and ${ids.length - NODE_LINES} more`);
  return lines.join("\n");
}

/** The Slack message of `d` in its current state, linking to the dashboard when there is a link. */
export function slackMessage(d: Deployment, link?: string): { text: string; blocks: unknown[] } {
  const state = d.state.replace("_", " ");
  const what = describeDeployment(d);
  const summary = outcomeSummary(d, 300);
  const name = link ? `<${link}|${slackEscape(d.id)}>` : slackEscape(d.id);
  const blocks: unknown[] = [{ type: "section", text: { type: "mrkdwn", text: `${EMOJI[d.state]} *${state}*  ${name}\n${slackEscape(what)}` } }];
  const nodes = nodeLines(d);
  if (nodes) blocks.push({ type: "section", text: { type: "mrkdwn", text: nodes } });
  blocks.push({ type: "context", elements: [{ type: "mrkdwn", text: slackEscape(summary) }] });
  return { text: `${EMOJI[d.state]} ${slackEscape(`${d.id} ${state}: ${what}: ${summary}`)}${link ? ` <${link}|open>` : ""}`, blocks };
}
