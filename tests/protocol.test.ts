/**
 * The wire protocol's pure pieces as tables: which commands the schema
 * accepts and why it refuses the others, which branch names are safe for git,
 * routing keys and targets, the broker's reconnect backoff, and broker URLs with
 * their password hidden for logs.
 */
import { describe, expect, test } from "bun:test";
import { backoffDelay, redact } from "../shared/broker.ts";
import { Command, isSafeBranch, nodeBindings, parseJson, routingKey, targetMatches } from "../shared/protocol.ts";

const valid = {
  v: 1,
  id: "0b6f0a4e-2a53-4e63-9d5c-1b0e4a6c9f10",
  deployment: "codeship-12345",
  fleet: "shop",
  target: "all",
  command: "update",
  args: { branch: "master", commit: "1a2b3c4" },
  issuedAt: "2026-01-01T10:00:00.000Z",
  expiresAt: "2026-01-01T11:00:00.000Z",
  source: { provider: "codeship", build: "12345", committer: "ada" },
};

const parse = (patch: Record<string, unknown>) => parseJson(Command, JSON.stringify({ ...valid, ...patch }));

describe("Command schema", () => {
  const accepted: [string, Record<string, unknown>][] = [
    ["an update with a short commit", {}],
    ["an update without a commit", { args: { branch: "release/2026-01" } }],
    ["an update with a full commit", { args: { branch: "master", commit: "0123456789abcdef0123456789abcdef01234567" } }],
    ["a rollback without args", { command: "rollback", args: undefined }],
    ["a rollback to a commit", { command: "rollback", args: { commit: "abcdef0" } }],
    ["a signal", { command: "signal", args: { service: "web_app", signal: "USR2" } }],
    ["a hook", { command: "hook", args: { name: "clear-cache" } }],
    ["a ping to a group", { command: "ping", args: {}, target: "group:web" }],
    ["a ping to a node", { command: "ping", args: {}, target: "node:web-1" }],
  ];
  for (const [name, patch] of accepted) {
    test(`accepts ${name}`, () => expect(parse(patch).ok).toBe(true));
  }

  const refused: [string, Record<string, unknown>, string][] = [
    ["a branch git would read as an option", { args: { branch: "--upload-pack=touch /tmp/pwned" } }, "args.branch: is not a safe branch name"],
    ["a revision expression as commit", { args: { branch: "master", commit: "HEAD~1" } }, "args.commit: must be 7 to 40 lowercase hex digits"],
    ["an upper-case commit", { args: { branch: "master", commit: "ABCDEF0" } }, "args.commit:"],
    ["a commit of 6 digits", { args: { branch: "master", commit: "abcdef" } }, "args.commit:"],
    ["an unknown argument", { args: { branch: "master", force: true } }, "args.force:"],
    ["a signal outside the list", { command: "signal", args: { service: "web", signal: "KILL" } }, "args.signal:"],
    ["a hook name with a path", { command: "hook", args: { name: "../x" } }, "args.name: must match"],
    ["a hook name with a space", { command: "hook", args: { name: "a b" } }, "args.name: must match"],
    ["an unknown command", { command: "shell", args: {} }, "command:"],
    ["another protocol version", { v: 2 }, "v:"],
    ["an empty group target", { target: "group:" }, "target:"],
    ["a target of another kind", { target: "host:web-1" }, "target:"],
    ["a deployment id with a slash", { deployment: "a/b" }, "deployment:"],
    ["a fleet with a dot", { fleet: "shop.eu" }, "fleet:"],
    ["a missing expiry", { expiresAt: undefined }, "expiresAt:"],
    ["a timestamp that is not ISO-8601", { issuedAt: "yesterday" }, "issuedAt:"],
    ["an unknown provider", { source: { provider: "jenkins" } }, "source.provider:"],
  ];
  for (const [name, patch, error] of refused) {
    test(`refuses ${name}`, () => {
      const result = parse(patch);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error).toContain(error);
    });
  }

  test("refuses malformed JSON, saying so", () => {
    const result = parseJson(Command, "{not json");
    expect(result.ok ? "" : result.error).toStartWith("malformed JSON:");
  });
});

describe("isSafeBranch", () => {
  const table: [string, boolean][] = [
    ["master", true],
    ["release/2026-01", true],
    ["feature/a.b_c-d", true],
    ["v1.2", true],
    ["", false],
    ["-x", false],
    ["--upload-pack=touch /tmp/pwned", false],
    ["HEAD", false],
    ["HEAD~1", false],
    ["a..b", false],
    ["a//b", false],
    ["/abs", false],
    ["trailing/", false],
    ["dot.", false],
    ["x.lock", false],
    [".hidden", false],
    ["a/.hidden", false],
    ["with space", false],
    ["semi;colon", false],
    ["tick`id`", false],
    ["dollar$HOME", false],
    ["at@{1}", false],
    ["star*", false],
    ["a".repeat(201), false],
  ];
  for (const [name, safe] of table) {
    test(`${JSON.stringify(name.length > 40 ? `${name.slice(0, 10)}… (${name.length})` : name)} is ${safe ? "safe" : "refused"}`, () =>
      expect(isSafeBranch(name)).toBe(safe));
  }
});

describe("routing and targets", () => {
  test("routing keys follow the target", () => {
    expect(["all", "group:web", "node:web-1"].map(routingKey)).toEqual(["all", "group.web", "node.web-1"]);
  });

  test("a node's queue is bound to all, its groups and its id", () => {
    expect(nodeBindings("web-1", ["web", "eu"])).toEqual(["all", "group.web", "group.eu", "node.web-1"]);
  });

  const table: [string, boolean][] = [
    ["all", true],
    ["group:web", true],
    ["group:db", false],
    ["group:web-1", false],
    ["node:web-1", true],
    ["node:web-2", false],
    ["node:web", false],
  ];
  for (const [target, matches] of table) {
    test(`${target} ${matches ? "names" : "does not name"} node web-1 in group web`, () =>
      expect(targetMatches(target, "web-1", ["web"])).toBe(matches));
  }
});

describe("broker reconnect backoff", () => {
  test("grows exponentially up to the ceiling, with full jitter", () => {
    const top = (attempt: number) => backoffDelay(attempt, 500, 15_000, () => 0.999999);
    expect([0, 1, 2, 3, 4, 5, 10, 100].map(top)).toEqual([499, 999, 1999, 3999, 7999, 14_999, 14_999, 14_999]);
    expect(backoffDelay(3, 500, 15_000, () => 0)).toBe(0);
    expect(backoffDelay(3, 500, 15_000, () => 0.5)).toBe(2000);
  });

  test("stays within [0, ceiling) with the real random source", () => {
    for (let attempt = 0; attempt < 50; attempt++) {
      const delay = backoffDelay(attempt, 500, 15_000);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(Math.min(15_000, 500 * 2 ** attempt));
    }
  });
});

describe("broker URLs in logs", () => {
  const cases: [string, string][] = [
    ["amqp://guest:guest@127.0.0.1:5672", "amqp://guest:***@127.0.0.1:5672"],
    ["amqps://web-1:s3cret@rmq.example.com:5671/%2F", "amqps://web-1:***@rmq.example.com:5671/%2F"],
    // Not percent-encoded, as people paste them: the password must still not show, in whole or in part.
    ["amqp://web-1:pa/ss@rmq:5672", "amqp://web-1:***@rmq:5672"],
    ["amqp://web-1:p@ss@rmq:5672", "amqp://web-1:***@rmq:5672"],
    ["amqp://rmq:5672/vhost", "amqp://rmq:5672/vhost"],
  ];
  for (const [url, shown] of cases) test(`${url} is logged as ${shown}`, () => expect(redact(url)).toBe(shown));
});
