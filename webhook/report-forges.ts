/**
 * Reports to the CI providers' own APIs, for each `update` (it names a
 * commit): on GitHub a deployment on the commit with its statuses (queued,
 * in_progress, success, failure, inactive) and a commit status
 * `arbeider/<environment>`; on GitLab a commit status of the same name. Each
 * is a ReportTarget (webhook/report-targets.ts); the requests are the ones
 * GitHub's REST API (version 2022-11-28) and GitLab's API v4 document.
 */
import type { WebhookEnv } from "../shared/config.ts";
import type { DeploymentRecord } from "../shared/deployments.ts";
import { describeDeployment } from "../shared/format.ts";
import type { DeploymentState } from "../shared/served.ts";
import { clipText, dashboardLink, outcomeSummary } from "../shared/summary.ts";
import { DeliveryError, USER_AGENT, type Http } from "./delivery.ts";
import { commitOf, environmentOf, type ReportJob, type ReportTarget } from "./report-targets.ts";

type Words = Record<DeploymentState, string>;

/** GitHub deployment statuses: a superseded deployment is no longer what runs there. */
const DEPLOYMENT_WORDS: Words = {
  queued: "queued", running: "in_progress", paused: "in_progress", succeeded: "success", failed: "failure", rolled_back: "failure", superseded: "inactive",
};
/** GitHub commit statuses know pending, success, failure and error. */
const GITHUB_STATUS_WORDS: Words = {
  queued: "pending", running: "pending", paused: "pending", succeeded: "success", failed: "failure", rolled_back: "failure", superseded: "error",
};
/** GitLab commit statuses; GitLab refuses the same status twice in a row, which the reporter never sends. */
const GITLAB_WORDS: Words = {
  queued: "running", running: "running", paused: "running", succeeded: "success", failed: "failed", rolled_back: "failed", superseded: "canceled",
};

/** A target with one status word per state, for updates only (they name a commit); `send` gets the word. */
function statusTarget(name: string, words: Words, send: (job: ReportJob, http: Http, state: string) => Promise<unknown>): ReportTarget {
  const word = (record: DeploymentRecord, state: DeploymentState) => (commitOf(record) ? words[state] : undefined);
  return { name, word, send: async (job, http) => void (await send(job, http, words[job.state])) };
}

const post = (url: string, headers: Record<string, string>, body: unknown) => ({ method: "POST" as const, url, headers, body: JSON.stringify(body) });

/** The optional link field: only with ARBEIDER_PUBLIC_URL. */
const link = (config: WebhookEnv, job: ReportJob, field: string) => {
  const url = dashboardLink(config.ARBEIDER_PUBLIC_URL, job.deployment.id);
  return url ? { [field]: url } : {};
};

export function forgeTargets(config: WebhookEnv): ReportTarget[] {
  const out: ReportTarget[] = [];
  if (config.GITHUB_TOKEN && config.GITHUB_REPOSITORY) out.push(githubDeployment(config), githubCommitStatus(config));
  if (config.GITLAB_API_TOKEN && config.GITLAB_PROJECT_ID) out.push(gitlabCommitStatus(config));
  return out;
}

function githubHeaders(config: WebhookEnv): Record<string, string> {
  return {
    Authorization: `Bearer ${config.GITHUB_TOKEN}`,
    Accept: "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": USER_AGENT,
    "Content-Type": "application/json",
  };
}

const repoUrl = (config: WebhookEnv) => `${config.GITHUB_API_URL}/repos/${config.GITHUB_REPOSITORY}`;

/** A GitHub deployment, created with the first status reported, then one status per state. */
function githubDeployment(config: WebhookEnv): ReportTarget {
  const headers = githubHeaders(config);
  return statusTarget("github", DEPLOYMENT_WORDS, async (job, http, state) => {
    const id = job.remote ?? (await createGithubDeployment(config, job, http, headers));
    const body = { state, ...link(config, job, "log_url"), description: outcomeSummary(job.deployment) };
    return http(post(`${repoUrl(config)}/deployments/${encodeURIComponent(id)}/statuses`, headers, body));
  });
}

/** Creates the GitHub deployment of `job`'s commit; GitHub neither merges the default branch in nor waits for checks. */
async function createGithubDeployment(config: WebhookEnv, job: ReportJob, http: Http, headers: Record<string, string>): Promise<string> {
  const created = await http(post(`${repoUrl(config)}/deployments`, headers, {
    ref: commitOf(job.record),
    task: "deploy",
    auto_merge: false,
    required_contexts: [],
    payload: { arbeider: job.deployment.id },
    environment: environmentOf(config, job.record),
    description: clipText(describeDeployment(job.deployment), 140),
    transient_environment: false,
  }));
  const id = (created.body as { id?: unknown } | undefined)?.id;
  if (typeof id !== "number" && !(typeof id === "string" && /^\d{1,20}$/.test(id))) {
    throw new DeliveryError(`HTTP ${created.status}: the answer names no deployment id`, false);
  }
  await job.remember(String(id));
  return String(id);
}

/** A GitHub commit status, context `arbeider/<environment>`. */
function githubCommitStatus(config: WebhookEnv): ReportTarget {
  const headers = githubHeaders(config);
  return statusTarget("github-status", GITHUB_STATUS_WORDS, (job, http, state) => {
    const body = { state, ...link(config, job, "target_url"), description: outcomeSummary(job.deployment), context: `arbeider/${environmentOf(config, job.record)}` };
    return http(post(`${repoUrl(config)}/statuses/${commitOf(job.record)}`, headers, body));
  });
}

/** A GitLab commit status, name `arbeider/<environment>`. */
function gitlabCommitStatus(config: WebhookEnv): ReportTarget {
  const headers = { "PRIVATE-TOKEN": config.GITLAB_API_TOKEN!, Accept: "application/json", "User-Agent": USER_AGENT, "Content-Type": "application/json" };
  const project = `${config.GITLAB_URL}/api/v4/projects/${encodeURIComponent(config.GITLAB_PROJECT_ID!)}`;
  return statusTarget("gitlab", GITLAB_WORDS, (job, http, state) => {
    const { branch } = (job.record.spec as { args: { branch: string } }).args;
    const body = { state, ref: branch, name: `arbeider/${environmentOf(config, job.record)}`, ...link(config, job, "target_url"), description: outcomeSummary(job.deployment) };
    return http(post(`${project}/statuses/${commitOf(job.record)}`, headers, body));
  });
}
