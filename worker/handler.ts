/**
 * What the worker does with each message of its queue, one at a time. Every
 * message is judged (verify.ts): a refused one is reported and acked at once,
 * a redelivered one whose outcome is recorded gets that outcome published
 * again, an update that a newer one queued behind it supersedes is skipped.
 * Anything else is reported `received` and `started`, executed, its outcome
 * recorded in the state file, published with a broker confirm, and only then
 * acked.
 */
import { backoffDelay, type Broker, type ConsumeMessage } from "../shared/broker.ts";
import type { Logger } from "../shared/log.ts";
import { PROTOCOL_VERSION, SIGNATURE_HEADER, eventKey, names, type Command, type Event } from "../shared/protocol.ts";
import { execute, type Outcome } from "./commands.ts";
import { position } from "./git.ts";
import { stampOf } from "./proc.ts";
import type { Settings } from "./settings.ts";
import type { Position, Store } from "./state.ts";
import { judgeMessage, newerUpdate, type Context, type Message } from "./verify.ts";

/** One message and a way to ack it on the channel it came from, if that channel still lives. */
export interface Delivery {
  message: ConsumeMessage;
  open(): boolean;
  ack(): void;
}

/** The messages delivered behind the one in hand, and a barrier after which all the broker sent so far are among them. */
export interface Behind {
  waiting(): readonly Delivery[];
  barrier(): Promise<boolean>;
}

export interface HandlerOptions {
  settings: Settings;
  log: Logger;
  store: Store;
  broker: Broker;
  /** Runs after every executed command but a ping (the heartbeat), with where the checkout is. */
  afterCommand: (at: Position | undefined) => void;
}

const OUTCOME_FIELDS = ["reason", "commitBefore", "commitAfter", "branch", "durationMs", "output"] as const;

function pickOutcome(outcome: Outcome): Partial<Event> {
  return Object.fromEntries(OUTCOME_FIELDS.filter((key) => outcome[key] !== undefined).map((key) => [key, outcome[key]]));
}

const messageOf = (message: ConsumeMessage): Message => ({
  body: message.content,
  signature: message.properties.headers?.[SIGNATURE_HEADER],
  redelivered: message.fields.redelivered,
});

export function createHandler(options: HandlerOptions) {
  const { settings, log, store, broker } = options;
  const { ARBEIDER_FLEET: fleet, ARBEIDER_NODE_ID: node, ARBEIDER_GROUPS: groups } = settings.env;
  const exchange = names(fleet).events;
  let busy = false;

  const context = (): Context => ({ keys: settings.keys, fleet, node, groups, state: store.state, now: Date.now() });

  function event(about: { deployment: string; id: string }, state: Event["state"], fields: Partial<Event> = {}): Event {
    return { v: PROTOCOL_VERSION, deployment: about.deployment, command: about.id, node, state, at: new Date().toISOString(), ...fields };
  }

  /** Publishes `event` and waits for the broker's confirm, retrying across reconnects until it is confirmed. */
  async function report(event: Event): Promise<void> {
    const body = new TextEncoder().encode(JSON.stringify(event));
    for (let attempt = 0; ; attempt++) {
      try {
        return await broker.publish(exchange, eventKey(event.deployment), body);
      } catch (error) {
        log.warn("event not confirmed yet; retrying", { deployment: event.deployment, state: event.state, error: (error as Error).message });
        await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, 200, 5000)));
        await broker.waitConnected(60_000);
      }
    }
  }

  async function run(command: Command, delivery: Delivery): Promise<void> {
    if (!delivery.open()) return log.info("channel closed before the command started; it comes again", { command: command.id });
    const about = { command: command.id, deployment: command.deployment, kind: command.command };
    // A ping has no steps and changes nothing: only its outcome is reported (and logged), its id is
    // recorded without a sync (a replayed ping is harmless), and no heartbeat follows it.
    const ping = command.command === "ping";
    if (!ping) log.info("command received", about);
    busy = true;
    let outcome: Outcome;
    try {
      // HEAD is read once. A command interrupted by a crash may have moved it halfway: until a command
      // that moves the checkout has finished since, the next one starts from where that one started
      // (the redelivered copy goes on from there; a newer update that superseded it starts there too).
      const unsettled = store.state.running?.from;
      const moves = command.command === "update" || command.command === "rollback";
      const from = moves && unsettled ? unsettled : await position(settings.repo);
      // received and started go out at once; their confirms are awaited with the outcome's, before the ack.
      const pending: Promise<void>[] = [];
      if (!ping) {
        pending.push(report(event(command, "received")));
        store.begin(command.id, unsettled ?? from);
        pending.push(report(event(command, "started")));
      }
      outcome = await execute(command, { settings, state: store.state, from, onSpawn: (pid) => store.spawned(stampOf(pid)) });
      const final = event(command, outcome.state, pickOutcome(outcome));
      // Recorded before it is published: a crash in between is answered by the replay path, not a second run.
      store.finish({ id: command.id, expiresAt: command.expiresAt, outcome: final, ...outcome.remember }, !ping);
      log.info("command finished", { ...about, state: final.state, reason: final.reason, durationMs: final.durationMs });
      await Promise.all([...pending, report(final)]);
      delivery.ack();
    } finally {
      busy = false;
    }
    if (!ping) options.afterCommand(outcome.at);
  }

  /** The newer update queued behind `command`, once every message the broker sent so far has arrived. */
  async function supersededBy(command: Command, behind: Behind): Promise<Command | undefined> {
    if (command.command !== "update" || !(await behind.barrier())) return undefined;
    return newerUpdate(command, behind.waiting().map((d) => messageOf(d.message)), context());
  }

  async function refuse(about: { deployment: string; id: string }, state: "rejected" | "skipped", reason: string): Promise<void> {
    log.warn(`command ${state}`, { command: about.id, deployment: about.deployment, reason });
    await report(event(about, state, { reason }));
  }

  async function handle(delivery: Delivery, behind: Behind): Promise<void> {
    const verdict = judgeMessage(messageOf(delivery.message), context());
    if (verdict.kind === "run") {
      const newer = await supersededBy(verdict.command, behind);
      if (!newer) return run(verdict.command, delivery);
      await refuse(verdict.command, "skipped", `superseded: update ${newer.id} (deployment ${newer.deployment}, issued ${newer.issuedAt}) waits behind it in the queue`);
    } else if (verdict.kind === "replay") {
      log.info("redelivered command was already executed; reporting its outcome again", { command: verdict.command.id });
      await report(verdict.outcome);
    } else {
      await refuse(verdict, verdict.state, verdict.reason);
    }
    delivery.ack();
  }

  return {
    handle,
    /** Whether a command is running now. */
    get busy() {
      return busy;
    },
  };
}
