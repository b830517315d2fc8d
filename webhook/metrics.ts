/**
 * `/metrics` in the Prometheus text format. Counters of what this process
 * saw (webhooks by provider and outcome, commands published, HTTP requests by
 * route and status) live here; the deployment counters and the duration
 * histogram come from the view's stats (webhook/stats.ts: each deployment
 * counted once when first seen finished, rebuilt the same from the history at
 * a restart), the per-node gauges from the view's nodes.
 */
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import pkg from "../package.json" with { type: "json" };
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

export type Metrics = ReturnType<typeof createMetrics>;

const bump = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);

/** A label value as the text format wants it: backslash, quote and newline escaped. */
const label = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

const RUNTIME = (globalThis as { Bun?: unknown }).Bun ? "bun" : (globalThis as { Deno?: unknown }).Deno ? "deno" : "node";

export function createMetrics() {
  const webhooks = new Map<string, number>();
  const published = new Map<string, number>();
  const requests = new Map<string, number>();
  const reports = new Map<string, number>();

  return {
    webhook(provider: string, outcome: WebhookOutcome): void {
      bump(webhooks, `${provider}\u0000${outcome}`);
    },
    published(command: string): void {
      bump(published, command);
    },
    /** A delivery of a report (GitHub, GitLab, a notification URL) ended so. */
    report(target: string, outcome: string): void {
      bump(reports, `${target}\u0000${outcome}`);
    },
    /** Counts every request by its route pattern (never its raw path: ids would make endless series) and status. */
    requests(): MiddlewareHandler {
      return async (c, next) => {
        await next();
        const route = routePath(c);
        bump(requests, `${c.req.method}\u0000${route === "*" || route === "/*" || !route ? "unmatched" : route}\u0000${c.res.status}`);
      };
    },
    /** The whole exposition, one scrape. */
    render(view: View, connected: boolean): string {
      const out: string[] = [];
      const counter = (name: string, help: string, map: Map<string, number>, labels: string[]) => {
        family(out, name, "counter", help);
        for (const [key, count] of map) out.push(`${name}{${key.split("\u0000").map((value, i) => `${labels[i]}="${label(value)}"`).join(",")}} ${count}`);
      };
      family(out, "arbeider_build_info", "gauge", "The running version and runtime.");
      out.push(`arbeider_build_info{version="${label(pkg.version)}",runtime="${RUNTIME}"} 1`);
      counter("arbeider_webhooks_total", "CI webhook requests by provider and outcome.", webhooks, ["provider", "outcome"]);
      counter("arbeider_commands_published_total", "Commands this process published and the broker confirmed.", published, ["command"]);
      counter("arbeider_http_requests_total", "HTTP requests by method, route and status.", requests, ["method", "route", "status"]);
      counter("arbeider_reports_total", "Deliveries of reports to CI providers and notification URLs, by target and outcome.", reports, ["target", "outcome"]);
      const stats = view.stats;
      counter("arbeider_deployments_total", "Deployments that reached a final state, by command and state.", stats.deployments(), ["command", "state"]);
      counter("arbeider_node_outcomes_total", "Node outcomes of commands, by state.", stats.outcomes(), ["state"]);
      counter("arbeider_commands_rejected_total", "Commands nodes refused (forged, changed, expired, for another target), by reason.", stats.rejections(), ["reason"]);
      nodeGauges(out, view);
      family(out, "arbeider_broker_connected", "gauge", "1 while connected to the broker with the history read.");
      out.push(`arbeider_broker_connected ${connected ? 1 : 0}`);
      histogram(out, view);
      return `${out.join("\n")}\n`;
    },
  };
}

function family(out: string[], name: string, type: string, help: string): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
}

function nodeGauges(out: string[], view: View): void {
  const nodes = view.nodes();
  family(out, "arbeider_nodes_online", "gauge", "Nodes whose heartbeat is recent.");
  out.push(`arbeider_nodes_online ${nodes.filter((n) => n.online).length}`);
  family(out, "arbeider_nodes_known", "gauge", "Nodes that sent a heartbeat in the last hour or since this process started.");
  out.push(`arbeider_nodes_known ${nodes.length}`);
  const perNode = (name: string, help: string, value: (n: (typeof nodes)[number]) => number) => {
    family(out, name, "gauge", help);
    for (const n of nodes) out.push(`${name}{node="${label(n.node)}"} ${value(n)}`);
  };
  perNode("arbeider_node_up", "1 while the node's heartbeats come.", (n) => (n.online ? 1 : 0));
  perNode("arbeider_node_last_heartbeat_timestamp_seconds", "When the node's last heartbeat came.", (n) => Date.parse(n.lastSeen) / 1000);
  perNode("arbeider_node_drift", "1 while the node is not at its desired commit or its checkout was changed by other hands.", (n) => (n.drift ? 1 : 0));
}

function histogram(out: string[], view: View): void {
  const name = "arbeider_deployment_duration_seconds";
  family(out, name, "histogram", "Seconds from a deployment's creation to its end, observed once per deployment.");
  const { buckets, count, sum } = view.stats.histogram();
  for (const [le, n] of buckets) out.push(`${name}_bucket{le="${le}"} ${n}`);
  out.push(`${name}_bucket{le="+Inf"} ${count}`, `${name}_sum ${sum}`, `${name}_count ${count}`);
}
