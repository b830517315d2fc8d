/**
 * `/metrics` in the Prometheus text format. Counters of what this process saw
 * (webhooks by provider and outcome, commands published) live here; the
 * deployment and node figures are computed from the view at scrape time, so
 * every replica reports the same fleet-wide numbers.
 */
import type { Deployment } from "../shared/deployments.ts";
import type { View } from "./view.ts";

export type WebhookOutcome =
  | "deployed"
  | "duplicate"
  | "ignored"
  | "unauthorized"
  | "forbidden"
  | "invalid"
  | "too_large"
  | "unsupported"
  | "unavailable";

const DURATION_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

export type Metrics = ReturnType<typeof createMetrics>;

export function createMetrics() {
  const webhooks = new Map<string, number>();
  const published = new Map<string, number>();
  const bump = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);

  return {
    webhook(provider: string, outcome: WebhookOutcome): void {
      bump(webhooks, `${provider}\u0000${outcome}`);
    },
    published(command: string): void {
      bump(published, command);
    },
    /** The whole exposition, one scrape. */
    render(view: View, connected: boolean): string {
      const deployments = view.list(Number.MAX_SAFE_INTEGER);
      const nodes = view.nodes();
      const out: string[] = [];
      family(out, "arbeider_webhooks_total", "counter", "CI webhook requests by provider and outcome.");
      for (const [key, count] of webhooks) {
        const [provider, outcome] = key.split("\u0000");
        out.push(`arbeider_webhooks_total{provider="${provider}",outcome="${outcome}"} ${count}`);
      }
      family(out, "arbeider_commands_published_total", "counter", "Commands this process published and the broker confirmed.");
      for (const [command, count] of published) out.push(`arbeider_commands_published_total{command="${command}"} ${count}`);
      family(out, "arbeider_deployments", "gauge", "Deployments in the history by state.");
      for (const state of ["queued", "running", "succeeded", "failed"]) {
        out.push(`arbeider_deployments{state="${state}"} ${deployments.filter((d) => d.state === state).length}`);
      }
      family(out, "arbeider_node_outcomes", "gauge", "Node reports in the history by their latest state.");
      for (const [state, count] of countNodeStates(deployments)) out.push(`arbeider_node_outcomes{state="${state}"} ${count}`);
      family(out, "arbeider_nodes_online", "gauge", "Nodes whose heartbeat is recent.");
      out.push(`arbeider_nodes_online ${nodes.filter((n) => n.online).length}`);
      family(out, "arbeider_nodes_known", "gauge", "Nodes that sent a heartbeat since this process started.");
      out.push(`arbeider_nodes_known ${nodes.length}`);
      family(out, "arbeider_broker_connected", "gauge", "1 while connected to the broker with the history read.");
      out.push(`arbeider_broker_connected ${connected ? 1 : 0}`);
      durationHistogram(out, deployments);
      return `${out.join("\n")}\n`;
    },
  };
}

function family(out: string[], name: string, type: string, help: string): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
}

function countNodeStates(deployments: Deployment[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const d of deployments) for (const report of Object.values(d.nodes)) counts.set(report.state, (counts.get(report.state) ?? 0) + 1);
  return counts;
}

function durationHistogram(out: string[], deployments: Deployment[]): void {
  const name = "arbeider_deployment_duration_seconds";
  family(out, name, "histogram", "Seconds from a deployment's creation to its last node outcome.");
  const seconds = deployments
    .filter((d) => d.finishedAt !== undefined)
    .map((d) => Math.max(0, (Date.parse(d.finishedAt!) - Date.parse(d.createdAt)) / 1000));
  for (const le of DURATION_BUCKETS) out.push(`${name}_bucket{le="${le}"} ${seconds.filter((s) => s <= le).length}`);
  out.push(`${name}_bucket{le="+Inf"} ${seconds.length}`);
  out.push(`${name}_sum ${seconds.reduce((a, b) => a + b, 0)}`);
  out.push(`${name}_count ${seconds.length}`);
}
