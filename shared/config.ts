/**
 * Configuration is environment variables only, validated once at start by a
 * valibot schema per process. `loadConfig` returns typed config or throws a
 * ConfigError naming the variable; each `main()` prints it and exits 2.
 */
import * as v from "valibot";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { parseVerifyKeys, type VerifyKey } from "./signing.ts";
import { FLEET_PATTERN, NAME_PATTERN, isSafeBranch } from "./protocol.ts";
import { parseStrategy, type Strategy } from "./strategy.ts";

/** A configuration problem: which variable, and what is wrong with it. */
export class ConfigError extends Error {
  constructor(readonly variable: string, problem: string) {
    super(`${variable}: ${problem}`);
  }
}

/** Parses `env` with an object schema of variables; the first problem becomes a ConfigError. */
export function loadConfig<S extends v.GenericSchema>(schema: S, env: Record<string, string | undefined>): v.InferOutput<S> {
  // Empty values count as unset, as in most shells' `VAR= cmd` habits.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ""));
  const result = v.safeParse(schema, present, { abortEarly: true });
  if (result.success) {
    checkSharedRules(result.output as Record<string, unknown>);
    return result.output;
  }
  const issue = result.issues[0];
  const variable = v.getDotPath(issue) ?? "environment";
  const problem = issue.received === "undefined" ? "is required" : issue.message;
  throw new ConfigError(variable, problem);
}

/** The public keys in ARBEIDER_VERIFY_KEY_FILE's files, or a ConfigError naming the file that cannot be used. */
export function readVerifyKeyFiles(files: readonly string[]): VerifyKey[] {
  return files.flatMap((file) => {
    try {
      return parseVerifyKeys(readFileSync(file, "utf8"));
    } catch (error) {
      throw new ConfigError("ARBEIDER_VERIFY_KEY_FILE", `cannot use ${file}: ${(error as Error).message}`);
    }
  });
}

const text = (fallback: string) => v.optional(v.string(), fallback);

const integer = (fallback: number, min: number, max: number) =>
  v.pipe(
    v.optional(v.string(), String(fallback)),
    v.regex(/^\d+$/, "must be a whole number"),
    v.transform(Number),
    v.minValue(min, `must be at least ${min}`),
    v.maxValue(max, `must be at most ${max}`),
  );

const boolean = (fallback: boolean) =>
  v.pipe(
    v.optional(v.string(), String(fallback)),
    v.picklist(["true", "false", "1", "0", "yes", "no"], "must be true or false"),
    v.transform((s) => s === "true" || s === "1" || s === "yes"),
  );

const list = (pattern: RegExp, message: string) =>
  v.pipe(
    v.optional(v.string(), ""),
    v.transform((s) => s.split(",").map((item) => item.trim()).filter(Boolean)),
    v.check((items) => items.every((item) => pattern.test(item)), message),
  );

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
  } catch {
    return false;
  }
}

const fileList = v.pipe(
  v.string(),
  v.transform((s) => s.split(",").map((item) => item.trim()).filter(Boolean)),
  v.minLength(1, "names no file"),
);

/** A PEM file for the broker's TLS: readable now, and holding a `-----BEGIN <kind>` block. */
const pemFile = (kind: RegExp, what: string) =>
  v.optional(
    v.pipe(
      v.string(),
      v.rawCheck(({ dataset, addIssue }) => {
        if (!dataset.typed) return;
        try {
          if (!kind.test(readFileSync(dataset.value, "utf8"))) addIssue({ message: `${dataset.value} holds no PEM ${what}` });
        } catch (error) {
          addIssue({ message: `cannot read ${dataset.value}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` });
        }
      }),
    ),
  );

/** Variables both processes read. */
export const SharedEnv = {
  AMQP_URL: v.pipe(
    text("amqp://guest:guest@127.0.0.1:5672"),
    v.transform((s) => s.split(",").map((url) => url.trim()).filter(Boolean)),
    v.check((urls) => urls.length > 0 && urls.every((url) => /^amqps?:\/\/[^\s]+$/.test(url)), "must be amqp:// or amqps:// URLs, comma separated"),
  ),
  ARBEIDER_FLEET: v.pipe(text("default"), v.regex(FLEET_PATTERN, "must match [A-Za-z0-9_-]{1,64}")),
  LOG_LEVEL: v.optional(v.picklist(["debug", "info", "warn", "error"], "must be debug, info, warn or error"), "info"),
  ARBEIDER_QUEUE_TYPE: v.optional(v.picklist(["classic", "quorum"], "must be classic or quorum"), "classic"),
  ARBEIDER_CONFIRM_TIMEOUT: integer(10, 1, 600),
  ARBEIDER_AMQP_CA_FILE: pemFile(/-----BEGIN CERTIFICATE-----/, "certificate"),
  ARBEIDER_AMQP_CERT_FILE: pemFile(/-----BEGIN CERTIFICATE-----/, "certificate"),
  ARBEIDER_AMQP_KEY_FILE: pemFile(/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "private key"),
};
export type SharedConfig = v.InferOutput<v.ObjectSchema<typeof SharedEnv, undefined>>;

/** Rules between shared variables, checked by loadConfig for every schema that includes SharedEnv. */
const SHARED_RULES: { variable: string; broken: (c: Partial<SharedConfig>) => boolean; problem: string }[] = [
  {
    variable: "ARBEIDER_AMQP_KEY_FILE",
    broken: (c) => c.ARBEIDER_AMQP_CERT_FILE !== undefined && c.ARBEIDER_AMQP_KEY_FILE === undefined,
    problem: "is required with ARBEIDER_AMQP_CERT_FILE (the client certificate's private key)",
  },
  {
    variable: "ARBEIDER_AMQP_CERT_FILE",
    broken: (c) => c.ARBEIDER_AMQP_KEY_FILE !== undefined && c.ARBEIDER_AMQP_CERT_FILE === undefined,
    problem: "is required with ARBEIDER_AMQP_KEY_FILE (the client certificate)",
  },
  {
    // TLS files with no amqps:// URL mean the broker password would travel in plain text.
    variable: "AMQP_URL",
    broken: (c) =>
      (c.ARBEIDER_AMQP_CA_FILE ?? c.ARBEIDER_AMQP_CERT_FILE) !== undefined && !(c.AMQP_URL ?? []).some((url) => url.startsWith("amqps://")),
    problem: "must have amqps:// URLs when ARBEIDER_AMQP_CA_FILE or ARBEIDER_AMQP_CERT_FILE is set",
  },
];

function checkSharedRules(config: Record<string, unknown>): void {
  if (!("AMQP_URL" in config)) return;
  const rule = SHARED_RULES.find((r) => r.broken(config as Partial<SharedConfig>));
  if (rule) throw new ConfigError(rule.variable, rule.problem);
}

export const WorkerEnv = v.object({
  ...SharedEnv,
  ARBEIDER_VERIFY_KEY_FILE: fileList,
  // The host name's first label: a fully qualified name has dots, which node ids do not.
  ARBEIDER_NODE_ID: v.pipe(text(hostname().split(".")[0]!), v.regex(NAME_PATTERN, "must match [A-Za-z0-9][A-Za-z0-9_-]{0,62}")),
  ARBEIDER_GROUPS: list(NAME_PATTERN, "each group must match [A-Za-z0-9][A-Za-z0-9_-]{0,62}"),
  ARBEIDER_REPO_DIR: text("."),
  ARBEIDER_UPDATE_SCRIPT: v.optional(v.string()),
  ARBEIDER_TIMEOUT: integer(600, 1, 86_400),
  ARBEIDER_SERVICES: v.pipe(
    v.optional(v.string(), ""),
    v.transform((s) => s.split(",").map((item) => item.trim()).filter(Boolean)),
    v.check((items) => items.every((item) => /^[A-Za-z0-9_-]+=\/.+$/.test(item)), "must be name=/absolute/pidfile, comma separated"),
    v.transform((items) => Object.fromEntries(items.map((item) => [item.slice(0, item.indexOf("=")), item.slice(item.indexOf("=") + 1)]))),
  ),
  ARBEIDER_HOOKS_DIR: v.optional(v.string()),
  ARBEIDER_ROLLBACK_ON_FAILURE: boolean(false),
  ARBEIDER_STATE_FILE: v.optional(v.string()),
  ARBEIDER_HEARTBEAT_SECONDS: integer(15, 1, 3600),
  ARBEIDER_HEALTH_CMD: v.optional(v.string()),
  ARBEIDER_HEALTH_URL: v.optional(v.pipe(v.string(), v.check(isHttpUrl, "must be an http:// or https:// URL"))),
  ARBEIDER_HEALTH_TIMEOUT: integer(60, 1, 3600),
  ARBEIDER_HEALTH_INTERVAL: integer(2, 1, 600),
  ARBEIDER_ALLOWED_SIGNERS: v.optional(v.string()),
});
export type WorkerEnv = v.InferOutput<typeof WorkerEnv>;

/** A strategy string (shared/strategy.ts) as a variable: its keys, or the variable's error naming the key. */
const strategy = v.pipe(
  v.optional(v.string(), ""),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    try {
      return parseStrategy(dataset.value);
    } catch (error) {
      addIssue({ message: (error as Error).message });
      return NEVER;
    }
  }),
);

/** One deploy branch of ARBEIDER_BRANCHES: where it goes and how it is rolled out. */
export interface BranchRule {
  target: string;
  strategy: Partial<Strategy>;
}

const TARGET = /^(all|group:[A-Za-z0-9][A-Za-z0-9_-]{0,62}|node:[A-Za-z0-9][A-Za-z0-9_-]{0,62})$/;

/** `branch[=target][;strategy]`: the branch checked by the same rule as a command's, the target, the strategy keys. */
export function parseBranchRule(item: string): [string, BranchRule] {
  const semi = item.indexOf(";");
  const [head, rest] = semi < 0 ? [item, ""] : [item.slice(0, semi), item.slice(semi + 1)];
  const eq = head.indexOf("=");
  const branch = (eq < 0 ? head : head.slice(0, eq)).trim();
  const target = eq < 0 ? "all" : head.slice(eq + 1).trim();
  if (!isSafeBranch(branch)) throw new Error(`"${branch}" is not a safe branch name`);
  if (!TARGET.test(target)) throw new Error(`branch ${branch}: target "${target}" must be all, group:<name> or node:<id>`);
  return [branch, { target, strategy: parseStrategy(rest) }];
}

/** Items of ARBEIDER_BRANCHES, comma separated (wave sizes inside an item use `/`). */
const branches = v.pipe(
  text("master"),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const items = dataset.value.split(",").map((item) => item.trim()).filter(Boolean);
    if (items.length === 0) {
      addIssue({ message: 'must be a comma list of "branch", "branch=target" or "branch=target;strategy"' });
      return NEVER;
    }
    try {
      return new Map(items.map(parseBranchRule));
    } catch (error) {
      addIssue({ message: (error as Error).message });
      return NEVER;
    }
  }),
);

/** An API base URL: http(s), without a trailing slash. */
const apiUrl = (fallback: string) =>
  v.pipe(text(fallback), v.regex(/^https?:\/\/[^\s/]+[^\s]*$/, "must be an http:// or https:// URL"), v.transform((s) => s.replace(/\/+$/, "")));

/** A token sent in a header: printable, no spaces (a pasted newline would break the header). */
const token = v.optional(v.pipe(v.string(), v.regex(/^[\x21-\x7e]+$/, "must be printable characters without spaces")));

/** Where a notification goes: a URL that gets signed JSON, or a Slack incoming webhook (`slack+https://`). */
export interface NotifyUrl {
  kind: "notify" | "slack";
  url: string;
}

/** ARBEIDER_NOTIFY_URLS: its errors name the item by position, never by its text (a Slack URL is a secret). */
const notifyUrls = v.pipe(
  v.optional(v.string(), ""),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const items = dataset.value.split(",").map((item) => item.trim()).filter(Boolean);
    const out: NotifyUrl[] = [];
    for (const [i, item] of items.entries()) {
      const slack = item.startsWith("slack+");
      const url = slack ? item.slice("slack+".length) : item;
      if (!/^https?:\/\/[^\s/]+[^\s]*$/.test(url) || !URL.canParse(url)) {
        addIssue({ message: `item ${i + 1} must be an http:// or https:// URL, or slack+https:// for Slack` });
        return NEVER;
      }
      out.push({ kind: slack ? "slack" : "notify", url });
    }
    if (out.length > 999) {
      addIssue({ message: "names more than 999 URLs" });
      return NEVER;
    }
    return out;
  }),
);

/** Reporting back (docs/reporting.md): where deployments' states are reported, and how. */
const ReportEnv = {
  /** The environment name reported; default: each deployment's target. */
  ARBEIDER_ENVIRONMENT: v.optional(v.pipe(v.string(), v.regex(/^[^\x00-\x1f\x7f]{1,100}$/, "must be 1 to 100 printable characters"))),
  GITHUB_TOKEN: token,
  GITHUB_API_URL: apiUrl("https://api.github.com"),
  GITLAB_API_TOKEN: token,
  GITLAB_URL: apiUrl("https://gitlab.com"),
  ARBEIDER_NOTIFY_URLS: notifyUrls,
  ARBEIDER_NOTIFY_SECRET: v.optional(v.pipe(v.string(), v.minLength(16, "must be at least 16 characters"))),
  /** Seconds one delivery attempt may take. */
  ARBEIDER_REPORT_TIMEOUT: integer(10, 1, 300),
};

export const WebhookEnv = v.object({
  ...SharedEnv,
  ...ReportEnv,
  PORT: integer(8080, 0, 65_535),
  HOST: text("0.0.0.0"),
  ARBEIDER_SIGNING_KEY_FILE: v.string(),
  /** Earlier webhooks' public keys, after a rotation: their `created` records are trusted too. */
  ARBEIDER_VERIFY_KEY_FILE: v.pipe(
    v.optional(v.string(), ""),
    v.transform((s) => s.split(",").map((item) => item.trim()).filter(Boolean)),
  ),
  ARBEIDER_API_KEY: v.pipe(
    v.string(),
    v.minLength(16, "must be at least 16 characters"),
    // It travels as a bearer token and in Codeship's URL: only characters both carry unchanged.
    v.regex(/^[A-Za-z0-9._~-]+$/, "may contain only letters, digits and . _ ~ - (e.g. openssl rand -hex 24)"),
  ),
  ARBEIDER_BRANCHES: branches,
  CODESHIP_PROJECT_ID: v.optional(v.string()),
  GITHUB_WEBHOOK_SECRET: v.optional(v.string()),
  GITHUB_REPOSITORY: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, "must be owner/name"))),
  GITHUB_WORKFLOWS: v.pipe(
    v.optional(v.string(), ""),
    v.transform((s) => s.split(",").map((item) => item.trim()).filter(Boolean)),
  ),
  GITLAB_WEBHOOK_TOKEN: v.optional(v.string()),
  GITLAB_PROJECT_ID: v.optional(v.string()),
  ARBEIDER_COMMAND_TTL: integer(3600, 1, 30 * 86_400),
  ARBEIDER_MAX_BODY: integer(1_048_576, 1, 1 << 30),
  ARBEIDER_HISTORY_MAX_AGE: v.pipe(text("30D"), v.regex(/^\d+[YMDhms]$/, "must be a number and a unit Y, M, D, h, m or s, e.g. 30D")),
  /** The fleet-wide default strategy of updates. */
  ARBEIDER_ROLLOUT: strategy,
  /** Where `git ls-remote` finds a branch's tip for an API update without a commit. */
  ARBEIDER_ORIGIN_URL: v.optional(v.pipe(v.string(), v.check((s) => !s.startsWith("-"), "must be a git URL or path, not an option"))),
  ARBEIDER_CONVERGE: v.optional(v.picklist(["missed", "all", "off"], "must be missed, all or off"), "missed"),
  ARBEIDER_PUBLIC_URL: v.optional(v.pipe(v.string(), v.regex(/^https?:\/\/[^\s/]+/, "must be an http:// or https:// URL"), v.transform((s) => s.replace(/\/+$/, "")))),
});
export type WebhookEnv = v.InferOutput<typeof WebhookEnv>;
