/**
 * What a worker refuses to run, each case against a real `bun worker.ts` in a
 * fleet of its own: the refusal is reported as an event with its reason, and
 * the marker files update.sh would write prove that nothing ran.
 */
import { afterAll, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { command, head, makeKeys, sign, stopAll } from "./helpers.ts";
import { withNodes, type Nodes } from "./worker-fixture.ts";

setDefaultTimeout(60_000);
afterAll(stopAll);

interface Refusal {
  name: string;
  /** Publishes the message; returns the deployment label the refusal must carry. */
  publish(t: Nodes, commit: string): Promise<string>;
  reason: string;
}

const update = (t: Nodes, commit: string, extra: object = {}) =>
  command(t.fleet.fleet, { command: "update", args: { branch: "master", commit }, ...extra });

const refusals: Refusal[] = [
  {
    name: "an unsigned command",
    reason: "bad signature",
    async publish(t, commit) {
      const cmd = update(t, commit);
      await t.fleet.publishRaw(sign(cmd, t.keys.key).bytes, "all", null);
      return cmd.deployment;
    },
  },
  {
    name: "a command signed by another key",
    reason: "bad signature",
    async publish(t, commit) {
      const cmd = update(t, commit);
      await t.fleet.publish(cmd, makeKeys(join(t.dir, "other-keys")).key);
      return cmd.deployment;
    },
  },
  {
    name: "a body changed after signing",
    reason: "bad signature",
    async publish(t, commit) {
      const cmd = update(t, t.base);
      const { signature } = sign(cmd, t.keys.key);
      await t.fleet.publishRaw(sign({ ...cmd, args: { branch: "master", commit } }, t.keys.key).bytes, "all", signature);
      return cmd.deployment;
    },
  },
  {
    name: "an unsigned body whose deployment is not a safe label",
    reason: "bad signature",
    async publish(t, commit) {
      await t.fleet.publishRaw(sign(update(t, commit, { deployment: "../etc/passwd" }), t.keys.key).bytes, "all", null);
      return "unknown";
    },
  },
  {
    name: "a command for another fleet",
    reason: "fleet: signed for fleet elsewhere",
    async publish(t, commit) {
      return (await t.send({ ...update(t, commit), fleet: "elsewhere" }, "all")).deployment;
    },
  },
  {
    name: "an expired command",
    reason: "expired",
    async publish(t, commit) {
      const past = new Date(Date.now() - 1000).toISOString();
      return (await t.send({ ...update(t, commit), expiresAt: past })).deployment;
    },
  },
  {
    name: "a command signed for another node but published to this node's routing key",
    reason: "target: node:n2 does not name node n1",
    async publish(t, commit) {
      return (await t.send({ ...update(t, commit), target: "node:n2" }, "node.n1")).deployment;
    },
  },
  {
    name: "a command that does not fit the schema",
    reason: "schema: args.restart: ",
    async publish(t, commit) {
      return (await t.send({ command: "update", args: { branch: "master", commit, restart: "yes" } as never })).deployment;
    },
  },
  {
    name: "a command with a top-level field the schema does not name",
    reason: 'schema: restart: Invalid key: Expected never but received "restart"',
    async publish(t, commit) {
      return (await t.send({ ...update(t, commit), restart: "yes" } as never)).deployment;
    },
  },
  {
    name: "a branch that git would read as an option",
    reason: "schema: args.branch: is not a safe branch name",
    async publish(t) {
      return (await t.send({ command: "update", args: { branch: `--upload-pack=touch ${t.marker("pwned")}` } })).deployment;
    },
  },
  {
    name: "a commit that is a revision expression",
    reason: "schema: args.commit: must be 7 to 40 lowercase hex digits",
    async publish(t) {
      return (await t.send({ command: "update", args: { branch: "master", commit: "HEAD~1" } })).deployment;
    },
  },
];

for (const refusal of refusals) {
  test.concurrent(`worker rejects ${refusal.name} and runs nothing`, () =>
    withNodes([{ id: "n1" }], async (t) => {
      await t.start("n1");
      const v2 = t.origin.commit("master", { "app.txt": "v2\n" }, "v2");
      const deployment = await refusal.publish(t, v2);
      const event = await t.fleet.waitState(deployment, "n1", ["received", "started", "succeeded", "failed", "rejected", "skipped"]);
      expect(event.state).toBe("rejected");
      expect(event.reason).toStartWith(refusal.reason);
      expect(t.runs("n1")).toEqual([]);
      expect(existsSync(t.marker("pwned"))).toBe(false);
      expect(head(t.repos.n1)).toBe(t.base);
    }),
  );
}

test.concurrent("the same signed message published twice runs once; the copy is skipped as a duplicate", () =>
  withNodes([{ id: "n1" }], async (t) => {
    await t.start("n1");
    const v2 = t.origin.commit("master", { "app.txt": "v2\n" }, "v2");
    const { bytes, signature } = sign(update(t, v2), t.keys.key);
    await t.fleet.publishRaw(bytes, "all", signature);
    await t.fleet.publishRaw(bytes, "all", signature);
    const deployment = JSON.parse(new TextDecoder().decode(bytes)).deployment;
    await t.fleet.waitState(deployment, "n1", ["skipped"]);
    expect(t.fleet.of(deployment, "n1").map((e) => [e.state, e.reason])).toEqual([
      ["received", undefined],
      ["started", undefined],
      ["succeeded", undefined],
      ["skipped", "duplicate"],
    ]);
    expect(t.runs("n1")).toHaveLength(1);
  }),
);

test.concurrent("an update issued before the update already applied is skipped as superseded", () =>
  withNodes([{ id: "n1" }], async (t) => {
    await t.start("n1");
    const v2 = t.origin.commit("master", { "app.txt": "v2\n" }, "v2");
    const v3 = t.origin.commit("master", { "app.txt": "v3\n" }, "v3");
    const older = update(t, v2, { issuedAt: new Date(Date.now() - 60_000).toISOString() });
    const newer = await t.send(update(t, v3));
    expect(await t.outcome(newer, "n1")).toMatchObject({ state: "succeeded", commitAfter: v3 });
    await t.fleet.publish(older, t.keys.key);
    const skipped = await t.outcome(older, "n1");
    expect(skipped.state).toBe("skipped");
    expect(skipped.reason).toStartWith("superseded");
    expect(head(t.repos.n1)).toBe(v3);
    expect(t.runs("n1")).toHaveLength(1);
  }),
);
