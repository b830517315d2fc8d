/**
 * The node's health check: ARBEIDER_HEALTH_CMD (an executable, a relative path
 * is in the checkout; exit 0 is healthy) and ARBEIDER_HEALTH_URL (an answer
 * 2xx is healthy); with both set, both must pass. After the update script the
 * worker probes every ARBEIDER_HEALTH_INTERVAL until a probe passes or
 * ARBEIDER_HEALTH_TIMEOUT is over, and each heartbeat makes one probe of its
 * own. Every probe is bounded in time; what one says never shows the URL's
 * credentials or query, which may hold secrets.
 */
import { childEnv, describeEnd, run, type Tail } from "./run.ts";
import type { Settings } from "./settings.ts";

/** The longest one probe may take. */
export const PROBE_MS = 10_000;

export const hasHealthCheck = (settings: Settings) => settings.healthCmd !== undefined || settings.env.ARBEIDER_HEALTH_URL !== undefined;

export interface ProbeOptions {
  /** Epoch ms by which the probe must be done. */
  deadline: number;
  /** Told the health command's process group, when a command is running it. */
  onSpawn?: (pgid: number) => void;
}

/** Why the node is unhealthy now, or undefined when every configured check passes. */
export async function probe(settings: Settings, options: ProbeOptions): Promise<string | undefined> {
  if (settings.healthCmd) {
    const problem = await probeCommand(settings, settings.healthCmd, options);
    if (problem) return problem;
  }
  const url = settings.env.ARBEIDER_HEALTH_URL;
  return url ? probeUrl(url, options.deadline) : undefined;
}

const lastLine = (text: string) => text.trim().split("\n").pop()?.slice(0, 200) || undefined;

async function probeCommand(settings: Settings, path: string, options: ProbeOptions): Promise<string | undefined> {
  const started = Date.now();
  const result = await run([path], {
    cwd: settings.repo,
    deadline: options.deadline,
    onSpawn: options.onSpawn,
    env: childEnv({ ARBEIDER_NODE_ID: settings.env.ARBEIDER_NODE_ID }),
    graceMs: 1000,
  });
  if (result.code === 0 && !result.timedOut) return undefined;
  const said = lastLine(result.stderr) ?? lastLine(result.stdout);
  return `health command ${describeEnd(result, options.deadline - started)}${said ? `: ${said}` : ""}`;
}

async function probeUrl(url: string, deadline: number): Promise<string | undefined> {
  const parsed = new URL(url);
  const shown = `${parsed.origin}${parsed.pathname}`;
  const ms = Math.max(1, deadline - Date.now());
  try {
    // Not following redirects: a 3xx to a login page that answers 200 is no sign of health.
    const response = await fetch(url, { signal: AbortSignal.timeout(ms), redirect: "manual" });
    await response.body?.cancel();
    return response.status >= 200 && response.status < 300 ? undefined : `GET ${shown} answered ${response.status}`;
  } catch (error) {
    const { name, message, code } = error as Error & { code?: string };
    if (name === "TimeoutError" || name === "AbortError") return `GET ${shown} did not answer within ${Math.ceil(ms / 1000)} s`;
    // Some runtimes put the whole URL, credentials and all, into the message.
    return `GET ${shown} failed: ${code ?? message.replaceAll(url, shown).replaceAll(parsed.href, shown)}`;
  }
}

/**
 * Probes until one passes (undefined), or says why the node is still unhealthy
 * (`unhealthy: ...`) once ARBEIDER_HEALTH_TIMEOUT is over. Without a check configured it passes at once.
 */
export async function untilHealthy(settings: Settings, tail: Tail, onSpawn?: (pgid: number) => void): Promise<string | undefined> {
  if (!hasHealthCheck(settings)) return undefined;
  const { ARBEIDER_HEALTH_TIMEOUT: timeout, ARBEIDER_HEALTH_INTERVAL: interval } = settings.env;
  const started = Date.now();
  const end = started + timeout * 1000;
  for (let probes = 1; ; probes++) {
    const at = Date.now();
    const problem = await probe(settings, { deadline: Math.min(end, at + PROBE_MS), onSpawn });
    if (!problem) {
      tail.note(`[arbeider] health check passed (probe ${probes})`);
      return undefined;
    }
    const next = at + interval * 1000;
    if (next >= end) {
      const seconds = Math.round((Date.now() - started) / 1000);
      tail.note(`[arbeider] health check failed ${probes} times, last: ${problem}`);
      return `unhealthy: ${problem} (${probes} probes in ${seconds} s)`;
    }
    await new Promise((resolve) => setTimeout(resolve, next - Date.now()));
  }
}
