/**
 * docs/api.md's walkthrough, run as a reader runs it: its setup (keys, an
 * origin, `bun webhook.ts` and `bun worker.ts` in the background), every line
 * of its requests in order, then its cleanup, in one bash in the repository.
 * Only the fleet and the port are this test's own (the page's `try` and 8080
 * could be in use); each `curl` line of the requests also prints its status,
 * which must be 2xx, and the node's checkout must end at origin's tip.
 */
import { afterAll, expect, test } from "bun:test";
import { ROOT, freePort, openFleet } from "./helpers.ts";
import { markedBlocks, readerEnv, replaceAll, runShell } from "./doc-blocks.ts";

const fleets: { cleanup(): Promise<void> }[] = [];
afterAll(() => Promise.all(fleets.map((f) => f.cleanup())));

/** Each logical line (continuations joined) of `code`; a `curl` line also prints `status <n> <http code>`. */
function withStatuses(code: string): { script: string; curls: string[] } {
  const curls: string[] = [];
  const lines = code.replaceAll("\\\n", " ").split("\n").map((line) => {
    if (!line.startsWith("curl ")) return line;
    curls.push(line);
    // The event stream never ends by itself: cut it after a moment, as Ctrl-C would.
    const cut = line.includes("/api/events") ? " --max-time 1" : "";
    return `printf 'status ${curls.length} %s\\n' "$(${line} -o /dev/null -w '%{http_code}'${cut})"`;
  });
  return { script: lines.join("\n"), curls };
}

test("docs/api.md's walkthrough works as written: a webhook and a worker, every curl line 2xx, the node at origin's tip", async () => {
  const blocks = markedBlocks("api.md", "api-test");
  expect(blocks.map((b) => b.tag)).toEqual(["setup", "requests", "cleanup"]);
  const [setup, requests, cleanup] = blocks;
  const fleet = await openFleet("docs-api");
  fleets.push(fleet);
  fleet.track("web-1");
  const port = await freePort();
  const own = (code: string) => replaceAll(code, [["ARBEIDER_FLEET=try", `ARBEIDER_FLEET=${fleet.fleet}`], ["127.0.0.1:8080", `127.0.0.1:${port}`]]);
  const { script, curls } = withStatuses(requests!.code);
  expect(curls.length).toBeGreaterThanOrEqual(10);
  // What the test looks at before the page's cleanup removes the folder: where the node's checkout and origin's master are.
  const look = `echo "node at $(git -C "$try/web-1" rev-parse HEAD)"; echo "origin at $(git -C "$try/origin.git" rev-parse master)"`;

  const result = await runShell([own(setup!.code), script, look, cleanup!.code].join("\n"), {
    cwd: ROOT,
    env: readerEnv({ PORT: String(port) }),
    timeoutMs: 50_000,
  });
  const output = result.stdout + result.stderr;
  expect({ code: result.code, timedOut: result.timedOut }, output).toEqual({ code: 0, timedOut: false });
  const statuses = Object.fromEntries([...result.stdout.matchAll(/^status (\d+) (\d+)$/gm)].map((m) => [curls[Number(m[1]) - 1]!, m[2]!.startsWith("2") ? "2xx" : m[2]]));
  expect(statuses).toEqual(Object.fromEntries(curls.map((c) => [c, "2xx"])));
  const node = /^node at ([0-9a-f]{40})$/m.exec(result.stdout)?.[1];
  expect(node, output).toBe(/^origin at ([0-9a-f]{40})$/m.exec(result.stdout)?.[1]);
}, 60_000);
