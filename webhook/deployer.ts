/**
 * Turns "deploy this" into a signed command on the broker, exactly once per
 * deployment id: build the Command, sign its exact bytes, publish it to the
 * target's routing key and wait for the broker's confirm, then publish the
 * `created` event (the whole command as `spec`, plus `expected`) to the
 * history and wait again. Only then is the deployment created. Duplicates are
 * known from the view, which is rebuilt from history, so they survive
 * restarts; within one process a second request for an id in flight waits
 * for the first instead of publishing again. The command id is the
 * deployment id, so if the `created` event is lost after the command was
 * confirmed, the CI's retry publishes the same id again and the workers skip
 * it as one they already ran.
 */
import * as v from "valibot";
import { BrokerUnavailable } from "../shared/broker.ts";
import { signBody, type SigningKey } from "../shared/signing.ts";
import {
  Command,
  PROTOCOL_VERSION,
  SIGNATURE_HEADER,
  describeIssues,
  eventKey,
  names,
  routingKey,
  type Action,
  type Event,
} from "../shared/protocol.ts";
import { RequestError } from "./errors.ts";
import type { View } from "./view.ts";

/** The broker's confirmed publish (shared/broker.ts), or a recording of it in tests. */
export type Publish = (
  exchange: string,
  routingKey: string,
  body: Uint8Array,
  options?: { messageId?: string; headers?: Record<string, string> },
) => Promise<void>;

export interface DeployRequest {
  deployment: string;
  target: string;
  action: Action;
  source: { provider: Command["source"]["provider"] } & Record<string, string>;
}

export interface DeployResult {
  deployment: string;
  duplicate: boolean;
}

export interface DeployerOptions {
  fleet: string;
  ttlSeconds: number;
  signingKey: SigningKey;
  publish: Publish;
  view: View;
  /** False while the broker is down or the history is not read yet: then nothing is published. */
  connected: () => boolean;
  onPublished?: (command: Command) => void;
  now?: () => number;
}

export type Deploy = (request: DeployRequest) => Promise<DeployResult>;

/** The one function that publishes deployments. */
export function createDeployer(options: DeployerOptions): Deploy {
  const { fleet, view, connected } = options;
  const now = options.now ?? Date.now;
  const inFlight = new Map<string, Promise<unknown>>();
  const encoder = new TextEncoder();

  async function publishDeployment(request: DeployRequest): Promise<void> {
    const issued = now();
    const candidate = {
      v: PROTOCOL_VERSION,
      id: request.deployment,
      deployment: request.deployment,
      fleet,
      target: request.target,
      ...request.action,
      issuedAt: new Date(issued).toISOString(),
      expiresAt: new Date(issued + options.ttlSeconds * 1000).toISOString(),
      source: request.source,
    };
    const parsed = v.safeParse(Command, candidate);
    if (!parsed.success) throw new RequestError(400, describeIssues(parsed.issues));
    const command = parsed.output;
    const body = encoder.encode(JSON.stringify(command));
    const n = names(fleet);
    const expected = view.expectedFor(command.target);
    await options.publish(n.commands, routingKey(command.target), body, {
      messageId: command.id,
      headers: { [SIGNATURE_HEADER]: signBody(body, options.signingKey) },
    });
    options.onPublished?.(command);
    const created: Event = {
      v: PROTOCOL_VERSION,
      deployment: command.deployment,
      command: command.id,
      state: "created",
      at: command.issuedAt,
      spec: command,
      expected,
    };
    // Signed like the command: readers of the history trust only records the webhook's key signed.
    const record = encoder.encode(JSON.stringify(created));
    // The stream may bring the record back before the broker's confirm does: these exact
    // bytes are known to be ours, so the history reader need not verify their signature.
    view.publishing(command.deployment, record);
    try {
      await options.publish(n.events, eventKey(command.deployment), record, {
        headers: { [SIGNATURE_HEADER]: signBody(record, options.signingKey) },
      });
    } finally {
      view.publishing(command.deployment, undefined);
    }
    // The stream will bring this event back; folding it in now makes a retry a duplicate at once.
    view.apply(created);
  }

  return async function deploy(request) {
    const id = request.deployment;
    for (;;) {
      if (view.has(id)) return { deployment: id, duplicate: true };
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
