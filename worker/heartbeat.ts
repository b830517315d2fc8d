/**
 * The node's "I am here, at this commit" on `heartbeat.<nodeId>` of the
 * events exchange, every ARBEIDER_HEARTBEAT_SECONDS and right after every
 * command but a ping (whose outcome carries the commit already). Each says
 * whether tracked files were changed (`dirty`) and, with a health check
 * configured, the result of one probe made for it (`healthy`). From the first
 * stop signal on, every heartbeat says `stopping`, the first one at once.
 * Best effort: a heartbeat missed while the broker is away is simply the next one.
 */
import pkg from "../package.json" with { type: "json" };
import type { Broker } from "../shared/broker.ts";
import type { Logger } from "../shared/log.ts";
import { PROTOCOL_VERSION, heartbeatKey, names, type Heartbeat } from "../shared/protocol.ts";
import { hasLocalChanges, position } from "./git.ts";
import { PROBE_MS, hasHealthCheck, probe } from "./health.ts";
import type { Settings } from "./settings.ts";
import type { Position } from "./state.ts";

export const VERSION: string = pkg.version;

export interface Heartbeats {
  /** Sends one heartbeat now; `at` is where the checkout is, when the caller knows. */
  beat(at?: Position): Promise<void>;
  /** Sends a heartbeat saying the worker is stopping, at once, without a health probe; later ones say it too. */
  stopping(): Promise<void>;
  stop(): void;
}

/** Starts the periodic heartbeat of this node. */
export function startHeartbeats(options: { settings: Settings; log: Logger; broker: Broker; busy: () => boolean }): Heartbeats {
  const { settings, log, broker, busy } = options;
  const { ARBEIDER_NODE_ID: node, ARBEIDER_GROUPS: groups, ARBEIDER_FLEET: fleet, ARBEIDER_HEARTBEAT_SECONDS: period } = settings.env;
  // A beat waits for git and a probe half a period at most (a field whose answer is late is left out):
  // beats stay regular under load, and the webhook counts a node offline after three periods.
  const boundMs = Math.min(PROBE_MS, period * 500);
  let stopping = false;
  let periodicInFlight = false;

  /** One probe for this heartbeat, or undefined without a check (and while stopping: that heartbeat must not wait). */
  const healthy = async () => (hasHealthCheck(settings) && !stopping ? (await probe(settings, { deadline: Date.now() + boundMs })) === undefined : undefined);

  async function beat(known?: Position): Promise<void> {
    if (!broker.connected) return;
    const git = { deadline: Date.now() + boundMs };
    const [at, dirty, health] = await Promise.all([known ?? position(settings.repo, git), hasLocalChanges(settings.repo, git), healthy()]);
    const heartbeat: Heartbeat = {
      v: PROTOCOL_VERSION,
      node,
      groups,
      commit: at?.sha ?? null,
      branch: at?.branch ?? null,
      busy: busy(),
      version: VERSION,
      at: new Date().toISOString(),
      period,
      ...(dirty === undefined ? {} : { dirty }),
      ...(health === undefined ? {} : { healthy: health }),
      ...(stopping ? { stopping } : {}),
    };
    try {
      await broker.publish(names(fleet).events, heartbeatKey(node), new TextEncoder().encode(JSON.stringify(heartbeat)));
    } catch (error) {
      log.debug("heartbeat not sent", { error: (error as Error).message });
    }
  }

  // A periodic beat is skipped while the last one still probes: beats do not pile up behind a slow check.
  const timer = setInterval(() => {
    if (periodicInFlight) return;
    periodicInFlight = true;
    void beat().finally(() => (periodicInFlight = false));
  }, period * 1000);
  return {
    beat,
    stopping() {
      stopping = true;
      return beat();
    },
    stop: () => clearInterval(timer),
  };
}
