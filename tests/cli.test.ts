/**
 * The pure parts of `scripts/deploy.ts`: argument parsing, the SSE parser,
 * drawing a deployment, the exit-status decision, and `follow` driven by a
 * recorded client (the real webhook is in tests/cli-wait.test.ts).
 */
import { describe, expect, test } from "bun:test";
import { parseArgs, readEnv, UsageError } from "../scripts/deploy/args.ts";
import { createSseParser, type SseMessage } from "../scripts/deploy/sse.ts";
import { clip, mergeEvent, nodesTable, outcome, plain, renderDeployment, type Deployment } from "../scripts/deploy/view.ts";
import { follow } from "../scripts/deploy/follow.ts";
import type { Client } from "../scripts/deploy/client.ts";
import { run } from "../scripts/deploy.ts";

describe("parseArgs", () => {
  const ok: [string, string[], unknown][] = [
    ["update with branch and commit", ["update", "--branch", "master", "--commit", "abc1234"], { kind: "deploy", wait: false, timeoutS: undefined, request: { command: "update", args: { branch: "master", commit: "abc1234" } } }],
    ["--flag=value and a target", ["update", "--branch=release/2", "--target=group:web", "--wait", "--timeout", "30"], { kind: "deploy", wait: true, timeoutS: 30, request: { command: "update", target: "group:web", args: { branch: "release/2" } } }],
    ["rollback without commit", ["rollback"], { kind: "deploy", wait: false, timeoutS: undefined, request: { command: "rollback", args: {} } }],
    ["signal", ["signal", "--service", "web", "--signal", "HUP", "--target", "node:n1"], { kind: "deploy", wait: false, timeoutS: undefined, request: { command: "signal", target: "node:n1", args: { service: "web", signal: "HUP" } } }],
    ["hook", ["hook", "--name", "clear-cache"], { kind: "deploy", wait: false, timeoutS: undefined, request: { command: "hook", args: { name: "clear-cache" } } }],
    ["ping", ["ping", "--wait"], { kind: "deploy", wait: true, timeoutS: undefined, request: { command: "ping", args: {} } }],
    ["status list", ["status"], { kind: "status", id: undefined, wait: false, timeoutS: undefined }],
    ["status of one, waiting", ["status", "api-1", "--wait", "--timeout", "1.5"], { kind: "status", id: "api-1", wait: true, timeoutS: 1.5 }],
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

const T0 = Date.parse("2030-01-01T00:00:00Z");
const at = (ms: number) => new Date(T0 + ms).toISOString();
type Loose = Record<string, { state: string; at: string; reason?: string; durationMs?: number; commitBefore?: string; commitAfter?: string }>;
/** A served deployment, with states as plain strings for short tables. */
function deployment(nodes: Loose, expected = ["n1", "n2"], state = "running"): Deployment {
  return { id: "api-1", command: "update", target: "all", args: { branch: "master" }, source: { provider: "api" }, createdAt: at(0), expiresAt: at(3_600_000), state, expected, nodes } as Deployment;
}
const ok = (ms = 1200) => ({ state: "succeeded", at: at(ms), commitBefore: "1111111aaaa", commitAfter: "2222222bbbb", durationMs: ms });

describe("outcome", () => {
  const cases: [string, Deployment, { done: boolean; code?: number }][] = [
    ["nobody reported yet", deployment({}), { done: false }],
    ["one node still running", deployment({ n1: ok(), n2: { state: "started", at: at(5) } }), { done: false }],
    ["every expected node succeeded", deployment({ n1: ok(), n2: ok() }), { done: true, code: 0 }],
    ["a skip counts as success", deployment({ n1: ok(), n2: { state: "skipped", at: at(1), reason: "duplicate" } }), { done: true, code: 0 }],
    ["a failure", deployment({ n1: ok(), n2: { state: "failed", at: at(1), reason: "update.sh exited 1" } }), { done: true, code: 1 }],
    ["a rejection", deployment({ n1: ok(), n2: { state: "rejected", at: at(1), reason: "expired" } }), { done: true, code: 1 }],
    ["a missing node", deployment({ n1: ok(), n2: { state: "missing", at: at(1) } }), { done: true, code: 1 }],
    ["an unexpected node still running is waited for", deployment({ n1: ok(), n2: ok(), n3: { state: "received", at: at(1) } }), { done: false }],
    ["an unexpected node that failed fails it", deployment({ n1: ok(), n2: ok(), n3: { state: "failed", at: at(1) } }), { done: true, code: 1 }],
    ["no node expected and none reported for 10 s", deployment({}, []), { done: true, code: 1 }],
  ];
  for (const [name, d, expected] of cases) test(name, () => expect(outcome(d, T0 + 10_000)).toMatchObject(expected));
  test("no node expected: a node gets 10 s to report before the deployment counts as failed", () => {
    expect(outcome(deployment({}, []), T0 + 9_000)).toEqual({ done: false });
    expect(outcome(deployment({ n1: ok() }, []), T0 + 1_000)).toMatchObject({ done: true, code: 0 });
  });
});

describe("mergeEvent", () => {
  test("applies a newer state and ignores an older one arriving late", () => {
    let d = deployment({});
    d = mergeEvent(d, { deployment: "api-1", node: "n1", state: "started", at: at(10) } as never);
    d = mergeEvent(d, { node: "n1", ...ok(20) });
    d = mergeEvent(d, { node: "n1", state: "received", at: at(5) });
    expect(d.nodes.n1.state).toBe("succeeded");
    expect(mergeEvent(d, { state: "created", at: at(0) })).toBe(d);
  });
});

describe("renderDeployment", () => {
  test("draws a heading, one line per node with state, commit and duration, and a summary", () => {
    const d = deployment({ n1: ok(), n2: { state: "started", at: at(1000) }, extra: { state: "failed", at: at(900), reason: "update.sh exited 3", durationMs: 800 } });
    const lines = renderDeployment(d, T0 + 3500, plain);
    expect(lines).toEqual([
      "api-1  update master → all  3.5s",
      "  ✔ n1     succeeded  1111111 → 2222222     1.2s",
      "  ▶ n2     started                          2.5s",
      "  ✘ extra  failed                          800ms  update.sh exited 3",
      "  RUNNING  1 succeeded, 1 running, 1 failed",
    ]);
  });

  test("a waiting node is shown as waiting and the word names the overall state", () => {
    const lines = renderDeployment(deployment({ n1: ok() }, ["n1", "n2"], "queued"), T0, plain);
    expect(lines[2]).toContain("waiting");
    expect(lines.at(-1)).toBe("  QUEUED  1 succeeded, 1 waiting");
    expect(renderDeployment(deployment({ n1: ok(), n2: ok() }), T0, plain).at(-1)).toBe("  SUCCEEDED  2 succeeded");
  });

  test("control characters a node put in its name or reason never reach the terminal", () => {
    const evil = "\x1b[2J\x1b[Hpwned\nline\x07";
    const lines = renderDeployment(deployment({ [evil]: { state: "failed", at: at(900), reason: `boom\x1b]0;title\x07\r\nmore` } }), T0 + 1000, plain);
    for (const line of lines) expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    expect(lines.join("\n")).toContain("boom ]0;title more");
    const rows = nodesTable([{ node: evil, groups: [], commit: null, branch: null, busy: false, lastSeen: new Date(T0).toISOString(), online: true }], T0);
    for (const row of rows) expect(row).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });

  test("clip cuts visible characters only and keeps colour codes", () => {
    expect(clip("\x1b[32mabcdef\x1b[0m", 4)).toBe("\x1b[32mabc…\x1b[0m");
    expect(clip("abc", 10)).toBe("abc");
  });
});

/** A client that serves `reads` in order for GET and pushes SSE text on demand. */
function recordedClient(reads: (Deployment | undefined)[]) {
  let push!: (text: string) => void;
  let reading = 0;
  const client: Client = {
    create: async () => ({ deployment: "api-1", duplicate: false }),
    deployment: async () => reads[Math.min(reading++, reads.length - 1)],
    deployments: async () => [],
    nodes: async () => [],
    events: async () =>
      new Response(new ReadableStream<Uint8Array>({ start: (c) => void (push = (text) => c.enqueue(new TextEncoder().encode(text))) })),
  };
  return { client, push: (text: string) => push(text), reads: () => reading };
}

describe("follow", () => {
  test("appends a line per state change, applies live events and exits 0 when every node succeeded", async () => {
    const { client, push } = recordedClient([deployment({})]);
    const out: string[] = [];
    const done = follow(client, "api-1", { write: (t) => void out.push(t), tty: false, pollMs: 60_000 });
    const event = (node: string, body: object) => push(`event: deployment\ndata: ${JSON.stringify({ v: 1, deployment: "api-1", command: "c", node, ...body })}\n\n`);
    while (!out.join("").includes("waiting")) await Bun.sleep(5);
    push("event: heartbeat\ndata: {\"node\":\"n1\"}\n\n");
    event("n1", { state: "started", at: at(1) });
    event("n1", ok());
    push(`event: state\ndata: ${JSON.stringify(deployment({ n1: ok(), n2: ok() }, ["n1", "n2"], "succeeded"))}\n\n`);
    expect(await done).toBe(0);
    const text = out.join("");
    expect(text).toMatch(/n1 +started/);
    expect(text).toMatch(/n2 +succeeded/);
    expect(text.trimEnd().split("\n").at(-1)).toBe("ok: 2 of 2 nodes succeeded");
    expect(text).not.toContain("\x1b[");
  });

  test("on a terminal it redraws in place and exits 1 when a node failed", async () => {
    const failed = deployment({ n1: ok(), n2: { state: "failed", at: at(2), reason: "update.sh exited 1" } }, ["n1", "n2"], "failed");
    const { client } = recordedClient([deployment({ n1: { state: "started", at: at(1) } }), failed]);
    const out: string[] = [];
    const code = await follow(client, "api-1", { write: (t) => void out.push(t), tty: true, pollMs: 10 });
    expect(code).toBe(1);
    expect(out.join("")).toContain("\x1b[4A\r\x1b[J");
    expect(out.at(-1)).toBe("FAILED: n2 failed\n");
  });

  test("gives up at the timeout with exit 1", async () => {
    const { client } = recordedClient([deployment({})]);
    const out: string[] = [];
    expect(await follow(client, "api-1", { write: (t) => void out.push(t), tty: false, timeoutMs: 50, pollMs: 10 })).toBe(1);
    expect(out.at(-1)).toContain("gave up waiting after 0.05 s");
  });
});

describe("run", () => {
  const io = () => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t), tty: false } };
  };

  test("usage errors exit 2 and point at --help", async () => {
    const { err, io: streams } = io();
    expect(await run(["launch"], { ARBEIDER_API_KEY: "k" }, streams)).toBe(2);
    expect(err.join("")).toContain("--help");
  });

  test("an unreachable webhook exits 2 naming its URL", async () => {
    const server = Bun.serve({ port: 0, fetch: () => new Response() });
    const url = `http://127.0.0.1:${server.port}`;
    server.stop(true);
    const { err, io: streams } = io();
    expect(await run(["ping"], { ARBEIDER_URL: url, ARBEIDER_API_KEY: "k" }, streams)).toBe(2);
    expect(err.join("")).toContain(`Cannot reach the webhook at ${url}`);
  });

  test("--help prints every command and the exit statuses", async () => {
    const { out, io: streams } = io();
    expect(await run(["--help"], {}, streams)).toBe(0);
    for (const word of ["update", "rollback", "signal", "hook", "ping", "status", "nodes", "--wait", "--timeout", "ARBEIDER_URL", "Exit status"]) {
      expect(out.join("")).toContain(word);
    }
  });
});
