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
import { PROTOCOL_VERSION } from "../shared/protocol.ts";
import type { ReportDecision } from "../shared/records.ts";
import { deploymentState, type DeploymentState } from "../shared/served.ts";
import { clipText } from "../shared/summary.ts";
import { createHttp, DEFAULT_POLICY, DeliveryError, redact, retryDelay, tryDelivering, type RetryPolicy, type TriesResult } from "./delivery.ts";
import type { Metrics } from "./metrics.ts";
import type { Recorder } from "./records.ts";
import type { ReportJob, ReportTarget } from "./report-targets.ts";
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
const END_RECORD_TRIES = 5;

/** A delivery as the reporter holds it between tries. */
interface Held {
  record: DeploymentRecord;
  target: ReportTarget;
  delivery: string;
  event: string;
  state: DeploymentState;
  since: string;
  attempts: number;
}

export function createReporter(o: ReporterOptions) {
  const { view, log, metrics } = o;
  const now = o.now ?? Date.now;
  const policy = o.policy ?? DEFAULT_POLICY;
  const http = createHttp({ timeoutMs: policy.timeoutMs, fetch: o.fetch, now });
  const targets = new Map(o.targets.map((t) => [t.name, t]));
  const last = new Map<string, DeploymentState>();
  // Deliveries this process holds: active while queued or tried, done until the history brings their end back.
  const held = new Map<string, "active" | "done">();
  // Per deployment and target: the last event queued here, what the target created, the chain of deliveries.
  const lastQueued = new Map<string, string>();
  const remotes = new Map<string, string>();
  const chains = new Map<string, Promise<void>>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const stopping = new AbortController();
  let wasDriving = false;

  const mayGoOn = () => o.driving() && !stopping.signal.aborted;
  const pairOf = (h: { record: DeploymentRecord; target: ReportTarget }) => `${h.record.id} ${h.target.name}`;
  const keyOf = (id: string, target: string, event: string) => `${id} ${target} ${event}`;
  const clean = (text: string) => clipText(redact(text, o.secrets), 500);

  function write(h: Held, fields: Pick<ReportDecision, "state" | "attempts" | "remote" | "reason">): Promise<void> {
    const { reason, remote, ...rest } = fields;
    return o.record({
      v: PROTOCOL_VERSION, deployment: h.record.id, at: new Date(now()).toISOString(), decision: "report",
      delivery: h.delivery, target: h.target.name, event: h.event, ...rest, ...(remote ? { remote } : {}), ...(reason ? { reason: clean(reason) } : {}),
    });
  }

  function later(fn: () => void, ms: number): void {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stopping.signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      stopping.signal.addEventListener("abort", done, { once: true });
    });
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
    for (const target of targets.values()) {
      const word = target.word(record, state);
      if (word === undefined || known(record, target.name, event) || lastWord(record, target) === word) continue;
      enqueue({ record, target, delivery: randomUUID(), event, state, since: new Date(now()).toISOString(), attempts: 0 });
    }
  }

  /** Records the delivery pending, then tries it once the ones before it for this target are done. */
  function enqueue(h: Held): void {
    const key = keyOf(h.record.id, h.target.name, h.event);
    held.set(key, "active");
    lastQueued.set(pairOf(h), h.event);
    const written = write(h, { state: "pending", attempts: 0 });
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
      if (entry.remote) remotes.set(`${record.id} ${target.name}`, entry.remote);
      const h: Held = { record, target, delivery: entry.delivery, event: entry.event, state, since: entry.since, attempts: entry.attempts };
      chain(pairOf(h), () => deliver(h));
    }
  }

  function remoteOf(h: Held): string | undefined {
    const known = remotes.get(pairOf(h));
    if (known) return known;
    for (const entry of h.record.reports.values()) if (entry.target === h.target.name && entry.remote) return entry.remote;
    return undefined;
  }

  /** Tries one delivery until it ends or this process may no longer try, then records how it ended. */
  async function deliver(h: Held): Promise<void> {
    const key = keyOf(h.record.id, h.target.name, h.event);
    const job: ReportJob = {
      delivery: h.delivery, event: h.event, state: h.state, at: h.since, record: h.record, deployment: view.get(h.record.id)!, remote: remoteOf(h),
      remember: async (remote) => {
        job.remote = remote;
        remotes.set(pairOf(h), remote);
        await write(h, { state: "pending", attempts: h.attempts, remote }).catch((error) => log.warn("cannot record what a report created", { deployment: h.record.id, target: h.target.name, error: clean((error as Error).message) }));
      },
    };
    const attempt = () =>
      h.target.send(job, http).catch((error) => {
        if (error instanceof DeliveryError && error.timedOut) metrics.report(h.target.name, "timed_out");
        throw error;
      });
    const result = await tryDelivering(attempt, {
      policy, made: h.attempts, mayGoOn, sleep,
      onRetry: async (tries, error) => {
        h.attempts = tries;
        metrics.report(h.target.name, "retried");
        log.info("report not delivered yet; trying again", { deployment: h.record.id, target: h.target.name, event: h.event, tries, reason: clean(error.message) });
        await write(h, { state: "pending", attempts: tries, reason: error.message }).catch(() => {});
      },
    });
    if (result.outcome === "stopped") {
      // Left pending in the history: the process that drives now takes it on.
      held.delete(key);
      return;
    }
    metrics.report(h.target.name, result.outcome);
    const fields = { deployment: h.record.id, target: h.target.name, event: h.event, tries: result.tries };
    if (result.outcome === "delivered") log.info("report delivered", fields);
    else log.warn("report given up", { ...fields, reason: clean(result.reason ?? "") });
    held.set(key, "done");
    await recordEnd(h, result);
  }

  /** The end record; retried a few times, since without it the next driver would deliver again. */
  async function recordEnd(h: Held, result: TriesResult): Promise<void> {
    for (let i = 1; ; i++) {
      try {
        return await write(h, { state: result.outcome as "delivered" | "failed", attempts: result.tries, reason: result.reason });
      } catch (error) {
        if (i >= END_RECORD_TRIES || stopping.signal.aborted) {
          return log.warn("cannot record how a report ended", { deployment: h.record.id, target: h.target.name, event: h.event, error: clean((error as Error).message) });
        }
        await sleep(retryDelay(i, policy));
      }
    }
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
    if (mayGoOn()) queueMicrotask(() => evaluate(record));
  });

  const poll = setInterval(() => {
    const driving = mayGoOn();
    if (driving && !wasDriving) takeOver();
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
