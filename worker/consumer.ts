/**
 * The node's queue consumer: the canonical amqplib worker (durable queue,
 * `prefetch(1)`, manual ack after the work is done) plus arbeider's rules.
 * Every message is judged (verify.ts); a refused one is reported and acked at
 * once, a verified one is reported `received` and `started`, executed, its
 * outcome recorded in the state file, published with a broker confirm, and
 * only then acked. `setup` is what the broker module runs on every new
 * channel, so a reconnect re-creates the consumer exactly as it was.
 */
import { backoffDelay, type Broker, type ConfirmChannel, type ConsumeMessage } from "../shared/broker.ts";
import type { Logger } from "../shared/log.ts";
import { PROTOCOL_VERSION, SIGNATURE_HEADER, eventKey, names, type Command, type Event } from "../shared/protocol.ts";
import { declareNodeQueue } from "../shared/topology.ts";
import { execute, type Outcome } from "./commands.ts";
import { stampOf } from "./proc.ts";
import type { Settings } from "./settings.ts";
import type { Store } from "./state.ts";
import { judgeMessage } from "./verify.ts";


export interface Consumer {
  /** Declares the topology and starts consuming on `channel`. */
  setup(channel: ConfirmChannel): Promise<void>;
  /** Whether a command is running now. */
  readonly busy: boolean;
  /** Stops taking messages and resolves when the message in hand is done. */
  stop(): Promise<void>;
}

export interface ConsumerOptions {
  settings: Settings;
  log: Logger;
  store: Store;
  broker: Broker;
  /** Runs after every executed command (the heartbeat). */
  afterCommand: () => void;
  /** A failure that leaves the worker unable to go on (e.g. the state file cannot be written). */
  onFatal: (error: unknown) => void;
}

/** One message and a way to ack it on the channel it came from, if that channel still lives. */
interface Delivery {
  message: ConsumeMessage;
  open(): boolean;
  ack(): void;
}

const OUTCOME_FIELDS = ["reason", "commitBefore", "commitAfter", "branch", "durationMs", "output"] as const;

export function createConsumer(options: ConsumerOptions): Consumer {
  const { settings, log, store, broker } = options;
  const { ARBEIDER_FLEET: fleet, ARBEIDER_NODE_ID: node, ARBEIDER_GROUPS: groups } = settings.env;
  const exchange = names(fleet).events;
  // Messages are handled one after another, across channels too: after a
  // reconnect the redelivered copy of a running command waits for it.
  let chain = Promise.resolve();
  let busy = false;
  let stopping = false;
  let current: { channel: ConfirmChannel; tag: string } | undefined;

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
    log.info("command received", about);
    // A ping has no steps and changes nothing: only its outcome is reported, its id is
    // recorded without fsync (a replayed ping is harmless), and no heartbeat follows it.
    const ping = command.command === "ping";
    busy = true;
    try {
      // received and started go out at once; their confirms are awaited with the outcome's, before the ack.
      const pending: Promise<void>[] = [];
      if (!ping) {
        pending.push(report(event(command, "received")));
        store.update((s) => ({ ...s, running: { id: command.id } }));
        pending.push(report(event(command, "started")));
      }
      const outcome = await execute(command, {
        settings,
        state: store.state,
        onSpawn: (pid) => store.update((s) => ({ ...s, running: { id: command.id, group: stampOf(pid) } })),
      });
      const final = event(command, outcome.state, pickOutcome(outcome));
      // Recorded before it is published: a crash in between is answered by the replay path, not a second run.
      store.update((s) => ({
        ...s,
        ...outcome.remember,
        running: undefined,
        executed: { ...s.executed, [command.id]: { expiresAt: command.expiresAt, outcome: final } },
      }), !ping);
      log.info("command finished", { ...about, state: final.state, reason: final.reason, durationMs: final.durationMs });
      await Promise.all([...pending, report(final)]);
      delivery.ack();
    } finally {
      busy = false;
    }
    if (!ping) options.afterCommand();
  }

  async function handle(delivery: Delivery): Promise<void> {
    // While stopping, a message not yet started is left unacked: closing the channel puts it back.
    if (stopping) return;
    const { message } = delivery;
    const verdict = judgeMessage(
      { body: message.content, signature: message.properties.headers?.[SIGNATURE_HEADER], redelivered: message.fields.redelivered },
      { keys: settings.keys, fleet, node, groups, state: store.state, now: Date.now() },
    );
    if (verdict.kind === "run") return run(verdict.command, delivery);
    if (verdict.kind === "replay") {
      log.info("redelivered command was already executed; reporting its outcome again", { command: verdict.command.id });
      await report(verdict.outcome);
    } else {
      log.warn(`command ${verdict.state}`, { command: verdict.id, deployment: verdict.deployment, reason: verdict.reason });
      await report(event(verdict, verdict.state, { reason: verdict.reason }));
    }
    delivery.ack();
  }

  async function setup(channel: ConfirmChannel): Promise<void> {
    const queueType = settings.env.ARBEIDER_QUEUE_TYPE;
    const queue = await declareNodeQueue(channel, { fleet, node, groups, previousGroups: store.state.groups, queueType });
    if (store.state.groups.join() !== groups.join()) store.update((s) => ({ ...s, groups: [...groups] }));
    await channel.prefetch(1);
    let open = true;
    channel.on("close", () => (open = false));
    const delivery = (message: ConsumeMessage): Delivery => ({
      message,
      open: () => open,
      ack() {
        // A delivery tag belongs to its channel; once that is gone the broker redelivers the message instead.
        if (open) channel.ack(message);
        else log.warn("channel closed before the ack; the message comes again", { messageId: message.properties.messageId });
      },
    });
    const { consumerTag } = await channel.consume(queue, (message) => {
      if (message === null) {
        // The broker cancelled the consumer (queue deleted): a new channel declares it again.
        log.warn("broker cancelled the consumer; reconnecting", { queue });
        return void channel.close().catch(() => {});
      }
      chain = chain.then(() => handle(delivery(message))).catch(options.onFatal);
    });
    current = { channel, tag: consumerTag };
    log.info("consuming", { queue, groups });
  }

  return {
    setup,
    get busy() {
      return busy;
    },
    async stop() {
      stopping = true;
      if (current) await current.channel.cancel(current.tag).catch(() => {});
      await chain;
    },
  };
}

function pickOutcome(outcome: Outcome): Partial<Event> {
  return Object.fromEntries(OUTCOME_FIELDS.filter((key) => outcome[key] !== undefined).map((key) => [key, outcome[key]]));
}
