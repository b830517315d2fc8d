/**
 * Turns "deploy this" into a deployment, exactly once per deployment id. An
 * `update` is a rollout: its `created` record (the command as `spec`, the
 * expected nodes, the strategy and its waves) is written to the history and
 * confirmed, and the rollout driver (webhook/driver.ts) sends each wave's
 * commands from there. Any other command goes to its target at once: the
 * signed command is published and confirmed first, then its `created`
 * record; if that record is lost, the CI's retry publishes the same command
 * id again and the workers skip it as one they already ran. Duplicates are
 * known from the view (rebuilt from the history, so they survive restarts)
 * and, until the history brings a record back, from the ids this process
 * has just published; concurrent requests for one id publish once.
 */
import * as v from "valibot";
import { HTTPException } from "hono/http-exception";
import { BrokerUnavailable } from "../shared/broker.ts";
import { signBody, type SigningKey } from "../shared/signing.ts";
import { Command, PROTOCOL_VERSION, SIGNATURE_HEADER, describeIssues, names, routingKey, type Action, type Event } from "../shared/protocol.ts";
import { planWaves, rolloutOrder, type Strategy } from "../shared/strategy.ts";
import type { Publish, Recorder } from "./records.ts";
import type { View } from "./view.ts";

export interface DeployRequest {
  deployment: string;
  target: string;
  action: Action;
  source: { provider: Command["source"]["provider"] } & Record<string, string>;
  /** For an update: how it is rolled out. */
  strategy?: Strategy;
  /** When no online node matches the target: refuse (409, the API's default) or record it queued (CI). */
  whenNoNode: "refuse" | "queue";
}

export interface DeployResult {
  deployment: string;
  duplicate: boolean;
}

export type Deploy = (request: DeployRequest) => Promise<DeployResult>;

/** Signs commands and publishes them to their target's routing key, confirmed. */
export function createCommandSender(options: { signingKey: SigningKey; publish: Publish; fleet: string }) {
  const { commands } = names(options.fleet);
  return async function send(command: Command): Promise<void> {
    const body = new TextEncoder().encode(JSON.stringify(command));
    await options.publish(commands, routingKey(command.target), body, {
      messageId: command.id,
      headers: { [SIGNATURE_HEADER]: signBody(body, options.signingKey) },
    });
  };
}
export type CommandSender = ReturnType<typeof createCommandSender>;

export interface DeployerOptions {
  fleet: string;
  ttlSeconds: number;
  send: CommandSender;
  record: Recorder;
  view: View;
  /** False while the broker is down or the history is not read yet: then nothing is published. */
  connected: () => boolean;
  onPublished?: (command: Command) => void;
  now?: () => number;
}

/** The one function that creates deployments. */
export function createDeployer(options: DeployerOptions): Deploy {
  const { fleet, view, connected } = options;
  const now = options.now ?? Date.now;
  const inFlight = new Map<string, Promise<unknown>>();
  // Ids published by this process whose created record the history has not brought back yet.
  const published = new Set<string>();

  function commandOf(request: DeployRequest): Command {
    const issued = now();
    const parsed = v.safeParse(Command, {
      v: PROTOCOL_VERSION,
      id: request.deployment,
      deployment: request.deployment,
      fleet,
      target: request.target,
      ...request.action,
      issuedAt: new Date(issued).toISOString(),
      expiresAt: new Date(issued + options.ttlSeconds * 1000).toISOString(),
      source: request.source,
    });
    if (!parsed.success) throw new HTTPException(400, { message: describeIssues(parsed.issues) });
    return parsed.output;
  }

  async function publishDeployment(request: DeployRequest): Promise<void> {
    const command = commandOf(request);
    const online = view.expectedFor(command.target);
    if (online.length === 0 && request.whenNoNode === "refuse") {
      throw new HTTPException(409, { message: `target: no online node matches ${command.target} (see GET /api/nodes); send "allowEmpty": true to record it anyway` });
    }
    const expected = online.map((n) => n.node).sort();
    const created: Event = { v: PROTOCOL_VERSION, deployment: command.deployment, command: command.id, state: "created", at: command.issuedAt, spec: command, expected };
    if (expected.length === 0) created.reason = `no online node matches ${command.target}: its nodes converge to it when they come online`;
    if (command.command === "update") {
      created.strategy = request.strategy;
      created.waves = planWaves(request.strategy!, rolloutOrder(online));
    } else {
      await options.send(command);
      options.onPublished?.(command);
    }
    await options.record(created);
    published.add(command.deployment);
  }

  return async function deploy(request) {
    const id = request.deployment;
    for (const known of published) if (view.has(known)) published.delete(known);
    for (;;) {
      if (view.has(id) || published.has(id)) return { deployment: id, duplicate: true };
      const running = inFlight.get(id);
      if (!running) break;
      await running.catch(() => {});
    }
    if (!connected()) throw new BrokerUnavailable(`Cannot publish deployment "${id}": not connected to the broker`);
    // No await between the check above and this entry: concurrent requests for one id publish once.
    const attempt = publishDeployment(request);
    inFlight.set(id, attempt);
    try {
      await attempt;
      return { deployment: id, duplicate: false };
    } finally {
      inFlight.delete(id);
    }
  };
}
