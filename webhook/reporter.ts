/**
 * Reporting back: every change of a deployment's served state goes to the
 * configured targets (webhook/report-targets.ts), once per deployment, state
 * and target, by the rollout driver only. The outbox is the history stream:
 * a delivery is recorded `pending` before it is tried (and again after each
 * failed try, with the reason), and `delivered` or `failed` once it ends, so
 * a webhook that restarts, or the replica that takes over driving, resumes
 * what has no end and never repeats what has one; a state reached just
 * before a crash, with no record yet, is reported at the takeover. Deliveries
 * run beside the driver, never in its way: nothing here is awaited by a
 * rollout, and a target that fails or hangs costs a deployment nothing.
 * Deliveries to one target for one deployment run one after another, in the
 * order of the states.
 */
import { randomUUID } from "node:crypto";
import { reportKey, type DeploymentRecord } from "../shared/deployments.ts";
import type { Logger } from "../shared/log.ts";
import { deploymentState, type Deployment, type DeploymentState } from "../shared/served.ts";
import { DEFAULT_POLICY, type RetryPolicy } from "./delivery.ts";
import type { Metrics } from "./metrics.ts";
import type { Recorder } from "./records.ts";
import { createOutbox, type Held } from "./report-outbox.ts";
import type { ReportTarget } from "./report-targets.ts";
import type { View } from "./view.ts";

export interface ReporterOptions {
  view: View;
  record: Recorder;
  targets: readonly ReportTarget[];
  /** Whether this process drives rollouts (webhook/driver.ts): only the driver reports. */
  driving: () => boolean;
  metrics: Metrics;
  log: Logger;
  /** Values cut out of every reason and log line (tokens, the notification secret, the URLs). */
  secrets: readonly string[];
  policy?: RetryPolicy;
  fetch?: typeof fetch;
  now?: () => number;
}

/** A deployment never reported that last moved longer ago than this is history from before reporting: left alone. */
const FRESH_MS = 3_600_000;
const TAKEOVER_POLL_MS = 500;
const RECORD_RETRY_MS = 5000;

export function createReporter(o: ReporterOptions) {
  const { view, log } = o;
  const now = o.now ?? Date.now;
  const targets = new Map(o.targets.map((t) => [t.name, t]));
  const last = new Map<string, DeploymentState>();
  // Deliveries this process holds: active while queued or tried, done until the history brings their end back.
  const held = new Map<string, "active" | "done">();
  // Per deployment and target: the last event queued here, and the chain of its deliveries.
  const lastQueued = new Map<string, string>();
  const chains = new Map<string, Promise<void>>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const stopping = new AbortController();
  let wasDriving = false;

  const mayGoOn = () => o.driving() && !stopping.signal.aborted;
  const outbox = createOutbox({ ...o, policy: o.policy ?? DEFAULT_POLICY, mayGoOn, stopping: stopping.signal, now });
  const { clean } = outbox;
  const pairOf = (h: { record: DeploymentRecord; target: ReportTarget }) => `${h.record.id} ${h.target.name}`;
  const keyOf = (id: string, target: string, event: string) => `${id} ${target} ${event}`;

  /** Runs `fn`; a bug in reporting is logged, never thrown into the view or a timer (it would end the webhook). */
  function guarded(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      log.error("reporting failed unexpectedly", { error: clean(String((error as Error).message)) });
    }
  }

  function later(fn: () => void, ms: number): void {
    const timer = setTimeout(() => {
      timers.delete(timer);
      guarded(fn);
    }, ms);
    timers.add(timer);
  }

  /** Runs `step` after the deliveries already queued for the same deployment and target. */
  function chain(pair: string, step: () => Promise<void>): void {
    const next = (chains.get(pair) ?? Promise.resolve()).then(step).catch((error) => log.error("report delivery failed unexpectedly", { pair, error: clean(String((error as Error).message)) }));
    chains.set(pair, next);
    void next.then(() => chains.get(pair) === next && chains.delete(pair));
  }

  /** Whether the state `event` has been, or is being, reported to `target`. */
  function known(record: DeploymentRecord, target: string, event: string): boolean {
    const key = keyOf(record.id, target, event);
    const entry = record.reports.get(reportKey(target, event));
    if (entry && entry.state !== "pending" && held.get(key) === "done") held.delete(key);
    return entry !== undefined || held.has(key);
  }

  /** The target's word for the last state reported to it: the same word twice in a row is reported once. */
  function lastWord(record: DeploymentRecord, target: ReportTarget): string | undefined {
    let event = lastQueued.get(`${record.id} ${target.name}`);
    if (event === undefined) for (const entry of record.reports.values()) if (entry.target === target.name) event = entry.event;
    return event === undefined ? undefined : target.word(record, event.slice("deployment.".length) as DeploymentState);
  }

  /** Reported already, or moved within the last hour: older deployments come from before reporting. */
  const inScope = (record: DeploymentRecord) => record.reports.size > 0 || now() - Math.max(record.lastAt, Date.parse(record.spec!.issuedAt)) < FRESH_MS;

  /** Queues the report of the deployment's current state to every target that has not had it. */
  function evaluate(record: DeploymentRecord): void {
    if (!mayGoOn() || !record.spec || !inScope(record)) return;
    const state = deploymentState(record);
    const event = `deployment.${state}`;
    let deployment: Deployment | undefined;
    for (const target of targets.values()) {
      const word = target.word(record, state);
      if (word === undefined || known(record, target.name, event) || lastWord(record, target) === word) continue;
      deployment ??= view.get(record.id);
      enqueue({ record, target, delivery: randomUUID(), event, state, since: new Date(now()).toISOString(), attempts: 0, deployment });
    }
  }

  /** Records the delivery pending, then tries it once the ones before it for this target are done. */
  function enqueue(h: Held): void {
    const key = keyOf(h.record.id, h.target.name, h.event);
    held.set(key, "active");
    lastQueued.set(pairOf(h), h.event);
    const written = outbox.write(h, { state: "pending", attempts: 0 });
    // Handled below, once the deliveries before it are done; until then a failed write must not count as unhandled.
    written.catch(() => {});
    chain(pairOf(h), async () => {
      try {
        await written;
      } catch (error) {
        held.delete(key);
        if (lastQueued.get(pairOf(h)) === h.event) lastQueued.delete(pairOf(h));
        log.warn("cannot record a report before trying it; trying again", { deployment: h.record.id, target: h.target.name, event: h.event, error: clean((error as Error).message) });
        later(() => evaluate(h.record), RECORD_RETRY_MS);
        return;
      }
      await deliver(h);
    });
  }

  /** The deliveries of `record` the history holds without an end: this process takes them on. */
  function resume(record: DeploymentRecord): void {
    for (const entry of record.reports.values()) {
      const target = targets.get(entry.target);
      const key = keyOf(record.id, entry.target, entry.event);
      if (entry.state !== "pending" || !target || held.has(key)) continue;
      held.set(key, "active");
      const state = entry.event.slice("deployment.".length) as DeploymentState;
      const h: Held = { record, target, delivery: entry.delivery, event: entry.event, state, since: entry.since, attempts: entry.attempts };
      chain(pairOf(h), () => deliver(h));
    }
  }

  /** Tries `h`; once it ended, it is done here until the history brings its end back. */
  async function deliver(h: Held): Promise<void> {
    const key = keyOf(h.record.id, h.target.name, h.event);
    if (await outbox.deliver(h)) held.set(key, "done");
    // Left pending in the history: the process that drives now takes it on.
    else held.delete(key);
  }

  /** Became the driver: take on the deliveries left pending, and report states nobody reported. */
  function takeOver(): void {
    log.info("reporting deployments", { targets: [...targets.keys()] });
    for (const record of view.all()) {
      if (!record.spec || !inScope(record)) continue;
      resume(record);
      evaluate(record);
    }
  }

  view.subscribe((message) => {
    if (message.kind !== "change") return;
    const record = view.record(message.id);
    if (!record?.spec) return;
    const state = deploymentState(record);
    if (last.get(record.id) === state) return;
    last.set(record.id, state);
    // Off the view's path: the driver and the SSE clients hear this change before any report is queued.
    if (mayGoOn()) queueMicrotask(() => guarded(() => evaluate(record)));
  });

  const poll = setInterval(() => {
    const driving = mayGoOn();
    if (driving && !wasDriving) guarded(takeOver);
    wasDriving = driving;
  }, TAKEOVER_POLL_MS);

  return {
    /** Stops trying: what is not delivered yet stays pending in the history for the next driver. */
    stop(): void {
      clearInterval(poll);
      for (const timer of timers) clearTimeout(timer);
      stopping.abort();
    },
  };
}
export type Reporter = ReturnType<typeof createReporter>;
