/**
 * docs/install.md, followed from nothing to two nodes deploying a commit from
 * a Codeship notification: every `sh` block the guide marks
 * (`<!-- install-test: where -->`) runs as written, in bash, in the guide's
 * order, on the host it names. Hosts are folders: each host's `/etc/arbeider`,
 * `/opt/arbeider` and `/srv/app` are moved into a folder of its own, and its
 * home is where `scp` would have put the files. What the test does instead of
 * the reader: copies those files (the guide's `scp`), starts what each unit's
 * `ExecStart` names with its `EnvironmentFile`, `Environment`,
 * `LoadCredential` and `WorkingDirectory` (instead of `systemctl`), and pushes
 * a commit before the guide plays CI. It puts its own values for the guide's
 * example values (the broker, the fleet, the origin, the address, the port).
 * Not run: package installs, user accounts, the deploy key, the proxy.
 */
import { afterAll, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { AMQP_URL, ROOT, freePort, head, makeOrigin, openFleet, removeDirs, stopAll, tempDir, waitUntil, type Proc } from "./helpers.ts";
import { markedBlocks, readerEnv, replaceAll, shellSession, type Block, type Replacements } from "./doc-blocks.ts";
import { parseEnvironmentFile, startAsSystemd } from "./units.ts";

const dir = tempDir("arbeider-install-");
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  await stopAll();
  for (const cleanup of cleanups) await cleanup();
  removeDirs(dir);
});

const NODES = ["web-1", "web-2"];
/** The folders of a host the guide writes to. */
const PATHS = ["/etc/arbeider", "/opt/arbeider", "/srv/app"];

/** One host of the guide: its files under `root`, its home (where `scp` puts files). */
function host(name: string) {
  const root = join(dir, name);
  const home = join(root, "home");
  mkdirSync(home, { recursive: true });
  const paths: Replacements = PATHS.map((path) => [path, `${root}${path}`] as const);
  return { name, root, home, paths };
}
type Host = ReturnType<typeof host>;

test("docs/install.md as written: a webhook and two workers deploy a commit from a Codeship notification to both checkouts", async () => {
  const fleet = await openFleet("install");
  cleanups.push(() => fleet.cleanup());
  for (const node of NODES) fleet.track(node);
  const origin = makeOrigin(dir);
  origin.commit("master", { "update.sh": '#!/bin/sh\necho "$ARBEIDER_COMMIT" >> deployed\n' }, "An update script");
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const values: Replacements = [
    [/amqps?:\/\/[^\s@]*@rabbitmq\.example\.com:\d+/g, AMQP_URL],
    ["ARBEIDER_FLEET=shop", `ARBEIDER_FLEET=${fleet.fleet}`],
    ["https://deploy.example.com", url],
    ["8080", String(port)],
    ["git@github.com:you/app.git", origin.origin],
  ];
  const blocks = markedBlocks("install.md", "install-test");
  const guide = blocks.map((b) => b.code).join("\n");
  // Each example value the test puts its own in place of is still what the guide uses.
  replaceAll(guide, [...values, ...PATHS.map((path) => [path, path] as const), ["web-1", "web-1"]]);

  const webhookHost = host("webhook-host");
  const nodes = NODES.map(host);
  let apiKey = "";
  const started: Proc[] = [];

  /** One terminal per host (and one on the reader's machine, in the repository), kept open through the guide. */
  const sessions = new Map<string, ReturnType<typeof shellSession>>();
  /** Runs one block on `where` (a host, or the reader's machine) with `extra` replacements. */
  async function runBlock(block: Block, where: Host | undefined, extra: Replacements = []) {
    const name = where?.name ?? "your machine";
    const session = sessions.get(name) ?? sessions.set(name, shellSession(where?.home ?? ROOT, readerEnv())).get(name)!;
    if (!where) session.set({ ARBEIDER_API_KEY: apiKey });
    const result = await session.run(replaceAll(block.code, [...(where?.paths ?? []), ...values, ...extra], false), 40_000);
    const at = `docs/install.md line ${block.line} (${name})`;
    expect({ at, code: result.code }, result.stdout + result.stderr).toEqual({ at, code: 0 });
  }

  /** What `systemctl enable --now <unit>` would start, started on `where`, with `extra` replacements. */
  function startUnit(unit: string, where: Host, extra: Replacements = []): Proc {
    const proc = startAsSystemd(join(where.home, `${unit}.service`), {
      rewrite: (text) => replaceAll(text, [...where.paths, ...extra], false),
      root: where.root,
    });
    started.push(proc);
    return proc;
  }

  const api = async (path: string) => (await fetch(`${url}${path}`, { headers: { Authorization: `Bearer ${apiKey}` } })).json();

  let i = 0;
  while (i < blocks.length) {
    const block = blocks[i]!;
    if (block.tag === "your machine") await runBlock(block, undefined);
    else if (block.tag === "your machine, after a push") {
      const commit = origin.commit("master", { VERSION: "2\n" }, "Release 2");
      await runBlock(block, undefined);
      // Both checkouts at the commit CI approved, and update.sh ran there for it.
      for (const node of nodes) {
        expect(head(join(node.root, "srv/app"))).toBe(commit);
        expect(readFileSync(join(node.root, "srv/app/deployed"), "utf8").trim().split("\n").at(-1)).toBe(commit);
      }
    } else if (block.tag === "webhook host") {
      for (const file of ["dist/webhook.js", "examples/systemd/arbeider-webhook.service"]) copyFileSync(join(ROOT, file), join(webhookHost.home, file.split("/").pop()!));
      await runBlock(block, webhookHost);
      // The reader reads the API key from the webhook's settings once they are written.
      const settings = join(webhookHost.root, "etc/arbeider/webhook.env");
      if (existsSync(settings)) apiKey = parseEnvironmentFile(readFileSync(settings, "utf8")).ARBEIDER_API_KEY ?? "";
    } else if (block.tag === "start arbeider-webhook") {
      const webhook = startUnit("arbeider-webhook", webhookHost);
      await waitUntil(async () => webhook.child.exitCode === null && (await fetch(`${url}/healthz`).catch(() => undefined))?.ok, `the webhook at ${url}:\n${webhook.output()}`, 30_000);
    } else if (block.tag === "each node") {
      // The node section: its blocks up to its unit's start, on each node in turn.
      const section: Block[] = [];
      while (blocks[i]?.tag === "each node") section.push(blocks[i++]!);
      expect(blocks[i]?.tag).toBe("start arbeider-worker");
      for (const [n, node] of nodes.entries()) {
        const own: Replacements = [["web-1", NODES[n]!]];
        copyFileSync(join(ROOT, "dist/worker.js"), join(node.home, "worker.js"));
        copyFileSync(join(ROOT, "examples/systemd/arbeider-worker.service"), join(node.home, "arbeider-worker.service"));
        copyFileSync(join(webhookHost.root, "etc/arbeider/verify.pem"), join(node.home, "verify.pem"));
        for (const part of section) await runBlock(part, node, own);
        const worker = startUnit("arbeider-worker", node, own);
        await worker.waitForLog('"msg":"consuming"', 30_000);
        await waitUntil(async () => ((await api("/api/nodes")) as { nodes: { node: string; online: boolean }[] }).nodes.some((s) => s.node === NODES[n] && s.online), `${NODES[n]} online`);
      }
    } else throw new Error(`docs/install.md line ${block.line}: a block marked "${block.tag}", which this test does not know`);
    i++;
  }
  expect(blocks.map((b) => b.tag).filter((tag, at, all) => all.indexOf(tag) === at)).toEqual([
    "your machine",
    "webhook host",
    "start arbeider-webhook",
    "each node",
    "start arbeider-worker",
    "your machine, after a push",
  ]);
  for (const proc of started) expect(await proc.stop()).toBe(0);
}, 60_000);
