/**
 * The pure halves of the CI doors: each provider's decision (deploy, ignore,
 * forbidden, invalid) from a payload and the configuration, and the secret
 * checks, including GitHub's published HMAC test vector.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, loadConfig, WebhookEnv } from "../shared/config.ts";
import { checkProviderPairs, decideCodeship, decideGithub, decideGitlab, type Decision, type Rules } from "../webhook/providers.ts";
import { githubSignature, githubSignatureValid, safeEqual } from "../webhook/secrets.ts";

const FIXTURES = join(import.meta.dir, "fixtures", "webhooks");
const fixture = (name: string) => JSON.parse(readFileSync(join(FIXTURES, name), "utf8"));

const rules: Rules = {
  ARBEIDER_BRANCHES: new Map([
    ["master", { target: "all", strategy: {} }],
    ["main", { target: "all", strategy: { waves: [1, "100%"] } }],
    ["staging", { target: "group:staging", strategy: {} }],
    ["canary", { target: "node:web-1", strategy: {} }],
  ]),
  CODESHIP_PROJECT_ID: "412345",
  GITHUB_REPOSITORY: "acme/shop",
  GITHUB_WORKFLOWS: [],
  GITLAB_PROJECT_ID: "2231",
};

/** A deep copy of a fixture with `change` applied. */
function variant(name: string, change: (payload: any) => void): unknown {
  const payload = fixture(name);
  change(payload);
  return payload;
}

const kind = (decision: Decision) => decision.kind;

type Row = [name: string, event: string, payload: unknown, expected: Decision["kind"], fields?: Partial<Decision>];

/** One test per row: the decision's kind, and its fields where the row names some. */
function table(decide: (event: string, payload: unknown) => Decision, rows: Row[]): void {
  for (const [name, event, payload, expected, fields] of rows) {
    test(name, () => {
      const decision = decide(event, payload);
      expect(kind(decision)).toBe(expected);
      if (fields) expect(decision).toMatchObject(fields);
    });
  }
}

describe("Codeship decisions", () => {
  table((_event, payload) => decideCodeship(payload, rules), [
    ["success on master deploys commit_id to all", "-", fixture("codeship-success-master.json"), "deploy", {
      deployment: "codeship-70811234", branch: "master", commit: "39cf93573039b61c6177ef04beaa5faf0a3fdfd7", target: "all",
    } as Partial<Decision>],
    ["initiated is normal traffic", "-", fixture("codeship-initiated-master.json"), "ignore"],
    ["legacy testing is normal traffic", "-", fixture("codeship-testing-master.json"), "ignore"],
    ["error does not deploy", "-", fixture("codeship-error-master.json"), "ignore"],
    ["stopped does not deploy", "-", variant("codeship-success-master.json", (p) => (p.build.status = "stopped")), "ignore"],
    ["a branch not in ARBEIDER_BRANCHES does not deploy", "-", fixture("codeship-success-feature-branch.json"), "ignore"],
    ["staging goes to its group", "-", variant("codeship-success-master.json", (p) => (p.build.branch = "staging")), "deploy", { target: "group:staging" } as Partial<Decision>],
    ["canary goes to its node", "-", variant("codeship-success-master.json", (p) => (p.build.branch = "canary")), "deploy", { target: "node:web-1" } as Partial<Decision>],
    ["another project is forbidden", "-", variant("codeship-success-master.json", (p) => (p.build.project_id = 999)), "forbidden"],
    ["a missing commit_id is invalid", "-", variant("codeship-success-master.json", (p) => delete p.build.commit_id), "invalid", { error: "build.commit_id: Invalid key: Expected \"commit_id\" but received undefined" } as Partial<Decision>],
    ["the short commit id is not enough", "-", variant("codeship-success-master.json", (p) => (p.build.commit_id = "39cf9")), "invalid"],
    ["no build object is invalid", "-", { status: "success" }, "invalid"],
  ]);

  test("the source names the build, its url, committer and message, as strings", () => {
    const decision = decideCodeship(fixture("codeship-success-master.json"), rules);
    expect(decision).toMatchObject({
      source: {
        provider: "codeship",
        build: "70811234",
        url: "https://app.codeship.com/projects/412345/builds/70811234",
        committer: "mlindqvist",
        message: "Add coupon validation to checkout",
      },
    });
  });
});

describe("GitHub decisions", () => {
  const success = "github-workflow_run-success.json";
  table((event, payload) => decideGithub(event, payload, rules), [
    ["a successful workflow_run on main deploys head_sha", "workflow_run", fixture(success), "deploy", {
      deployment: "github-11934028761-1", branch: "main", commit: "7a4156f7be3c56d9b153cddff2bff5e42e3c46d8",
    } as Partial<Decision>],
    ["a failed run does not deploy", "workflow_run", fixture("github-workflow_run-failure.json"), "ignore"],
    ["a requested run does not deploy", "workflow_run", variant(success, (p) => (p.action = "requested")), "ignore"],
    ["ping is answered and ignored", "ping", fixture("github-ping.json"), "ignore", { reason: "ping" } as Partial<Decision>],
    ["push does not deploy", "push", fixture("github-push.json"), "ignore"],
    ["check_suite does not deploy", "check_suite", fixture("github-check_suite-success.json"), "ignore"],
    ["a pull request run never deploys", "workflow_run", variant(success, (p) => (p.workflow_run.event = "pull_request")), "ignore"],
    ["a run from a fork never deploys, whatever its branch", "workflow_run", variant(success, (p) => (p.workflow_run.head_repository.full_name = "mallory/shop")), "ignore"],
    ["a run without a head repository never deploys", "workflow_run", variant(success, (p) => (p.workflow_run.head_repository = null)), "ignore"],
    ["another repository is forbidden", "workflow_run", variant(success, (p) => (p.repository.full_name = "acme/other")), "forbidden"],
    ["the second attempt is another deployment", "workflow_run", variant(success, (p) => (p.workflow_run.run_attempt = 2)), "deploy", { deployment: "github-11934028761-2" } as Partial<Decision>],
    ["a missing head_sha is invalid", "workflow_run", variant(success, (p) => delete p.workflow_run.head_sha), "invalid"],
  ]);

  test("GITHUB_WORKFLOWS limits which workflows deploy", () => {
    expect(kind(decideGithub("workflow_run", fixture(success), { ...rules, GITHUB_WORKFLOWS: ["Release"] }))).toBe("ignore");
    expect(kind(decideGithub("workflow_run", fixture(success), { ...rules, GITHUB_WORKFLOWS: ["Release", "CI"] }))).toBe("deploy");
  });

  test("an invalid payload names the field", () => {
    const decision = decideGithub("workflow_run", variant(success, (p) => (p.workflow_run.id = "x")), rules);
    expect(decision).toMatchObject({ kind: "invalid" });
    expect((decision as { error: string }).error).toStartWith("workflow_run.id:");
  });
});

describe("GitLab decisions", () => {
  const success = "gitlab-pipeline-success.json";
  table((event, payload) => decideGitlab(event, payload, rules), [
    ["a successful pipeline on main deploys its sha", "Pipeline Hook", fixture(success), "deploy", {
      deployment: "gitlab-884120", branch: "main", commit: "4d11048b007b57126c0068e7ce3de65b04fe4d4b",
    } as Partial<Decision>],
    ["a failed pipeline does not deploy", "Pipeline Hook", fixture("gitlab-pipeline-failed.json"), "ignore"],
    ["a tag pipeline does not deploy", "Pipeline Hook", variant(success, (p) => (p.object_attributes.tag = true)), "ignore"],
    ["a merge request pipeline never deploys", "Pipeline Hook", variant(success, (p) => (p.merge_request = { id: 1, iid: 7 })), "ignore"],
    ["a merge request event pipeline never deploys", "Pipeline Hook", variant(success, (p) => (p.object_attributes.source = "merge_request_event")), "ignore"],
    ["an external pull request pipeline never deploys, whatever its branch", "Pipeline Hook", variant(success, (p) => (p.object_attributes.source = "external_pull_request_event")), "ignore"],
    ["other events do not deploy", "Push Hook", fixture(success), "ignore"],
    ["another project is forbidden", "Pipeline Hook", variant(success, (p) => (p.project.id = 1)), "forbidden"],
    ["a branch not in ARBEIDER_BRANCHES does not deploy", "Pipeline Hook", variant(success, (p) => (p.object_attributes.ref = "feature")), "ignore"],
    ["a missing ref is invalid", "Pipeline Hook", variant(success, (p) => delete p.object_attributes.ref), "invalid"],
  ]);
});

describe("secrets", () => {
  test("GitHub's published HMAC test vector", () => {
    const body = new TextEncoder().encode("Hello, World!");
    const expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    expect(githubSignature("It's a Secret to Everybody", body)).toBe(expected);
    expect(githubSignatureValid("It's a Secret to Everybody", body, expected)).toBe(true);
  });

  test("a missing, malformed or wrong GitHub signature is refused", () => {
    const body = new TextEncoder().encode("Hello, World!");
    for (const header of [undefined, "", "sha1=757107ea", "sha256=zz", `sha256=${"0".repeat(64)}`]) {
      expect(githubSignatureValid("It's a Secret to Everybody", body, header)).toBe(false);
    }
  });

  test("safeEqual compares whole strings", () => {
    expect(safeEqual("fixture-codeship-key-77b0", "fixture-codeship-key-77b0")).toBe(true);
    expect(safeEqual("fixture-codeship-key-77b0", "fixture-codeship-key-77b")).toBe(false);
    expect(safeEqual("fixture-codeship-key-77b0", undefined)).toBe(false);
  });
});

describe("webhook configuration", () => {
  const base = { ARBEIDER_SIGNING_KEY_FILE: "/k", ARBEIDER_API_KEY: "fixture-codeship-key-77b0" };

  test("half of a provider's pair of variables is a configuration error naming the other", () => {
    const config = loadConfig(WebhookEnv, { ...base, GITHUB_WEBHOOK_SECRET: "s3cret" });
    expect(() => checkProviderPairs(config)).toThrow(new ConfigError("GITHUB_REPOSITORY", "is required when GITHUB_WEBHOOK_SECRET is set"));
  });

  test("an API key that cannot travel as a bearer token is refused", () => {
    expect(() => loadConfig(WebhookEnv, { ...base, ARBEIDER_API_KEY: "has spaces in it, sixteen+" })).toThrow(/ARBEIDER_API_KEY/);
  });
});
