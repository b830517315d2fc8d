/**
 * The node's "I am here, at this commit" on `heartbeat.<nodeId>` of the
 * events exchange, every ARBEIDER_HEARTBEAT_SECONDS and right after every
 * command but a ping (whose outcome carries the commit already). Best effort: a heartbeat missed while the broker is away is simply
 * the next one.
 */
import pkg from "../package.json" with { type: "json" };
import type { Broker } from "../shared/broker.ts";
import type { Logger } from "../shared/log.ts";
import { PROTOCOL_VERSION, heartbeatKey, names, type Heartbeat } from "../shared/protocol.ts";
import { currentBranch, headCommit } from "./git.ts";
import type { Settings } from "./settings.ts";

export const VERSION: string = pkg.version;

export interface Heartbeats {
  /** Sends one heartbeat now. */
  beat(): Promise<void>;
  stop(): void;
}

/** Starts the periodic heartbeat of this node. */
export function startHeartbeats(options: { settings: Settings; log: Logger; broker: Broker; busy: () => boolean }): Heartbeats {
  const { settings, log, broker, busy } = options;
  const { ARBEIDER_NODE_ID: node, ARBEIDER_GROUPS: groups, ARBEIDER_FLEET: fleet } = settings.env;

  async function beat(): Promise<void> {
    if (!broker.connected) return;
    const heartbeat: Heartbeat = {
      v: PROTOCOL_VERSION,
      node,
      groups,
      commit: (await headCommit(settings.repo)) ?? null,
      branch: (await currentBranch(settings.repo)) ?? null,
      busy: busy(),
      version: VERSION,
      at: new Date().toISOString(),
      periodSeconds: settings.env.ARBEIDER_HEARTBEAT_SECONDS,
    };
    try {
      await broker.publish(names(fleet).events, heartbeatKey(node), new TextEncoder().encode(JSON.stringify(heartbeat)));
    } catch (error) {
      log.debug("heartbeat not sent", { error: (error as Error).message });
    }
  }

  const timer = setInterval(() => void beat(), settings.env.ARBEIDER_HEARTBEAT_SECONDS * 1000);
  return { beat, stop: () => clearInterval(timer) };
}
