/**
 * The pure parts of `scripts/deploy.ts`: argument parsing (rollout flags
 * checked by the webhook's own strategy parser), the SSE parser, drawing a
 * served deployment (waves, pause, rollback, narrow terminals, output
 * tails), the exit status from the server's state, and `follow` driven by a
 * recorded client (the real webhook is in tests/cli-wait.test.ts).
 */
import { describe, expect, test } from "bun:test";
import { parseArgs, readEnv, UsageError } from "../scripts/deploy/args.ts";
import { createSseParser, type SseMessage } from "../scripts/deploy/sse.ts";
import { nodesTable } from "../scripts/deploy/tables.ts";
import { clip, visibleLength, wrap } from "../scripts/deploy/terminal.ts";
import { failureTails, outcome, renderDeployment, type Deployment } from "../scripts/deploy/view.ts";
import { run } from "../scripts/deploy.ts";
import { T0, at, deployment, ok } from "./cli-fixture.ts";
import { removeDirs, tempDir } from "./helpers.ts";

const deploy = (request: object, wait = false, timeoutS?: number) => ({ kind: "deploy", wait, timeoutS, request });

describe("parseArgs", () => {
  const ok: [string, string[], unknown][] = [
    ["update with branch and commit", ["update", "--branch", "master", "--commit", "abc1234"], deploy({ command: "update", args: { branch: "master", commit: "abc1234" } })],
    ["update without commit (the CLI pins the tip)", ["update", "--branch", "master"], deploy({ command: "update", args: { branch: "master" } })],
    ["--flag=value and a target", ["update", "--branch=release/2", "--target=group:web", "--wait", "--timeout", "30"], deploy({ command: "update", target: "group:web", args: { branch: "release/2" } }, true, 30)],
    [
      "the rollout flags, as one strategy string",
      ["update", "--branch", "master", "--waves", "1,30%,100%", "--bake", "30", "--max-failures", "1", "--on-failure", "halt", "--approve", "2,1"],
      deploy({ command: "update", args: { branch: "master" }, strategy: "waves=1,30%,100% bake=30 max_failures=1 on_failure=halt approve=1,2" }),
    ],
    ["waves with slashes", ["update", "--branch", "master", "--waves=1/50%"], deploy({ command: "update", args: { branch: "master" }, strategy: "waves=1,50%" })],
    ["rollback without commit", ["rollback"], deploy({ command: "rollback", args: {} })],
    ["signal", ["signal", "--service", "web", "--signal", "HUP", "--target", "node:n1"], deploy({ command: "signal", target: "node:n1", args: { service: "web", signal: "HUP" } })],
    ["hook", ["hook", "--name", "clear-cache"], deploy({ command: "hook", args: { name: "clear-cache" } })],
    ["ping", ["ping", "--wait"], deploy({ command: "ping", args: {} }, true)],
    ["status list", ["status"], { kind: "status", id: undefined, wait: false, timeoutS: undefined }],
    ["status of one, waiting", ["status", "api-1", "--wait", "--timeout", "1.5"], { kind: "status", id: "api-1", wait: true, timeoutS: 1.5 }],
    ["approve", ["approve", "api-1"], { kind: "decide", action: "approve", id: "api-1", wait: false, timeoutS: undefined }],
    ["abort, then follow", ["abort", "api-1", "--wait"], { kind: "decide", action: "abort", id: "api-1", wait: true, timeoutS: undefined }],
    ["nodes", ["nodes"], { kind: "nodes" }],
    ["help wins over everything", ["update", "--help"], { kind: "help" }],
    ["-h", ["-h"], { kind: "help" }],
  ];
  for (const [name, argv, expected] of ok) test(`parses ${name}`, () => expect(parseArgs(argv)).toEqual(expected as never));

  const bad: [string, string[], RegExp][] = [
    ["nothing", [], /no command/],
    ["an unknown command", ["deploy"], /unknown command "deploy"/],
    ["an unknown option", ["ping", "--force"], /unknown option --force/],
    ["update without branch", ["update"], /update needs --branch/],
    ["a flag another command takes", ["ping", "--branch", "master"], /--branch does not apply to ping/],
    ["a rollout flag on another command", ["ping", "--waves", "1"], /--waves does not apply to ping/],
    ["a wave size that is no size", ["update", "--branch", "m", "--waves", "1,x"], /--waves: waves: "x" is neither/],
    ["a percentage over 100", ["update", "--branch", "m", "--waves", "150%"], /--waves/],
    ["a bake that is not seconds", ["update", "--branch", "m", "--bake", "soon"], /--bake: bake: "soon"/],
    ["an unknown on-failure", ["update", "--branch", "m", "--on-failure", "retry"], /--on-failure: on_failure: "retry" must be rollback or halt/],
    ["an approve that is no wave", ["update", "--branch", "m", "--approve", "0"], /--approve/],
    ["a flag value smuggling another key", ["update", "--branch", "m", "--waves", "1 bake=0"], /--waves takes one value/],
    ["a branch git would read as an option", ["update", "--branch", "--upload-pack=x"], /--branch needs a value|branch/],
    ["an unsafe branch", ["update", "--branch", "a..b"], /args.branch: is not a safe branch name/],
    ["a commit that is not hex", ["update", "--branch", "master", "--commit", "HEAD~1"], /args.commit/],
    ["an unknown signal", ["signal", "--service", "web", "--signal", "KILL"], /args.signal/],
    ["a hook name with a slash", ["hook", "--name", "../x"], /args.name/],
    ["a bad target", ["ping", "--target", "nodes:x"], /--target must be/],
    ["a value missing", ["update", "--branch"], /--branch needs a value/],
    ["a flag twice", ["update", "--branch", "a", "--branch", "b"], /given twice/],
    ["timeout without wait", ["ping", "--timeout", "5"], /only applies with --wait/],
    ["a timeout that is not a number", ["ping", "--wait", "--timeout", "soon"], /positive number/],
    ["status --wait without id", ["status", "--wait"], /needs a deployment id/],
    ["approve without id", ["approve"], /approve needs one deployment id/],
    ["abort with two ids", ["abort", "a", "b"], /abort needs one deployment id/],
    ["a stray argument", ["ping", "extra"], /unexpected argument "extra"/],
  ];
  for (const [name, argv, message] of bad) {
    test(`refuses ${name}`, () => {
      expect(() => parseArgs(argv)).toThrow(UsageError);
      expect(() => parseArgs(argv)).toThrow(message);
    });
  }

  test("readEnv defaults the URL, strips a trailing slash and requires the key", () => {
    expect(readEnv({ ARBEIDER_API_KEY: "k" })).toEqual({ url: "http://127.0.0.1:8080", apiKey: "k" });
    expect(readEnv({ ARBEIDER_URL: "https://d.example/", ARBEIDER_API_KEY: "k" }).url).toBe("https://d.example");
    expect(() => readEnv({})).toThrow(/ARBEIDER_API_KEY is required/);
    expect(() => readEnv({ ARBEIDER_URL: "d.example", ARBEIDER_API_KEY: "k" })).toThrow(/ARBEIDER_URL/);
  });
});

describe("SSE parser", () => {
  test("joins data lines, keeps event names, skips comments, survives any chunking", () => {
    const stream = ": hello\r\nevent: deployment\ndata: {\"a\":\ndata: 1}\nid: 7\n\nevent: heartbeat\ndata: {}\n\ndata: no-event\r\n\r\n";
    const expected: SseMessage[] = [
      { event: "deployment", data: '{"a":\n1}', id: "7" },
      { event: "heartbeat", data: "{}", id: "7" },
      { event: "message", data: "no-event", id: "7" },
    ];
    for (const size of [1, 2, 5, stream.length]) {
      const got: SseMessage[] = [];
      const feed = createSseParser((m) => got.push(m));
      for (let i = 0; i < stream.length; i += size) feed(stream.slice(i, i + size));
      expect(got).toEqual(expected);
    }
  });
});

const failed = (reason = "update script exited with status 1", output?: string) => ({ state: "failed", at: at(900), reason, durationMs: 800, ...(output ? { output } : {}) });

describe("outcome: the exit status is the server's verdict", () => {
  const cases: [string, Deployment, { done: boolean; code?: number; why?: string }][] = [
    ["running", deployment({ n1: ok() }), { done: false }],
    ["failed while another node still runs (no finishedAt)", deployment({ n1: failed(), n2: { state: "started", at: at(5) } }, { state: "failed" }), { done: false }],
    ["succeeded", deployment({ n1: ok(), n2: ok() }, { state: "succeeded", finishedAt: at(1200) }), { done: true, code: 0, why: "2 of 2 nodes succeeded" }],
    ["a skip counts as done", deployment({ n1: ok(), n2: { state: "skipped", at: at(1) } }, { state: "succeeded", finishedAt: at(1200) }), { done: true, code: 0 }],
    ["failed: names the nodes", deployment({ n1: ok(), n2: failed() }, { state: "failed", finishedAt: at(1200) }), { done: true, code: 1, why: "n2 failed" }],
    ["rolled back: says why", deployment({ n1: failed() }, { state: "rolled_back", finishedAt: at(2000), reason: "1 node failed, 0 tolerated" }), { done: true, code: 1, why: "rolled back: 1 node failed, 0 tolerated" }],
    ["superseded", deployment({ n1: ok() }, { state: "superseded", finishedAt: at(2000), supersededBy: "api-2" }), { done: true, code: 1, why: "superseded by api-2" }],
    ["aborted and halted", deployment({ n1: ok() }, { state: "failed", finishedAt: at(2000), reason: "aborted by the operator (api)" }), { done: true, code: 1, why: "aborted by the operator (api)" }],
    ["paused waits for an approval", deployment({ n1: ok() }, { state: "paused", pausedAfter: 1 }), { done: false }],
    // The server decides about a deployment no node was online for; the CLI no longer guesses after 10 s.
    ["queued for nobody, long after its creation", deployment({}, { expected: [], state: "queued", reason: "no online node matches group:x" }), { done: false }],
  ];
  for (const [name, d, expected] of cases) test(name, () => expect(outcome(d)).toMatchObject(expected));
});

describe("renderDeployment", () => {
  test("draws a heading, one line per node with state, commit and duration, and the server's summary", () => {
    const d = deployment({ n1: ok(), n2: { state: "started", at: at(1000) }, extra: { state: "failed", at: at(900), reason: "update.sh exited 3", durationMs: 800 } });
    expect(renderDeployment(d, T0 + 3500)).toEqual([
      "api-1  update master → all  3.5s",
      "  ✔ n1     succeeded  1111111 → 2222222     1.2s",
      "  ▶ n2     started                          2.5s",
      "  ✘ extra  failed                          800ms  update.sh exited 3",
      "  RUNNING  1 succeeded, 1 running, 1 failed",
    ]);
  });

  test("a finished deployment shows its true duration, finishedAt - createdAt, however late it is read", () => {
    const d = deployment({ n1: ok(), n2: ok() }, { state: "succeeded", finishedAt: at(1200) });
    expect(renderDeployment(d, T0 + 3_600_000)[0]).toBe("api-1  update master → all  took 1.2s");
    expect(renderDeployment(d, T0 + 3_600_000).at(-1)).toBe("  SUCCEEDED  2 succeeded");
  });

  const nodes = Array.from({ length: 10 }, (_, i) => `n${i + 1}`);
  const waves = (states: string[]) => [
    { nodes: nodes.slice(0, 1), state: states[0], startedAt: at(0), finishedAt: at(5000) },
    { nodes: nodes.slice(1, 5), state: states[1], startedAt: at(5000), finishedAt: at(10_000) },
    { nodes: nodes.slice(5), state: states[2] },
  ];
  const strategy = { waves: [1, 5, "100%"], bake: 30, max_failures: 0, on_failure: "rollback", approve: [1] } as Deployment["strategy"];

  test("a rollout shows where it is: wave 2/3 · 5 of 10 nodes · baking 20 s, and its nodes wave by wave", () => {
    const d = deployment(Object.fromEntries(nodes.slice(0, 5).map((n) => [n, ok()])), { expected: nodes, strategy, waves: waves(["succeeded", "baking", "pending"]) as never });
    const lines = renderDeployment(d, T0 + 20_000);
    expect(lines[1]).toBe("  wave 2/3 · 5 of 10 nodes · baking 20 s");
    expect(lines[2]).toBe("  waves 1, 5, 100% · bake 30 s · on failure: rollback · approval after wave 1");
    expect(lines).toContain("  wave 3 · pending");
    expect(lines.find((line) => line.includes(" n6 "))).toMatch(/○ n6 +pending/);
    expect(renderDeployment(d, T0 + 39_400)[1]).toBe("  wave 2/3 · 5 of 10 nodes · baking 1 s");
  });

  test("a paused rollout says how to approve it", () => {
    const d = deployment({ n1: ok() }, { expected: nodes, strategy, state: "paused", pausedAfter: 1, waves: waves(["succeeded", "pending", "pending"]) as never });
    const lines = renderDeployment(d, T0 + 6000);
    expect(lines[1]).toBe("  wave 1/3 · 1 of 10 nodes · paused");
    expect(lines[3]).toBe("  paused after wave 1: approve with deploy.ts approve api-1 (or stop it with deploy.ts abort api-1)");
  });

  test("a rolled-back rollout shows the reason and each node the rollback sent back", () => {
    const d = deployment({ n1: failed() }, {
      expected: nodes, strategy, state: "rolled_back", finishedAt: at(9000), reason: "1 node failed, 0 tolerated (max_failures): n1 failed",
      waves: waves(["failed", "pending", "pending"]) as never, rollback: { state: "succeeded", nodes: { n1: { state: "succeeded", commit: "1111111aaaa", commitAfter: "1111111aaaa" } } },
    });
    const lines = renderDeployment(d, T0 + 20_000);
    expect(lines).toContain("  1 node failed, 0 tolerated (max_failures): n1 failed");
    expect(lines).toContain("  rollback succeeded: nodes it changed, back to their commit before");
    expect(lines).toContain("  ✔ n1    succeeded  1111111");
    expect(lines.at(-1)).toBe("  ROLLED BACK  1 failed");
  });

  test("on a narrow terminal a reason goes on its own lines under the node instead of being cut off", () => {
    const reason = "unhealthy: health check http://127.0.0.1:8080/healthz did not answer 2xx within 60 s";
    const d = deployment({ n1: failed(reason), n2: ok() });
    const lines = renderDeployment(d, T0 + 5000, undefined, 50);
    const i = lines.findIndex((line) => line.includes("✘ n1"));
    expect(lines[i]).not.toContain("unhealthy");
    expect(lines.slice(i + 1, i + 3).join(" ").replace(/ +/g, " ")).toContain("unhealthy: health check http://127.0.0.1:8080/healthz did");
    expect(lines.join(" ").replace(/\s+/g, " ")).toContain("within 60 s");
    for (const line of lines) expect(visibleLength(line)).toBeLessThanOrEqual(50);
    expect(renderDeployment(d, T0 + 5000, undefined, 30).slice(0, 2)).toEqual(["api-1", "  update master → all  5.0s"]);
    expect(renderDeployment(d, T0 + 5000, undefined, 200)[1]).toContain(reason);
  });

  test("control characters a node put in its name, reason or output never reach the terminal", () => {
    const evil = "\x1b[2J\x1b[Hpwned\nline\x07";
    const d = deployment({ [evil]: { state: "failed", at: at(900), reason: `boom\x1b]0;title\x07\r\nmore`, output: `\x1b[31mred\x1b[0m\n\x07bell` } });
    const lines = [...renderDeployment(d, T0 + 1000), ...failureTails(d), ...outcomeLines(d)];
    for (const line of lines) expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    expect(lines.join("\n")).toContain("boom ]0;title more");
    const rows = nodesTable([{ node: evil, groups: [], commit: null, branch: null, busy: false, version: "1", lastSeen: at(0), online: true, desired: null, lastGood: null, lastOutcome: null, drift: null, latest: false }], T0);
    for (const row of rows) expect(row).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });
});

const outcomeLines = (d: Deployment) => {
  const result = outcome({ ...d, state: "failed", finishedAt: at(1) });
  return result.done ? [result.why] : [];
};

describe("failureTails", () => {
  test("the last 20 lines of each failed node's output, clipped to the terminal", () => {
    const output = `${Array.from({ length: 30 }, (_, i) => `line ${i + 1} ${"x".repeat(i === 29 ? 100 : 0)}`).join("\n")}\n`;
    const d = deployment({ n1: failed("update script exited with status 1", output), n2: ok() }, { state: "failed", finishedAt: at(1) });
    const tail = failureTails(d, 60);
    expect(tail[0]).toBe("output of n1 (last 20 lines):");
    expect(tail[1]).toBe("  line 11 ");
    expect(tail).toHaveLength(21);
    expect(tail.at(-1)).toBe(`  line 30 ${"x".repeat(49)}…`);
    expect(failureTails(deployment({ n1: ok(), n2: ok() }))).toEqual([]);
  });
});

describe("terminal", () => {
  test("clip cuts visible characters only and keeps colour codes", () => {
    expect(clip("\x1b[32mabcdef\x1b[0m", 4)).toBe("\x1b[32mabc…\x1b[0m");
    expect(clip("abcdef", 4)).toBe("abc…");
    expect(clip("abc", 10)).toBe("abc");
  });
  test("wrap breaks at spaces and cuts words longer than a line", () => {
    expect(wrap("aa bb cc dd", 5)).toEqual(["aa bb", "cc dd"]);
    expect(wrap("abcdefghij k", 4)).toEqual(["abcd", "efgh", "ij k"]);
  });
});

describe("run", () => {
  const io = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t), tty: false } };
  };

  test("usage errors exit 2 and point at --help; a typo in a rollout flag is one", async () => {
    for (const argv of [["launch"], ["update", "--branch", "master", "--waves", "1,x"]]) {
      const { err, io: streams } = io();
      expect(await run(argv, { ARBEIDER_API_KEY: "k" }, streams)).toBe(2);
      expect(err.join("")).toContain("--help");
    }
  });

  test("an unreachable webhook exits 2 naming its URL", async () => {
    const server = Bun.serve({ port: 0, fetch: () => new Response() });
    const url = `http://127.0.0.1:${server.port}`;
    server.stop(true);
    const { err, io: streams } = io();
    expect(await run(["ping"], { ARBEIDER_URL: url, ARBEIDER_API_KEY: "k" }, streams)).toBe(2);
    expect(err.join("")).toContain(`Cannot reach the webhook at ${url}`);
  });

  test("update without --commit outside a checkout with an origin exits 2 saying so, before asking the webhook", async () => {
    const dir = tempDir();
    try {
      const { err, io: streams } = io();
      expect(await run(["update", "--branch", "master"], { ARBEIDER_URL: "http://127.0.0.1:9", ARBEIDER_API_KEY: "k" }, { ...streams, cwd: dir })).toBe(2);
      expect(err.join("")).toMatch(/cannot resolve the tip of master: git ls-remote .*origin refs\/heads\/master in .* \(give --commit/);
    } finally {
      removeDirs(dir);
    }
  });

  test("--help lists every command, status ID --wait, the rollout flags and the exit statuses", async () => {
    const { out, io: streams } = io();
    expect(await run(["--help"], {}, streams)).toBe(0);
    const help = out.join("");
    for (const word of ["update", "rollback", "signal", "hook", "ping", "status [ID]", "status ID --wait", "approve ID", "abort ID", "nodes", "--wait", "--timeout", "--waves", "--bake", "--max-failures", "--on-failure", "--approve", "Ctrl-C", "ARBEIDER_URL", "Exit status", "130"]) {
      expect(help).toContain(word);
    }
  });
});
