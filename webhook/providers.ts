/**
 * The CI providers, each one record: what enables its route, how it proves
 * who it is, which header names its event, and what a notification means, as
 * a pure function of its (already authenticated) payload and the
 * configuration: deploy this branch at this commit, ignore it and say why,
 * refuse it as another project's, or reject it as malformed, naming the field.
 * Each payload is a valibot schema of just the fields the decision reads.
 * Nothing else in the webhook knows a provider by its name; the HTTP side
 * is webhook/hooks.ts.
 */
import * as v from "valibot";
import { ConfigError } from "../shared/config.ts";
import type { BranchRule, WebhookEnv } from "../shared/config.ts";
import { COMMIT_PATTERN, describeIssues } from "../shared/protocol.ts";
import type { Strategy } from "../shared/strategy.ts";
import { githubSignatureValid, safeEqual } from "./secrets.ts";

export type Provider = "codeship" | "github" | "gitlab";

/** What a provider's door needs to see of a request. */
export interface HookRequest {
  query(name: string): string | undefined;
  header(name: string): string | undefined;
  body: Uint8Array;
}

/** One CI provider, all a door needs to know of it. */
export interface ProviderDoor {
  name: Provider;
  /** The variables that enable its route (for the 404's message), and whether they are set. */
  enabledBy: string;
  enabled(config: WebhookEnv): boolean;
  /** Whether the request proves it comes from the configured provider; `credential` names what is checked. */
  credential: string;
  authenticate(config: WebhookEnv, request: HookRequest): boolean;
  /** The header that names the event, when the provider sends one. */
  eventHeader?: string;
  decide(event: string, payload: unknown, rules: Rules): Decision;
}

export type Rules = Pick<
  WebhookEnv,
  "ARBEIDER_BRANCHES" | "CODESHIP_PROJECT_ID" | "GITHUB_REPOSITORY" | "GITHUB_WORKFLOWS" | "GITLAB_PROJECT_ID"
>;

/** Where a deployment came from: the provider and, as strings, build id, url, committer, message. */
export type Source = { provider: Provider } & Record<string, string>;

/** A decision about one notification. */
export type Decision =
  | { kind: "deploy"; deployment: string; branch: string; commit: string; target: string; strategy: Partial<Strategy>; source: Source }
  | { kind: "ignore"; reason: string }
  | { kind: "forbidden"; reason: string }
  | { kind: "invalid"; error: string };

/** Throws a ConfigError when only half of a provider's pair of variables is set: surely a mistake. */
export function checkProviderPairs(config: WebhookEnv): void {
  const pairs = [
    ["GITHUB_WEBHOOK_SECRET", "GITHUB_REPOSITORY", "GITHUB_TOKEN"],
    ["GITLAB_WEBHOOK_TOKEN", "GITLAB_PROJECT_ID", "GITLAB_API_TOKEN"],
  ] as const;
  for (const [a, b, reporting] of pairs) {
    // The repository or project alone is what reporting back to it needs: no hook route then.
    if (config[a] === undefined && config[reporting] !== undefined) continue;
    if ((config[a] === undefined) !== (config[b] === undefined)) {
      const missing = config[a] === undefined ? a : b;
      throw new ConfigError(missing, `is required when ${missing === a ? b : a} is set`);
    }
  }
}

const Id = v.union([
  v.pipe(v.number(), v.integer(), v.minValue(0)),
  v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,80}$/, "must be an id of letters, digits, - or _")),
]);
const Text = v.nullish(v.string());

const CodeshipPayload = v.object({
  build: v.object({
    build_id: Id,
    project_id: v.union([v.number(), v.string()]),
    status: v.string(),
    branch: v.string(),
    commit_id: v.string(),
    build_url: Text,
    committer: Text,
    message: Text,
  }),
});

/** Codeship calls at every step of a build; only `success` on a deploy branch deploys. */
export function decideCodeship(payload: unknown, rules: Rules): Decision {
  const parsed = v.safeParse(CodeshipPayload, payload);
  if (!parsed.success) return { kind: "invalid", error: describeIssues(parsed.issues) };
  const build = parsed.output.build;
  if (String(build.project_id) !== rules.CODESHIP_PROJECT_ID) return { kind: "forbidden", reason: "build.project_id is not the configured Codeship project" };
  if (build.status !== "success") return { kind: "ignore", reason: `build status is ${build.status}` };
  return deploy(rules, {
    deployment: `codeship-${build.build_id}`,
    branch: build.branch,
    commit: build.commit_id,
    commitField: "build.commit_id",
    source: { provider: "codeship", build: String(build.build_id), url: build.build_url, committer: build.committer, message: build.message },
  });
}

const GithubPayload = v.object({
  action: v.string(),
  workflow_run: v.object({
    id: v.pipe(v.number(), v.integer(), v.minValue(0)),
    run_attempt: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 1),
    name: Text,
    event: v.string(),
    head_branch: v.nullable(v.string()),
    head_sha: v.string(),
    conclusion: v.nullable(v.string()),
    html_url: Text,
    head_repository: v.nullish(v.object({ full_name: v.string() })),
    head_commit: v.nullish(v.object({ message: Text, author: v.nullish(v.object({ name: Text })) })),
    actor: v.nullish(v.object({ login: v.string() })),
  }),
  repository: v.object({ full_name: v.string() }),
});

/** Only a successful `workflow_run` of the configured repository's own branch deploys. */
export function decideGithub(event: string, payload: unknown, rules: Rules): Decision {
  if (event !== "workflow_run") return { kind: "ignore", reason: event === "ping" ? "ping" : `${event} events do not deploy` };
  const parsed = v.safeParse(GithubPayload, payload);
  if (!parsed.success) return { kind: "invalid", error: describeIssues(parsed.issues) };
  const { action, workflow_run: run, repository } = parsed.output;
  if (repository.full_name !== rules.GITHUB_REPOSITORY) return { kind: "forbidden", reason: "repository.full_name is not the configured repository" };
  if (action !== "completed") return { kind: "ignore", reason: `workflow_run action is ${action}` };
  if (run.conclusion !== "success") return { kind: "ignore", reason: `workflow_run conclusion is ${run.conclusion}` };
  if (run.event.startsWith("pull_request")) return { kind: "ignore", reason: "runs for pull requests do not deploy" };
  if (run.head_repository?.full_name !== repository.full_name) return { kind: "ignore", reason: "runs of code from a fork do not deploy" };
  if (rules.GITHUB_WORKFLOWS.length > 0 && !rules.GITHUB_WORKFLOWS.includes(run.name ?? "")) {
    return { kind: "ignore", reason: `workflow ${run.name} is not in GITHUB_WORKFLOWS` };
  }
  if (run.head_branch === null) return { kind: "ignore", reason: "workflow_run has no branch" };
  return deploy(rules, {
    deployment: `github-${run.id}-${run.run_attempt}`,
    branch: run.head_branch,
    commit: run.head_sha,
    commitField: "workflow_run.head_sha",
    source: {
      provider: "github",
      build: `${run.id}-${run.run_attempt}`,
      url: run.html_url,
      committer: run.head_commit?.author?.name ?? run.actor?.login,
      message: run.head_commit?.message,
      workflow: run.name,
    },
  });
}

const GitlabPayload = v.object({
  object_kind: v.string(),
  object_attributes: v.object({
    id: v.pipe(v.number(), v.integer(), v.minValue(0)),
    ref: v.string(),
    tag: v.boolean(),
    sha: v.string(),
    status: v.string(),
    source: Text,
    url: Text,
  }),
  merge_request: v.nullish(v.unknown()),
  project: v.object({ id: v.union([v.number(), v.string()]) }),
  user: v.nullish(v.object({ username: Text })),
  commit: v.nullish(v.object({ message: Text, author: v.nullish(v.object({ name: Text })) })),
});

/** Only a successful pipeline on a branch (not a tag, not a merge request) of the configured project deploys. */
export function decideGitlab(event: string, payload: unknown, rules: Rules): Decision {
  if (event !== "Pipeline Hook") return { kind: "ignore", reason: `${event} events do not deploy` };
  const parsed = v.safeParse(GitlabPayload, payload);
  if (!parsed.success) return { kind: "invalid", error: describeIssues(parsed.issues) };
  const { object_kind, object_attributes: pipeline, merge_request, project, user, commit } = parsed.output;
  if (String(project.id) !== rules.GITLAB_PROJECT_ID) return { kind: "forbidden", reason: "project.id is not the configured GitLab project" };
  if (object_kind !== "pipeline") return { kind: "ignore", reason: `object_kind is ${object_kind}` };
  if (pipeline.tag) return { kind: "ignore", reason: "tag pipelines do not deploy" };
  if (merge_request || pipeline.source === "merge_request_event") return { kind: "ignore", reason: "merge request pipelines do not deploy" };
  // GitLab CI for a GitHub repository runs pull requests (forks included) on their source branch's name.
  if (pipeline.source === "external_pull_request_event") return { kind: "ignore", reason: "external pull request pipelines do not deploy" };
  if (pipeline.status !== "success") return { kind: "ignore", reason: `pipeline status is ${pipeline.status}` };
  return deploy(rules, {
    deployment: `gitlab-${pipeline.id}`,
    branch: pipeline.ref,
    commit: pipeline.sha,
    commitField: "object_attributes.sha",
    source: {
      provider: "gitlab",
      build: String(pipeline.id),
      url: pipeline.url,
      committer: commit?.author?.name ?? user?.username,
      message: commit?.message,
    },
  });
}

/** The common tail: a deploy branch, a well-formed commit, strings-only source. */
function deploy(
  rules: Rules,
  run: { deployment: string; branch: string; commit: string; commitField: string; source: { provider: Provider } & Record<string, string | null | undefined> },
): Decision {
  const rule: BranchRule | undefined = rules.ARBEIDER_BRANCHES.get(run.branch);
  if (rule === undefined) return { kind: "ignore", reason: `branch ${run.branch} is not in ARBEIDER_BRANCHES` };
  if (!COMMIT_PATTERN.test(run.commit)) return { kind: "invalid", error: `${run.commitField}: must be 7 to 40 lowercase hex digits` };
  const { target, strategy } = rule;
  return { kind: "deploy", deployment: run.deployment, branch: run.branch, commit: run.commit, target, strategy, source: sourceStrings(run.source) };
}

/** Source values as the protocol wants them: strings, present, not too long. */
function sourceStrings(source: { provider: Provider } & Record<string, string | null | undefined>): Source {
  const out: Source = { provider: source.provider };
  for (const [key, value] of Object.entries(source)) {
    if (typeof value === "string" && value !== "") out[key] = value.length > 500 ? `${value.slice(0, 499)}…` : value;
  }
  return out;
}

/** Every provider's door, in the order their routes are listed. */
export const PROVIDERS: readonly ProviderDoor[] = [
  {
    name: "codeship",
    enabledBy: "CODESHIP_PROJECT_ID",
    enabled: (config) => config.CODESHIP_PROJECT_ID !== undefined,
    credential: "the api_key query parameter",
    authenticate: (config, request) => safeEqual(config.ARBEIDER_API_KEY, request.query("api_key")),
    decide: (_event, payload, rules) => decideCodeship(payload, rules),
  },
  {
    name: "github",
    enabledBy: "GITHUB_WEBHOOK_SECRET and GITHUB_REPOSITORY",
    enabled: (config) => config.GITHUB_WEBHOOK_SECRET !== undefined && config.GITHUB_REPOSITORY !== undefined,
    credential: "the X-Hub-Signature-256 header",
    authenticate: (config, request) => githubSignatureValid(config.GITHUB_WEBHOOK_SECRET!, request.body, request.header("x-hub-signature-256")),
    eventHeader: "X-GitHub-Event",
    decide: decideGithub,
  },
  {
    name: "gitlab",
    enabledBy: "GITLAB_WEBHOOK_TOKEN and GITLAB_PROJECT_ID",
    enabled: (config) => config.GITLAB_WEBHOOK_TOKEN !== undefined && config.GITLAB_PROJECT_ID !== undefined,
    credential: "the X-Gitlab-Token header",
    authenticate: (config, request) => safeEqual(config.GITLAB_WEBHOOK_TOKEN!, request.header("x-gitlab-token")),
    eventHeader: "X-Gitlab-Event",
    decide: decideGitlab,
  },
];
