/**
 * Where a deployment's states are reported (docs/reporting.md): each
 * target is one record, what word it has for a state (the GitHub deployment
 * status, the GitLab commit status...) and how one attempt sends it. The
 * configuration picks them: GitHub's deployment and commit status with
 * GITHUB_TOKEN, GitLab's commit status with GITLAB_API_TOKEN, and one per
 * URL of ARBEIDER_NOTIFY_URLS (`notify:<n>` or `slack:<n>`, n its place in
 * the list from 1). webhook/reporter.ts decides when; the requests are built
 * in webhook/report-forges.ts and webhook/report-notify.ts.
 */
import { ConfigError, type WebhookEnv } from "../shared/config.ts";
import type { DeploymentRecord } from "../shared/deployments.ts";
import type { Deployment, DeploymentState } from "../shared/served.ts";
import type { Http } from "./delivery.ts";
import { forgeTargets } from "./report-forges.ts";
import { notifyTargets } from "./report-notify.ts";

/** One delivery of one state to one target, as an attempt sees it. */
export interface ReportJob {
  /** The delivery's id, the same on every try and after a restart (`X-Arbeider-Delivery`). */
  delivery: string;
  /** `deployment.<state>` */
  event: string;
  state: DeploymentState;
  /** When the state change was recorded to be reported. */
  at: string;
  record: DeploymentRecord;
  /** As served when this process began the delivery: every try sends the same. */
  deployment: Deployment;
  /** What an earlier report to this target created (the GitHub deployment id). */
  remote?: string;
  /** Keeps what this attempt created, for its next tries and the reports after it. */
  remember(remote: string): Promise<void>;
}

export interface ReportTarget {
  /** `github`, `github-status`, `gitlab`, `notify:<n>`, `slack:<n>`: in records, metrics and the API. */
  name: string;
  /** The target's word for `state`, or undefined when it reports nothing of this deployment. A word is reported once in a row. */
  word(record: DeploymentRecord, state: DeploymentState): string | undefined;
  /** One attempt; `http` throws a DeliveryError on an answer that is not a success. */
  send(job: ReportJob, http: Http): Promise<void>;
}

/** The targets the configuration names, in a fixed order. */
export function reportTargets(config: WebhookEnv): ReportTarget[] {
  return [...forgeTargets(config), ...notifyTargets(config)];
}

/** Everything of the reporting configuration that must never be shown: tokens, the secret, the URLs. */
export function reportSecrets(config: WebhookEnv): string[] {
  const urls = config.ARBEIDER_NOTIFY_URLS.flatMap(({ url }) => {
    const parsed = new URL(url);
    return [url, `${parsed.pathname}${parsed.search}`.replace(/^\/$/, "")];
  });
  return [config.GITHUB_TOKEN, config.GITLAB_API_TOKEN, config.ARBEIDER_NOTIFY_SECRET, ...urls].filter((s): s is string => !!s);
}

/** Throws a ConfigError when a reporting variable lacks the one it needs. */
export function checkReportConfig(config: WebhookEnv): void {
  if (config.GITHUB_TOKEN !== undefined && config.GITHUB_REPOSITORY === undefined) {
    throw new ConfigError("GITHUB_REPOSITORY", "is required when GITHUB_TOKEN is set (owner/name of the repository to report to)");
  }
  if (config.GITLAB_API_TOKEN !== undefined && config.GITLAB_PROJECT_ID === undefined) {
    throw new ConfigError("GITLAB_PROJECT_ID", "is required when GITLAB_API_TOKEN is set (the project to report to)");
  }
  if (config.ARBEIDER_NOTIFY_URLS.some((n) => n.kind === "notify") && config.ARBEIDER_NOTIFY_SECRET === undefined) {
    throw new ConfigError("ARBEIDER_NOTIFY_SECRET", "is required when ARBEIDER_NOTIFY_URLS has a URL that is not slack+ (its bodies are signed with it)");
  }
}

/** The environment reported for a deployment: ARBEIDER_ENVIRONMENT, or its target. */
export function environmentOf(config: Pick<WebhookEnv, "ARBEIDER_ENVIRONMENT">, record: DeploymentRecord): string {
  return config.ARBEIDER_ENVIRONMENT ?? record.spec!.target;
}

/** The commit an update deploys, when it is one: what CI providers report on. */
export function commitOf(record: DeploymentRecord): string | undefined {
  return record.spec?.command === "update" ? record.spec.args.commit : undefined;
}
