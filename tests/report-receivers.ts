/**
 * Local HTTP servers that answer the way GitHub's REST API, GitLab's API v4,
 * Slack's incoming webhooks and a notification receiver do, for the
 * reporting tests: 201 with an id on create, 401 on a wrong token, 422 (or
 * GitLab's 400) on a body their documentation does not allow, GitHub's 403
 * secondary rate limit with `retry-after`, 5xx on demand; a receiver can be
 * taken down (connection refused) and brought up again on the same port, or
 * made to never answer. Every request is kept with its headers and JSON body.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export interface Received {
  method: string;
  path: string;
  headers: Record<string, string>;
  raw: string;
  body: any;
  status: number;
  at: number;
  /** For a request left unanswered: whether the client gave up on it. */
  aborted?: boolean;
}

type Answer = { status: number; body?: unknown; headers?: Record<string, string> };
/** An answer given once, to the first request it matches (any, without `match`). */
export type Queued = Answer & { match?: (request: Received) => boolean };
type Handler = (request: Received) => Answer;

export interface Receiver {
  url: string;
  requests: Received[];
  /** Answers that go first, each once, before the handler's (an outage, a rate limit). */
  queue: Queued[];
  /** Never answer (the client must time out). */
  hang: boolean;
  down(): Promise<void>;
  up(): void;
  stop(): Promise<void>;
  /** The requests that got a 2xx answer. */
  ok(): Received[];
}

/** A server on a free port of 127.0.0.1 whose answers come from `handler`. */
export function receiver(handler: Handler): Receiver {
  let server: ReturnType<typeof Bun.serve> | undefined;
  let port = 0;
  const self: Receiver = {
    url: "",
    requests: [],
    queue: [],
    hang: false,
    async down() {
      await server?.stop(true);
      server = undefined;
    },
    up() {
      server = Bun.serve({ hostname: "127.0.0.1", port, fetch: answer });
      port = server.port!;
      self.url = `http://127.0.0.1:${port}`;
    },
    stop: () => self.down(),
    ok: () => self.requests.filter((r) => r.status >= 200 && r.status < 300),
  };
  async function answer(request: Request): Promise<Response> {
    const raw = await request.text();
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      body = undefined;
    }
    const headers = Object.fromEntries([...request.headers].map(([k, v]) => [k.toLowerCase(), v]));
    const got: Received = { method: request.method, path: new URL(request.url).pathname, headers, raw, body, status: 0, at: Date.now() };
    self.requests.push(got);
    if (self.hang) {
      return new Promise<Response>((resolve) => {
        request.signal.addEventListener("abort", () => {
          got.aborted = true;
          resolve(new Response(null, { status: 499 }));
        });
      });
    }
    const queued = self.queue.findIndex((q) => !q.match || q.match(got));
    const a = queued >= 0 ? self.queue.splice(queued, 1)[0] : handler(got);
    got.status = a.status;
    const text = typeof a.body === "string" ? a.body : a.body === undefined ? "" : JSON.stringify(a.body);
    const type = typeof a.body === "string" ? "text/plain" : "application/json; charset=utf-8";
    return new Response(text, { status: a.status, headers: { "content-type": type, ...a.headers } });
  }
  self.up();
  return self;
}

const GITHUB_DEPLOYMENT_STATES = ["error", "failure", "inactive", "in_progress", "queued", "pending", "success"];
const GITHUB_COMMIT_STATES = ["error", "failure", "pending", "success"];

/** GitHub's answer when a field is missing or not allowed. */
const invalid = (field: string) => ({ status: 422, body: { message: "Validation Failed", errors: [{ resource: "Deployment", field, code: "invalid" }], documentation_url: "https://docs.github.com/rest" } });

/** GitHub's REST API for `owner/name`: deployments, their statuses, commit statuses. */
export function fakeGithub(token: string, repository: string) {
  let next = 1000;
  const deployments = new Map<number, { sha: string; environment: string; statuses: string[] }>();
  const server = receiver((r) => {
    if (r.headers.authorization !== `Bearer ${token}`) return { status: 401, body: { message: "Bad credentials", documentation_url: "https://docs.github.com/rest" } };
    if (!r.headers["user-agent"]) return { status: 403, body: { message: "Request forbidden by administrative rules. Please make sure your request has a User-Agent header" } };
    const b = r.body;
    if (typeof b !== "object" || b === null) return { status: 400, body: { message: "Problems parsing JSON" } };
    const base = `/repos/${repository}`;
    if (r.path === `${base}/deployments`) {
      if (typeof b.ref !== "string") return invalid("ref");
      if (b.required_contexts !== undefined && !Array.isArray(b.required_contexts)) return invalid("required_contexts");
      if (typeof b.description === "string" && b.description.length > 140) return invalid("description");
      const id = next++;
      deployments.set(id, { sha: b.ref, environment: b.environment ?? "production", statuses: [] });
      return { status: 201, body: { id, node_id: `DE_${id}`, sha: b.ref, ref: b.ref, task: b.task ?? "deploy", payload: b.payload ?? {}, environment: b.environment ?? "production" } };
    }
    const status = r.path.match(new RegExp(`^${base}/deployments/(\\d+)/statuses$`));
    if (status) {
      const d = deployments.get(Number(status[1]));
      if (!d) return { status: 404, body: { message: "Not Found" } };
      if (!GITHUB_DEPLOYMENT_STATES.includes(b.state)) return invalid("state");
      if (typeof b.description === "string" && b.description.length > 140) return invalid("description");
      d.statuses.push(b.state);
      return { status: 201, body: { id: next++, state: b.state, environment: d.environment } };
    }
    if (new RegExp(`^${base}/statuses/[0-9a-f]{40}$`).test(r.path)) {
      if (!GITHUB_COMMIT_STATES.includes(b.state)) return invalid("state");
      return { status: 201, body: { id: next++, state: b.state, context: b.context ?? "default" } };
    }
    return { status: 404, body: { message: "Not Found" } };
  });
  return { server, deployments };
}

/** GitLab's API v4 commit statuses for project `project`; like GitLab, it refuses the same status twice in a row. */
export function fakeGitlab(token: string, project: string) {
  let next = 1;
  const current = new Map<string, string>();
  const server = receiver((r) => {
    if (r.headers["private-token"] !== token) return { status: 401, body: { message: "401 Unauthorized" } };
    const m = r.path.match(/^\/api\/v4\/projects\/([^/]+)\/statuses\/([0-9a-f]{40})$/);
    if (!m || decodeURIComponent(m[1]) !== project) return { status: 404, body: { message: "404 Project Not Found" } };
    const state = r.body?.state;
    if (!["pending", "running", "success", "failed", "canceled"].includes(state)) return { status: 400, body: { error: "state does not have a valid value" } };
    const key = `${m[2]} ${r.body.name ?? "default"}`;
    if (current.get(key) === state) return { status: 400, body: { message: `Cannot transition status via :${state === "running" ? "run" : state} from :${state}` } };
    current.set(key, state);
    return { status: 201, body: { id: next++, sha: m[2], status: state, name: r.body.name } };
  });
  return { server, current };
}

/** A Slack incoming webhook: "ok", or the error word Slack answers with. */
export function fakeSlack() {
  return receiver((r) => {
    if (r.path !== "/services/T0001/B0001/s3cr3tSlackPath") return { status: 404, body: "no_service" };
    if (typeof r.body?.text !== "string" || r.body.text === "") return { status: 400, body: "no_text" };
    if (r.body.blocks !== undefined && !Array.isArray(r.body.blocks)) return { status: 400, body: "invalid_blocks" };
    return { status: 200, body: "ok" };
  });
}

/** Whether `header` is `sha256=<hex HMAC-SHA256 of raw under secret>`, checked the way a receiver should. */
export function signatureValid(secret: string, raw: string, header: string | undefined): boolean {
  const expected = Buffer.from(`sha256=${createHmac("sha256", secret).update(raw).digest("hex")}`);
  const given = Buffer.from(header ?? "");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** A notification receiver: 204 for a body signed with `secret`, 401 for any other. */
export function fakeNotify(secret: string) {
  return receiver((r) => (signatureValid(secret, r.raw, r.headers["x-arbeider-signature"]) ? { status: 204 } : { status: 401, body: { error: "bad signature" } }));
}
