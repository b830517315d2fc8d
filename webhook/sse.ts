/**
 * `GET /api/events`: the view's changes as Server-Sent Events, serialised
 * once per change however many clients listen. Messages:
 *
 *   deployment   each event exactly as published (`created`, each node's `received`, ...)
 *   decision     each decision of the rollout driver (a wave started, a pause, an abort...)
 *   state        a snapshot of the deployment after it: its top-level fields and the
 *                nodes that changed (`full: true` and every node after `created`, or when
 *                a client asks for one deployment); merge it with shared/served.ts mergeSnapshot
 *   heartbeat    each node heartbeat
 *   node         a node's truth after a heartbeat or an outcome, as /api/nodes serves it
 *
 * `?deployment=ID` follows one deployment: its full snapshot first, then only its messages.
 */
import type { SSEMessage } from "hono/streaming";
import { snapshot } from "../shared/served.ts";
import type { View, ViewMessage } from "./view.ts";

interface Client {
  deployment?: string;
  write(text: string): void;
}

/** One SSE message as text. */
export const sseText = (m: SSEMessage) => `event: ${m.event}\ndata: ${m.data}\n\n`;

export function createSseHub(view: View, now: () => number = Date.now) {
  const clients = new Set<Client>();
  let all = 0;

  function deploymentOf(message: ViewMessage): string | undefined {
    if (message.kind === "change") return message.id;
    if (message.kind === "record") return message.record.kind === "event" ? message.record.event.deployment : message.record.decision.deployment;
    return undefined;
  }

  function render(message: ViewMessage): string | undefined {
    switch (message.kind) {
      case "record":
        return message.record.kind === "event"
          ? sseText({ event: "deployment", data: JSON.stringify(message.record.event) })
          : sseText({ event: "decision", data: JSON.stringify(message.record.decision) });
      case "change": {
        const record = view.record(message.id);
        const snap = record && snapshot(record, now(), message.nodes, message.full);
        return snap && sseText({ event: "state", data: JSON.stringify(snap) });
      }
      case "heartbeat":
        return sseText({ event: "heartbeat", data: JSON.stringify(message.heartbeat) });
      case "node": {
        const truth = view.node(message.node);
        return truth && sseText({ event: "node", data: JSON.stringify(truth) });
      }
    }
  }

  view.subscribe((message) => {
    if (clients.size === 0) return;
    const id = deploymentOf(message);
    // Messages about nodes go to clients of the whole fleet only; those clients may be none.
    if (id === undefined && all === 0) return;
    let text: string | undefined;
    for (const client of clients) {
      if (client.deployment !== undefined && client.deployment !== id) continue;
      text ??= render(message);
      if (text === undefined) return;
      client.write(text);
    }
  });

  return {
    /** Adds a client; returns its removal. A client of one deployment gets its full snapshot first. */
    add(client: Client): () => void {
      clients.add(client);
      if (client.deployment === undefined) all++;
      else {
        const record = view.record(client.deployment);
        const snap = record && snapshot(record, now(), [], true);
        if (snap) client.write(sseText({ event: "state", data: JSON.stringify(snap) }));
      }
      return () => {
        if (clients.delete(client) && client.deployment === undefined) all--;
      };
    },
  };
}
export type SseHub = ReturnType<typeof createSseHub>;
