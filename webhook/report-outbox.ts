/**
 * One report delivery and its records in the history, the outbox's write
 * side: the delivery is recorded `pending` (by webhook/reporter.ts, before
 * it is queued), again `pending` with the reason after each failed try and
 * with what a first request created (the GitHub deployment id), and
 * `delivered` or `failed` at its end. A delivery this process may no longer
 * make (it stopped driving, or is stopping) stays pending for the next
 * driver. Every reason and log line is stripped of the targets' secrets.
 */
import type { DeploymentRecord } from "../shared/deployments.ts";
import type { Logger } from "../shared/log.ts";
import { PROTOCOL_VERSION } from "../shared/protocol.ts";
import type { ReportDecision } from "../shared/records.ts";
import type { Deployment, DeploymentState } from "../shared/served.ts";
import { clipText } from "../shared/summary.ts";
import { createHttp, DeliveryError, redact, retryDelay, tryDelivering, type RetryPolicy, type TriesResult } from "./delivery.ts";
import type { Metrics } from "./metrics.ts";
import type { Recorder } from "./records.ts";
import type { ReportJob, ReportTarget } from "./report-targets.ts";
import type { View } from "./view.ts";

/** A delivery as this process holds it between tries. */
export interface Held {
  record: DeploymentRecord;
  target: ReportTarget;
  delivery: string;
  event: string;
  state: DeploymentState;
  since: string;
  attempts: number;
  /** As served when the state was reached; a delivery taken on after a restart reads it anew. */
  deployment?: Deployment;
}

export interface OutboxOptions {
  view: View;
  record: Recorder;
  metrics: Metrics;
  log: Logger;
  secrets: readonly string[];
  policy: RetryPolicy;
  /** Whether this process may go on trying: it drives, and is not stopping. */
  mayGoOn: () => boolean;
  /** Aborted when the webhook stops: waits between tries end at once. */
  stopping: AbortSignal;
  fetch?: typeof fetch;
  now: () => number;
}

const END_RECORD_TRIES = 5;

export function createOutbox(o: OutboxOptions) {
  const { log, metrics, policy } = o;
  const http = createHttp({ timeoutMs: policy.timeoutMs, fetch: o.fetch, now: o.now });
  // Per deployment and target: what the target created, known before the history brings it back.
  const remotes = new Map<string, string>();
  const pairOf = (h: Held) => `${h.record.id} ${h.target.name}`;
  const clean = (text: string) => clipText(redact(text, o.secrets), 500);
  const about = (h: Held) => ({ deployment: h.record.id, target: h.target.name, event: h.event });

  /** Writes a report record of `h`: confirmed by the broker when the promise resolves. */
  function write(h: Held, fields: Pick<ReportDecision, "state" | "attempts" | "remote" | "reason">): Promise<void> {
    const { reason, remote, ...rest } = fields;
    return o.record({
      v: PROTOCOL_VERSION, deployment: h.record.id, at: new Date(o.now()).toISOString(), decision: "report",
      delivery: h.delivery, target: h.target.name, event: h.event, ...rest, ...(remote ? { remote } : {}), ...(reason ? { reason: clean(reason) } : {}),
    });
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        o.stopping.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      o.stopping.addEventListener("abort", done, { once: true });
    });
  }

  function remoteOf(h: Held): string | undefined {
    const known = remotes.get(pairOf(h));
    if (known) return known;
    for (const entry of h.record.reports.values()) if (entry.target === h.target.name && entry.remote) return entry.remote;
    return undefined;
  }

  function jobOf(h: Held): ReportJob {
    const job: ReportJob = {
      delivery: h.delivery, event: h.event, state: h.state, at: h.since, record: h.record, deployment: h.deployment ?? o.view.get(h.record.id)!, remote: remoteOf(h),
      remember: async (remote) => {
        job.remote = remote;
        remotes.set(pairOf(h), remote);
        await write(h, { state: "pending", attempts: h.attempts, remote }).catch((error) => log.warn("cannot record what a report created", { ...about(h), error: clean((error as Error).message) }));
      },
    };
    return job;
  }

  /** Tries `h` until it ends or this process may no longer try; records how it ended. Resolves false when left pending. */
  async function deliver(h: Held): Promise<boolean> {
    const job = jobOf(h);
    const attempt = () =>
      h.target.send(job, http).catch((error) => {
        if (error instanceof DeliveryError && error.timedOut) metrics.report(h.target.name, "timed_out");
        throw error;
      });
    const result = await tryDelivering(attempt, {
      policy, made: h.attempts, mayGoOn: o.mayGoOn, sleep,
      onRetry: async (tries, error) => {
        h.attempts = tries;
        metrics.report(h.target.name, "retried");
        log.info("report not delivered yet; trying again", { ...about(h), tries, reason: clean(error.message) });
        await write(h, { state: "pending", attempts: tries, reason: error.message }).catch(() => {});
      },
    });
    if (result.outcome === "stopped") return false;
    metrics.report(h.target.name, result.outcome);
    if (result.outcome === "delivered") log.info("report delivered", { ...about(h), tries: result.tries });
    else log.warn("report given up", { ...about(h), tries: result.tries, reason: clean(result.reason ?? "") });
    await recordEnd(h, result);
    return true;
  }

  /** The end record; retried a few times, since without it the next driver would deliver again. */
  async function recordEnd(h: Held, result: TriesResult): Promise<void> {
    for (let i = 1; ; i++) {
      try {
        return await write(h, { state: result.outcome as "delivered" | "failed", attempts: result.tries, reason: result.reason });
      } catch (error) {
        if (i >= END_RECORD_TRIES || o.stopping.aborted) return log.warn("cannot record how a report ended", { ...about(h), error: clean((error as Error).message) });
        await sleep(retryDelay(i, policy));
      }
    }
  }

  return { write, deliver, clean };
}
export type Outbox = ReturnType<typeof createOutbox>;
