/**
 * How a deployment and a node read to a person, the same in the command-line
 * client and on the dashboard: one phrase for what it does, short commits,
 * durations and ages, a rollout's progress (`wave 2/3 · 5 of 10 nodes ·
 * baking 20 s`), a node's condition in one word. Pure, and every function is
 * self-contained (no module-level values, calls only to functions of this
 * file): the dashboard ships their source text to the browser as it is
 * (webhook/dashboard-assets.ts), so both screens word things one way.
 */

/** The first 7 hex digits of a commit, or "" for none. */
export function shortSha(sha: string | null | undefined): string {
  return sha ? sha.slice(0, 7) : "";
}

/** What a deployment does, in one phrase: `update master@1a2b3c4 → all`. */
export function describeDeployment(d: { command: string; target: string; args?: Record<string, string | undefined> }): string {
  const a = d.args ?? {};
  const what =
    d.command === "update" ? `update ${a.branch}${a.commit ? `@${shortSha(a.commit)}` : ""}`
    : d.command === "rollback" ? `rollback${a.commit ? ` to ${shortSha(a.commit)}` : ""}`
    : d.command === "signal" ? `signal ${a.signal} to ${a.service}`
    : d.command === "hook" ? `hook ${a.name}`
    : d.command;
  return `${what} → ${d.target}`;
}

/** `850ms`, `12.3s`, `4m05s`, `2h03m`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/** How long ago `iso` was, roughly: `4s ago`, `3m ago`, `2h ago`, `5d ago`. */
export function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** A deployment's true duration: from creation to `finishedAt`, or to `now` while anything runs. */
export function durationOf(d: { createdAt: string; finishedAt?: string }, now: number): number {
  return (d.finishedAt ? Date.parse(d.finishedAt) : now) - Date.parse(d.createdAt);
}

/** Node counts in one phrase, in the order a deployment goes: `2 succeeded · 1 running · 1 failed · 3 waiting`. */
export function countsPhrase(counts: Record<string, number>, separator = " · "): string {
  const order = ["succeeded", "skipped", "running", "failed", "rejected", "missing", "unhealthy", "waiting"];
  const merged: Record<string, number> = {};
  for (const [state, n] of Object.entries(counts)) {
    const word = state === "received" || state === "started" ? "running" : state;
    merged[word] = (merged[word] ?? 0) + n;
  }
  const rank = (word: string) => (order.includes(word) ? order.indexOf(word) : order.length);
  const words = Object.keys(merged).filter((word) => merged[word] > 0).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1));
  return words.map((word) => `${merged[word]} ${word}`).join(separator);
}

/**
 * A rollout's strategy in one phrase: `waves 1, 30%, 100% · bake 20 s · up to
 * 1 failure · on failure: rollback · approval after wave 1`. A bake, tolerated
 * failures and approvals are named only when there are some.
 */
export function strategyPhrase(s: { waves: (number | string)[]; bake: number; max_failures: number | string; on_failure: string; approve: number[] }): string {
  const parts = [`wave${s.waves.length === 1 ? "" : "s"} ${s.waves.join(", ")}`];
  if (s.bake > 0) parts.push(`bake ${s.bake} s`);
  if (s.max_failures !== 0 && s.max_failures !== "0%") parts.push(`up to ${s.max_failures} failure${s.max_failures === 1 ? "" : "s"}`);
  parts.push(`on failure: ${s.on_failure}`);
  if (s.approve.length > 0) parts.push(`approval after wave${s.approve.length === 1 ? "" : "s"} ${s.approve.join(", ")}`);
  return parts.join(" · ");
}

/**
 * Where a rollout is, in one phrase: the last wave that started, how many of
 * its nodes the rollout has reached so far (waves are cumulative), and what
 * that wave is doing (`baking 20 s` counts down the bake). Undefined for a
 * deployment without waves.
 */
export function waveSummary(
  d: { state: string; waves?: { nodes: string[]; state: string; finishedAt?: string }[]; strategy?: { bake: number } },
  now: number,
): string | undefined {
  const waves = d.waves;
  if (!waves || waves.length === 0) return undefined;
  let current = 0;
  waves.forEach((wave, i) => {
    if (wave.state !== "pending") current = i;
  });
  const wave = waves[current];
  const reached = waves.slice(0, current + 1).reduce((sum, w) => sum + w.nodes.length, 0);
  const total = waves.reduce((sum, w) => sum + w.nodes.length, 0);
  let word = wave.state;
  if (wave.state === "pending") word = d.state === "queued" ? "not started" : "pending";
  else if (d.state === "paused") word = "paused";
  else if (wave.state === "baking" && wave.finishedAt) {
    const left = Date.parse(wave.finishedAt) + (d.strategy?.bake ?? 0) * 1000 - now;
    word = `baking ${Math.max(0, Math.ceil(left / 1000))} s`;
  }
  return `wave ${current + 1}/${waves.length} · ${reached} of ${total} node${total === 1 ? "" : "s"} · ${word}`;
}

/**
 * A node in one word, as the node table and `deploy.ts nodes` show it. Being
 * away comes first, then a failure (its last update or check failed, even if
 * HEAD moved), then drift; `on latest` only when the webhook says `latest`.
 */
export function nodeCondition(n: {
  online: boolean;
  stopping?: boolean;
  healthy?: boolean;
  busy: boolean;
  desired: string | null;
  lastOutcome: { state: string } | null;
  drift: string | null;
  latest: boolean;
}): string {
  if (n.stopping) return "stopping";
  if (!n.online) return "offline";
  if (n.healthy === false) return "unhealthy";
  if (n.busy && !n.latest) return "updating";
  if (n.lastOutcome?.state === "failed") return "failed";
  if (n.drift) return n.drift;
  if (n.latest) return "on latest";
  return n.desired ? "behind" : "not deployed";
}

/** The last `count` lines of a command's output, without the final newline's empty line. */
export function outputTail(output: string | undefined, count = 20): string[] {
  if (!output) return [];
  const lines = output.replace(/\r\n/g, "\n").split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.slice(-count);
}
