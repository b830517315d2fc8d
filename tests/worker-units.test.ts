/**
 * The worker's pure pieces, without a broker: the verdict on a message in the
 * contract's order, the backlog read-ahead, what a refused queue declaration
 * means, the checkout lock, the output tail, where HEAD is (from the files
 * of a plain clone, from git in a linked worktree), and the process runner: a
 * started process's group is known at once, and how a run ends is reported
 * (also with a background process holding the pipes, or past its deadline).
 * (The state file: tests/worker-state.test.ts.)
 */
import { afterAll, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Command, Event } from "../shared/protocol.ts";
import { generateKeyPair, parseSigningKey, parseVerifyKeys } from "../shared/signing.ts";
import { acquireLock } from "../worker/lock.ts";
import { groupAlive, stampOf } from "../worker/proc.ts";
import { createTail, run } from "../worker/run.ts";
import { emptyState, type State } from "../worker/state.ts";
import { explainRefusal } from "../worker/queue.ts";
import { judgeMessage, newerUpdate, type Context, type Verdict } from "../worker/verify.ts";
import { cloneNode, command, git, makeOrigin, removeDirs, sign, tempDir, waitUntil } from "./helpers.ts";
import { position } from "../worker/git.ts";

const dirs: string[] = [];
const dir = () => {
  const made = tempDir();
  dirs.push(made);
  return made;
};
afterAll(() => removeDirs(...dirs));

const keys = generateKeyPair();
const signingKey = parseSigningKey(keys.signingPem);
const NOW = Date.parse("2026-01-01T10:30:00Z");
const at = (minutes: number) => new Date(NOW + minutes * 60_000).toISOString();

const outcome = (id: string): Event => ({ v: 1, deployment: "d", command: id, node: "web-1", state: "succeeded", at: at(-5) });

describe("judgeMessage", () => {
  const base = (patch: Partial<Command> = {}) =>
    command("shop", { id: "cmd-1", command: "update", args: { branch: "master" }, issuedAt: at(-1), expiresAt: at(59), ...patch } as Command);
  const context = (state: Partial<State> = {}): Context => ({
    keys: parseVerifyKeys(keys.verifyPem),
    fleet: "shop",
    node: "web-1",
    groups: ["web"],
    state: { ...emptyState(), ...state },
    now: NOW,
  });
  const judge = (body: unknown, options: { signature?: unknown; redelivered?: boolean; state?: Partial<State> } = {}): Verdict => {
    const signed = sign(body, signingKey);
    const signature = "signature" in options ? options.signature : signed.signature;
    return judgeMessage({ body: signed.bytes, signature, redelivered: options.redelivered ?? false }, context(options.state));
  };
  const refusal = (verdict: Verdict) => (verdict.kind === "refuse" ? [verdict.state, verdict.reason] : [verdict.kind]);
  const executed = new Map([["cmd-1", { expiresAt: at(59), expires: NOW + 59 * 60_000, outcome: outcome("cmd-1") }]]);

  test("a signed command for this node is run", () => expect(judge(base())).toEqual({ kind: "run", command: base() }));

  const table: [string, () => Verdict, [string, string?]][] = [
    ["no signature", () => judge(base(), { signature: undefined }), ["rejected", "bad signature"]],
    ["a signature of other bytes", () => judge(base(), { signature: sign({ ...base(), target: "node:web-2" }, signingKey).signature }), ["rejected", "bad signature"]],
    ["a bad signature on a bad schema (signature first)", () => judge({ v: 1 }, { signature: "x" }), ["rejected", "bad signature"]],
    ["a signed body that is not JSON", () => judge("{oops"), ["rejected", "schema: malformed JSON: "]],
    ["a signed body of another version", () => judge({ ...base(), v: 2 }), ["rejected", "schema: v: Invalid type: Expected 1 but received 2"]],
    ["a top-level field the schema does not name", () => judge({ ...base(), restart: "yes" }), ["rejected", 'schema: restart: Invalid key: Expected never but received "restart"']],
    ["another fleet", () => judge(base({ fleet: "other" })), ["rejected", "fleet: signed for fleet other, this node is in shop"]],
    ["an expired command", () => judge(base({ expiresAt: at(0) })), ["rejected", `expired: at ${at(0)}`]],
    ["another node's target", () => judge(base({ target: "node:web-2" })), ["rejected", "target: node:web-2 does not name node web-1"]],
    ["another group's target", () => judge(base({ target: "group:db" })), ["rejected", "target: group:db does not name node web-1"]],
    ["an expired command for another node (expiry first)", () => judge(base({ expiresAt: at(-1), target: "node:web-2" })), ["rejected", `expired: at ${at(-1)}`]],
    ["an id already executed", () => judge(base(), { state: { executed } }), ["skipped", "duplicate"]],
    ["a redelivered id already executed", () => judge(base(), { state: { executed }, redelivered: true }), ["replay"]],
    ["a redelivered id already executed, expired since", () => judge(base({ expiresAt: at(-1) }), { state: { executed }, redelivered: true }), ["replay"]],
    ["a redelivered id not yet executed", () => judge(base(), { redelivered: true }), ["run"]],
    ["an id named like an Object method, not executed", () => judge(base({ id: "constructor" }), { state: { executed } }), ["run"]],
    ["a redelivered id named like an Object method, not executed", () => judge(base({ id: "toString" }), { redelivered: true }), ["run"]],
    [
      "an update issued before the last applied one",
      () => judge(base(), { state: { lastUpdateIssuedAt: at(0) } }),
      ["skipped", `superseded: issued ${at(-1)}, before the update applied here (${at(0)})`],
    ],
    ["a rollback issued before the last applied update", () => judge(base({ command: "rollback", args: {} }), { state: { lastUpdateIssuedAt: at(0) } }), ["run"]],
  ];
  for (const [name, verdict, expected] of table) {
    test(`${name}: ${expected.join(" ")}`, () => {
      const [kind, reason] = refusal(verdict());
      expect(kind).toBe(expected[0]);
      expect(reason ?? "").toStartWith(expected[1] ?? "");
      if (expected[1] === undefined) expect(reason).toBeUndefined();
    });
  }

  test("a replay carries the recorded outcome", () => {
    const verdict = judge(base(), { state: { executed }, redelivered: true });
    expect(verdict.kind === "replay" && verdict.outcome).toEqual(outcome("cmd-1"));
  });

  test("an unverified message is labelled by its body only when the labels are well formed", () => {
    expect(judge({ deployment: "codeship-1", id: "abc" }, { signature: "x" })).toMatchObject({ deployment: "codeship-1", id: "abc" });
    expect(judge({ deployment: "../x", id: { a: 1 } }, { signature: "x" })).toMatchObject({ deployment: "unknown", id: "unknown" });
    expect(judge("not json", { signature: "x" })).toMatchObject({ deployment: "unknown", id: "unknown" });
  });
});

describe("newerUpdate (backlog read-ahead)", () => {
  const context: Context = { keys: parseVerifyKeys(keys.verifyPem), fleet: "shop", node: "web-1", groups: [], state: emptyState(), now: NOW };
  const update = (id: string, issued: number, patch: Partial<Command> = {}) =>
    command("shop", { id, command: "update", args: { branch: "master" }, issuedAt: at(issued), expiresAt: at(59), ...patch } as Command);
  const message = (body: Command, signature?: string) => {
    const signed = sign(body, signingKey);
    return { body: signed.bytes, signature: signature ?? signed.signature, redelivered: false };
  };
  const current = update("u1", -3);
  const done = new Map([["u2", { expiresAt: at(59), expires: NOW + 59 * 60_000, outcome: outcome("u2") }]]);
  const table: [string, ReturnType<typeof message>[], string | undefined, Partial<Context>?][] = [
    ["nothing behind it", [], undefined],
    ["a later update", [message(update("u2", -2))], "u2"],
    ["an update issued at the same time", [message(update("u2", -3))], "u2"],
    ["the newest of several", [message(update("u2", -2)), message(update("u3", -1))], "u2"],
    ["an update issued before it", [message(update("u2", -4))], undefined],
    ["a second copy of the same command", [message(update("u1", -3))], undefined],
    ["a later update behind a ping", [message(command("shop", { id: "p", command: "ping", args: {} })), message(update("u2", -2))], "u2"],
    ["a later update behind a rollback", [message(command("shop", { id: "r", command: "rollback", args: {} })), message(update("u2", -2))], undefined],
    ["a later update with a bad signature", [message(update("u2", -2), "x")], undefined],
    ["a later update that has expired", [message(update("u2", -2, { expiresAt: at(-1) }))], undefined],
    ["a later update for another node", [message(update("u2", -2, { target: "node:web-2" }))], undefined],
    ["a later update already executed", [message(update("u2", -2))], undefined, { state: { ...emptyState(), executed: done } }],
  ];
  for (const [name, waiting, expected, patch] of table) {
    test(`${name}: ${expected ?? "runs"}`, () => expect(newerUpdate(current, waiting, { ...context, ...patch })?.id).toBe(expected));
  }
});

describe("explainRefusal (the node queue's declaration)", () => {
  const where = { fleet: "shop", queue: "arbeider.shop.node.web-1", queueType: "classic" };
  const refused = (code: number, text: string) => Object.assign(new Error(`Operation failed: QueueDeclare; ${code} with message "${text}"`), { code });
  const table: [string, Error, string, string][] = [
    [
      "a quorum queue where classic is configured",
      refused(406, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received 'classic' but current is 'quorum'"),
      "ConfigError",
      "ARBEIDER_QUEUE_TYPE: queue arbeider.shop.node.web-1 already exists as a quorum queue, not classic: set ARBEIDER_QUEUE_TYPE=quorum",
    ],
    [
      "a classic queue where quorum is configured",
      refused(406, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received the value 'quorum' of type 'longstr' but current is none"),
      "ConfigError",
      "ARBEIDER_QUEUE_TYPE: queue arbeider.shop.node.web-1 already exists as a classic queue",
    ],
    [
      "a quorum queue an older worker made without a dead-letter exchange",
      refused(406, "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'q' in vhost '/': received the value 'd' of type 'longstr' but current is none"),
      "ConfigError",
      "ARBEIDER_QUEUE_TYPE: queue arbeider.shop.node.web-1 exists with other arguments than this worker declares (inequivalent arg 'x-dead-letter-exchange')",
    ],
    ["an access refusal, as it is", refused(403, "ACCESS_REFUSED - access to exchange 'x' refused"), "Error", "Operation failed: QueueDeclare; 403"],
    ["no commands exchange, as it is (retried)", refused(404, "NOT_FOUND - no exchange 'arbeider.shop.commands' in vhost '/'"), "Error", "Operation failed: QueueDeclare; 404"],
  ];
  test("a refusal naming another argument, for a queue that accepts the other type's arguments", () => {
    const error = refused(406, "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'q' in vhost '/': received the value 'd' of type 'longstr' but current is none");
    const explained = explainRefusal(error, { ...where, queueType: "quorum", existing: "classic" });
    expect(explained.message).toStartWith("ARBEIDER_QUEUE_TYPE: queue arbeider.shop.node.web-1 already exists as a classic queue, not quorum: set ARBEIDER_QUEUE_TYPE=classic");
  });

  for (const [name, error, kind, message] of table) {
    test(name, () => {
      const explained = explainRefusal(error, where);
      expect(explained.constructor.name).toBe(kind);
      expect(explained.message).toStartWith(message);
    });
  }
});

describe("checkout lock", () => {
  test("is refused while its holder runs, and taken over once the holder is gone", async () => {
    const gitDir = dir();
    const holder = spawn("sleep", ["30"]);
    const lockFile = join(gitDir, "arbeider-worker.lock");
    writeFileSync(lockFile, JSON.stringify(stampOf(holder.pid!)));
    expect(() => acquireLock(gitDir)).toThrow(`ARBEIDER_REPO_DIR: another worker (pid ${holder.pid}) already serves this checkout`);
    holder.kill();
    await new Promise((resolve) => holder.once("exit", resolve));
    const lock = acquireLock(gitDir);
    expect(JSON.parse(readFileSync(lockFile, "utf8")).pid).toBe(process.pid);
    lock.release();
    expect(existsSync(lockFile)).toBe(false);
  });

  test("a lock naming a reused pid (another start time) is stale", () => {
    const gitDir = dir();
    writeFileSync(join(gitDir, "arbeider-worker.lock"), JSON.stringify({ ...stampOf(1), startTime: "1" }));
    acquireLock(gitDir).release();
  });
});

describe("output tail", () => {
  test("keeps the last bytes and never starts with half a character", () => {
    const tail = createTail(8);
    tail.push(new TextEncoder().encode("abcdef"));
    tail.push(new TextEncoder().encode("ghij"));
    expect(tail.text()).toBe("cdefghij");
    const utf8 = createTail(5);
    utf8.push(new TextEncoder().encode("xxäöü")); // ä ö ü are two bytes each: the cut falls inside ä
    expect(utf8.text()).toBe("öü");
  });
});

describe("where HEAD is", () => {
  test("read from the files of a plain clone, and from git in a linked worktree, whose refs live elsewhere", async () => {
    const root = dir();
    const { origin, commit } = makeOrigin(root);
    const second = commit("feature", { "f.txt": "1\n" }, "feature");
    const clone = cloneNode(origin, join(root, "clone"));
    expect(await position(clone)).toEqual({ sha: git(clone, "rev-parse", "HEAD"), branch: "master" });
    git(clone, "fetch", "--quiet", "origin", "feature:feature");
    const linked = join(root, "linked");
    git(clone, "worktree", "add", "--quiet", linked, "feature");
    expect(await position(linked)).toEqual({ sha: second, branch: "feature" });
    expect(await position(clone)).toEqual({ sha: git(clone, "rev-parse", "HEAD"), branch: "master" });
  });
});

describe("processes", () => {
  test("the process group is told before run() returns, not on a later event, so a crash right after the start knows whom to end", async () => {
    let told: number | undefined;
    const done = run(["sh", "-c", "echo $$"], { cwd: dir(), deadline: Date.now() + 10_000, onSpawn: (pgid) => (told = pgid) });
    expect(told).toBeNumber();
    const result = await done;
    expect(result.code).toBe(0);
    expect(Number(result.stdout.trim())).toBe(told!);
  });

  test("output, exit status and signal are reported; a program that cannot start is an error, not a throw", async () => {
    const options = { cwd: dir(), deadline: Date.now() + 10_000 };
    expect(await run(["sh", "-c", "echo out; echo err >&2; exit 3"], options)).toMatchObject({ code: 3, signal: null, timedOut: false, stdout: "out\n", stderr: "err\n" });
    expect(await run(["sh", "-c", "kill -KILL $$"], options)).toMatchObject({ code: null, signal: "SIGKILL", timedOut: false });
    const missing = await run([join(options.cwd, "no-such-program")], options);
    expect(missing).toMatchObject({ code: null, timedOut: false });
    expect(missing.error).toMatch(/^ENOENT: .*no-such-program'$/);
  });

  test("a process left running in the background with the pipes open does not hold the result back; the group is ended at the deadline", async () => {
    const cwd = dir();
    let group = 0;
    const left = await run(["sh", "-c", "sleep 60 & echo started"], { cwd, deadline: Date.now() + 10_000, onSpawn: (pgid) => (group = pgid) });
    expect(left).toMatchObject({ code: 0, timedOut: false, stdout: "started\n" });
    process.kill(-group, "SIGKILL"); // the sleep, still in the group
    const late = await run(["sh", "-c", "sleep 60 & sleep 60"], { cwd, deadline: Date.now() + 200, graceMs: 100, onSpawn: (pgid) => (group = pgid) });
    expect(late).toMatchObject({ code: null, signal: "SIGTERM", timedOut: true });
    await waitUntil(() => !groupAlive(group), "both sleeps to be gone", 5000); // a zombie not reaped yet counts as gone
  });
});
