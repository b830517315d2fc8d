/**
 * The rollout driver: the one webhook process (of any number of replicas)
 * that decides and dispatches rollouts, and sends catch-ups to nodes that
 * missed their update. It is elected by the broker: every webhook consumes a
 * single-active-consumer queue (`arbeider.<fleet>.driver`) into which every
 * webhook drops a tick every two seconds; RabbitMQ delivers them to one
 * consumer only, and the process that hears ticks drives. When it dies, the
 * broker makes another consumer active and it hears the next tick. Every
 * decision goes to the history first (shared/rollout.ts says which), then the
 * commands it names; a driver that takes over re-sends what nobody answered,
 * with the same command ids, which nodes run once.
 */
import { backoffDelay, type ConfirmChannel, type Connection } from "../shared/broker.ts";
import type { DeploymentRecord } from "../shared/deployments.ts";
import { catchUp, type Converge } from "../shared/fleet.ts";
import type { Logger } from "../shared/log.ts";
import { PROTOCOL_VERSION, names, type Command } from "../shared/protocol.ts";
import { commandId, type Decision } from "../shared/records.ts";
import { isOpenRollout, nextStep, presenceStep, resend, superseded, type Send, type Step } from "../shared/rollout.ts";
import type { CommandSender } from "./deployer.ts";
import type { Recorder } from "./records.ts";
import type { View } from "./view.ts";

export const TICK_MS = 2000;
/** A driver that heard no tick for this long is one no more. */
const LEASE_MS = 3 * TICK_MS;
/** How long a decision may take to come back through the history before it is looked at again. */
const ECHO_MS = 10_000;

export interface DriverOptions {
  fleet: string;
  view: View;
  record: Recorder;
  send: CommandSender;
  log: Logger;
  converge: Converge;
  queueType: string;
  now?: () => number;
}

/** The command a rollout sends one node, derived from the deployment's signed spec. */
export function nodeCommand(spec: Command, send: Send, now: number): Command {
  const lifetime = Date.parse(spec.expiresAt) - Date.parse(spec.issuedAt);
  const common = {
    v: PROTOCOL_VERSION,
    id: commandId(send.kind, spec.deployment, send.node, send.attempt),
    deployment: spec.deployment,
    fleet: spec.fleet,
    target: `node:${send.node}`,
    issuedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + lifetime).toISOString(),
    source: spec.source,
  };
  if (send.kind === "rollback") return { ...common, command: "rollback", args: { commit: send.commit } } as Command;
  return { ...common, command: spec.command, args: spec.args } as Command;
}

export function createDriver(options: DriverOptions) {
  const { view, log, fleet } = options;
  const now = options.now ?? Date.now;
  const queue = names(fleet).driver;
  let lastTick = 0;
  let driving = false;
  const pending = new Map<string, number>();
  // Rollouts whose supersede is recorded but not back from the history yet: a burst of newer ones supersedes each once.
  const superseding = new Map<string, number>();
  const waits = new Map<string, ReturnType<typeof setTimeout>>();
  const timers: ReturnType<typeof setInterval>[] = [];

  const isDriver = () => now() - lastTick < LEASE_MS;

  /** Records `decision`, then sends `sends`; the deployment is left alone until the history brings the decision back. */
  async function act(record: DeploymentRecord, decision: Decision, sends: readonly Send[]): Promise<void> {
    pending.set(record.id, now() + ECHO_MS);
    try {
      await options.record(decision);
    } catch (error) {
      pending.delete(record.id);
      log.warn("rollout decision not recorded; trying again", { deployment: record.id, decision: decision.decision, error: (error as Error).message });
      return schedule(record, now() + 1000);
    }
    const about = "node" in decision ? { node: decision.node } : {};
    const why = "reason" in decision ? { reason: decision.reason } : {};
    log.info("rollout decision", { deployment: record.id, decision: decision.decision, ...about, ...why, nodes: sends.map((s) => s.node) });
    await sendUntilConfirmed(record, sends);
  }

  /**
   * Sends a recorded decision's commands until the broker confirmed each one,
   * while this process drives (after that, the next driver sends again what
   * nobody answered). A copy sent again has the same id: a node runs it once.
   */
  async function sendUntilConfirmed(record: DeploymentRecord, sends: readonly Send[]): Promise<void> {
    let left = [...sends];
    for (let attempt = 0; left.length > 0 && driving; attempt++) {
      const at = now();
      const results = await Promise.allSettled(left.map((s) => options.send(nodeCommand(record.spec!, s, at))));
      const failed = results.map((r, i) => [r, left[i]] as const).filter(([r]) => r.status === "rejected");
      left = failed.map(([, s]) => s);
      if (left.length === 0) return;
      const error = (failed[0][0] as PromiseRejectedResult).reason as Error;
      log.warn("commands not confirmed; sending them again", { deployment: record.id, nodes: left.map((s) => s.node), error: error.message });
      await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, 1000, 10_000) + 200));
    }
  }

  function schedule(record: DeploymentRecord, at: number): void {
    clearTimeout(waits.get(record.id));
    waits.set(record.id, setTimeout(() => {
      waits.delete(record.id);
      evaluate(record);
    }, Math.max(0, at - now())));
  }

  function busy(record: DeploymentRecord): boolean {
    const until = pending.get(record.id);
    if (until === undefined) return false;
    if (now() < until) return true;
    pending.delete(record.id);
    return false;
  }

  function run(record: DeploymentRecord, step: Step): boolean {
    if (step.do === "wait") schedule(record, step.until);
    if (step.do !== "decide") return false;
    void act(record, step.decision, step.send);
    return true;
  }

  /** Looks at one deployment: what its nodes' presence means, then its next step. */
  function evaluate(record: DeploymentRecord, nodes: readonly string[] = []): void {
    if (!driving || busy(record) || !isOpenRollout(record, now())) return;
    for (const node of nodes) if (run(record, presenceStep(record, node, view.presence(node), now()))) return;
    run(record, nextStep(record, now()));
  }

  /** A new rollout first stops the older ones it overlaps (left alone until that is recorded), then starts. */
  function created(record: DeploymentRecord): void {
    if (!driving || busy(record)) return;
    const older = superseded(record, view.unfinished(), now()).filter((o) => !((superseding.get(o.id) ?? 0) > now()));
    if (older.length === 0) return evaluate(record);
    const at = new Date(now()).toISOString();
    for (const r of [record, ...older]) pending.set(r.id, now() + ECHO_MS);
    for (const o of older) superseding.set(o.id, now() + ECHO_MS);
    void Promise.all(older.map((o) => options.record({ v: PROTOCOL_VERSION, deployment: o.id, decision: "supersede", at, by: record.id })))
      .then(() => log.info("rollouts superseded", { by: record.id, deployments: older.map((o) => o.id) }))
      .catch((error) => {
        for (const o of older) superseding.delete(o.id);
        log.warn("cannot record a supersede", { deployment: record.id, error: (error as Error).message });
      })
      .finally(() => {
        pending.delete(record.id);
        evaluate(record);
      });
  }

  /** A node's heartbeat: what it means for the open rollouts it is in, and whether it needs a catch-up. */
  function onNode(node: string): void {
    if (!driving) return;
    for (const record of view.unfinished()) if (record.waveOf.has(node)) evaluate(record, [node]);
    const truth = view.node(node);
    const desired = view.desiredRecord(node);
    if (!truth?.online || !desired || busy(desired)) return;
    const self = { node, groups: truth.groups, commit: truth.commit, busy: truth.busy, dirty: truth.drift === "dirty" };
    const attempt = catchUp(self, desired, truth.drift, options.converge, now());
    if (attempt === undefined) return;
    const decision: Decision = { v: PROTOCOL_VERSION, deployment: desired.id, at: new Date(now()).toISOString(), decision: "catch-up", node, attempt, seen: truth.commit };
    void act(desired, decision, [{ node, kind: "catch-up", attempt }]);
  }

  /** Became the driver: send again what nobody answered, then look at every open rollout, newest first. */
  async function takeOver(): Promise<void> {
    log.info("driving rollouts", { queue });
    const open = view.unfinished().sort((a, b) => Date.parse(b.spec!.issuedAt) - Date.parse(a.spec!.issuedAt));
    for (const record of open) {
      const sends = resend(record, now());
      if (sends.length === 0) continue;
      log.info("sending unanswered commands again", { deployment: record.id, nodes: sends.map((s) => s.node) });
      void sendUntilConfirmed(record, sends);
    }
    for (const record of open) created(record);
    for (const node of view.nodes()) onNode(node.node);
  }

  view.subscribe((message) => {
    // A report record is not the echo of a rollout decision: it must not end the wait for one.
    if (message.kind === "record" && message.record.kind === "decision" && message.record.decision.decision !== "report") pending.delete(message.record.decision.deployment);
    if (message.kind === "change") {
      const record = view.record(message.id);
      if (!record) return;
      if (message.full) created(record);
      else evaluate(record, message.nodes);
    }
    if (message.kind === "node") onNode(message.node);
  });

  timers.push(setInterval(() => {
    const now = isDriver();
    if (now === driving) return;
    driving = now;
    if (now) void takeOver();
    else log.warn("no longer driving rollouts: another webhook does", { queue });
  }, 500));

  return {
    get driving() {
      return driving;
    },
    /** The broker setup part: the election queue, its consumer and the ticks. Runs on every (re)connect. */
    async setup(_channel: ConfirmChannel, connection: Connection): Promise<void> {
      const channel = await connection.createChannel();
      channel.on("error", () => {});
      const quorum = options.queueType === "quorum" ? { "x-queue-type": "quorum" } : {};
      await channel.assertQueue(queue, {
        durable: true,
        arguments: { "x-single-active-consumer": true, "x-message-ttl": LEASE_MS, "x-max-length": 20, "x-overflow": "drop-head", "x-expires": 86_400_000, ...quorum },
      });
      await channel.prefetch(20);
      await channel.consume(queue, (msg) => {
        if (!msg) return;
        lastTick = now();
        channel.ack(msg);
      });
      const tick = () => {
        try {
          channel.sendToQueue(queue, Buffer.from("{}"), { contentType: "application/json", expiration: String(LEASE_MS) });
        } catch {
          // The channel closed: the next connection ticks again.
        }
      };
      tick();
      const ticker = setInterval(tick, TICK_MS);
      connection.once("close", () => {
        clearInterval(ticker);
        lastTick = 0;
      });
    },
    stop(): void {
      for (const timer of timers) clearInterval(timer);
      for (const timer of waits.values()) clearTimeout(timer);
    },
  };
}
