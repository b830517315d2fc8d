/**
 * How a deployment reads to a person, the same in the command-line client and
 * on the dashboard: one phrase for what it does, short commits, durations and
 * ages. Pure.
 */

/** The first 7 hex digits of a commit, or "" for none. */
export const shortSha = (sha: string | null | undefined): string => (sha ? sha.slice(0, 7) : "");

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

/** `850ms`, `12.3s`, `4m05s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/** How long ago `iso` was, roughly: `4s ago`, `3m ago`, `2h ago`, `5d ago`. */
export function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}
