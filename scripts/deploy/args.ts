/**
 * The command line of `scripts/deploy.ts`, parsed into one plain value: what
 * to ask the webhook for and how to follow it. Pure; the request is checked
 * with the same schemas the webhook and the workers use, so a typo is a usage
 * error here, not a rejected deployment on every node.
 */
import * as v from "valibot";
import { Action, Target, describeIssues } from "../../shared/protocol.ts";
import { StrategyError, formatStrategy, parseStrategy, type Strategy } from "../../shared/strategy.ts";

export const USAGE = `Usage: bun scripts/deploy.ts <command> [options]

Commands
  update --branch B [--commit C]     check out branch B at commit C on every node and run update.sh;
                                     without --commit, the tip of B on origin (git ls-remote, here)
  rollback [--commit C]              go back to commit C, or to the commit before the last update
  signal --service S --signal SIG    send SIG (HUP USR1 USR2 TERM INT QUIT) to service S's pidfile
  hook --name N                      run the executable N in the workers' ARBEIDER_HOOKS_DIR
  ping                               every node answers with its commit and branch
  status [ID]                        recent deployments as a table, or deployment ID node by node
  status ID --wait                   follow deployment ID live until it is over
  approve ID                         let a rollout paused after a wave go on
  abort ID                           stop a rollout: no further wave; its --on-failure applies
  nodes                              every node: desired, running and last good commit, drift, state

Options
  --target T          all (default), group:<name> or node:<id>
  --wait              follow the deployment live until the webhook says it is over;
                      on a terminal it is redrawn in place, otherwise lines are appended;
                      Ctrl-C stops following (the deployment goes on) and exits 130
  --timeout S         with --wait: give up after S seconds (exit 1)
  -h, --help          this text

Rollout of an update (docs/rollouts.md; defaults from the webhook's ARBEIDER_ROLLOUT)
  --waves 1,30%,100%  cumulative wave sizes, counts or percentages of the nodes
  --bake S            seconds a finished wave must stay healthy before the next starts
  --max-failures N    failed nodes tolerated (a count or a percentage)
  --on-failure WHAT   rollback (the nodes it changed go back) or halt
  --approve 1,2       pause after these waves until \`deploy.ts approve ID\`

Environment
  ARBEIDER_URL      the webhook, e.g. https://deploy.example.com (default http://127.0.0.1:8080)
  ARBEIDER_API_KEY  the webhook's API key (sent as a bearer token)
  NO_COLOR          when set, --wait prints plain lines even on a terminal

Exit status
  0   the deployment succeeded; without --wait: the webhook accepted it (approve, abort: it agreed)
  1   it failed, was rolled back or superseded; --timeout expired; the webhook refused the request
      (no online node matches the target, a rollout that is not paused cannot be approved, ...)
  2   usage error, missing ARBEIDER_API_KEY, key refused, the webhook cannot be reached,
      or update without --commit and no tip of the branch on origin
  130 interrupted with Ctrl-C while waiting: the deployment goes on
`;

/** A problem with the command line or the environment: exit status 2. */
export class UsageError extends Error {}

export type DeployRequest = { command: Action["command"]; target?: string; args: Record<string, string>; strategy?: string };

export type Invocation =
  | { kind: "help" }
  | { kind: "deploy"; request: DeployRequest; wait: boolean; timeoutS?: number }
  | { kind: "status"; id?: string; wait: boolean; timeoutS?: number }
  | { kind: "decide"; action: "approve" | "abort"; id: string; wait: boolean; timeoutS?: number }
  | { kind: "nodes" };

/** The rollout flags of `update`, and the strategy key each sets. */
const STRATEGY_FLAGS = { waves: "waves", bake: "bake", "max-failures": "max_failures", "on-failure": "on_failure", approve: "approve" } as const;
type StrategyFlag = keyof typeof STRATEGY_FLAGS;

const VALUE_FLAGS = ["branch", "commit", "target", "service", "signal", "name", "timeout", ...(Object.keys(STRATEGY_FLAGS) as StrategyFlag[])] as const;
type ValueFlag = (typeof VALUE_FLAGS)[number];

/** Which value flags each command takes, and which it cannot do without. */
const FLAGS: Record<string, { takes: ValueFlag[]; needs: ValueFlag[] }> = {
  update: { takes: ["branch", "commit", ...(Object.keys(STRATEGY_FLAGS) as StrategyFlag[])], needs: ["branch"] },
  rollback: { takes: ["commit"], needs: [] },
  signal: { takes: ["service", "signal"], needs: ["service", "signal"] },
  hook: { takes: ["name"], needs: ["name"] },
  ping: { takes: [], needs: [] },
};

/** Splits argv into positionals, `--flag value` / `--flag=value` pairs and switches. */
function tokenize(argv: readonly string[]) {
  const positionals: string[] = [];
  const values: Partial<Record<ValueFlag, string>> = {};
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") switches.add("help");
    else if (arg === "--wait") switches.add("wait");
    else if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const flag = (eq < 0 ? arg.slice(2) : arg.slice(2, eq)) as ValueFlag;
      if (!VALUE_FLAGS.includes(flag)) throw new UsageError(`unknown option ${arg.split("=")[0]}`);
      const value = eq < 0 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined || value === "") throw new UsageError(`--${flag} needs a value`);
      if (flag in values) throw new UsageError(`--${flag} is given twice`);
      values[flag] = value;
    } else if (arg.startsWith("-") && arg !== "-") throw new UsageError(`unknown option ${arg}`);
    else positionals.push(arg);
  }
  return { positionals, values, switches };
}

function parseTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || seconds <= 0) throw new UsageError(`--timeout must be a positive number of seconds, not "${value}"`);
  return seconds;
}

/** The invocation `argv` (without `bun scripts/deploy.ts`) asks for; throws UsageError. */
export function parseArgs(argv: readonly string[]): Invocation {
  const { positionals, values, switches } = tokenize(argv);
  if (switches.has("help")) return { kind: "help" };
  const [command, ...rest] = positionals;
  if (!command) throw new UsageError("no command given");
  const wait = switches.has("wait");
  const timeoutS = parseTimeout(values.timeout);
  if (timeoutS !== undefined && !wait) throw new UsageError("--timeout only applies with --wait");
  const given = (Object.keys(values) as ValueFlag[]).filter((flag) => flag !== "timeout");
  if (FLAGS[command]) {
    if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
    return { kind: "deploy", request: deployRequest(command, values, given), wait, timeoutS };
  }
  if (given.length > 0) throw new UsageError(`--${given[0]} does not apply to ${command}`);
  switch (command) {
    case "nodes":
      if (rest.length > 0 || wait) throw new UsageError("nodes takes no arguments");
      return { kind: "nodes" };
    case "status":
      if (rest.length > 1) throw new UsageError("status takes at most one deployment id");
      if (wait && !rest[0]) throw new UsageError("status --wait needs a deployment id");
      return { kind: "status", id: rest[0], wait, timeoutS };
    case "approve":
    case "abort":
      if (rest.length !== 1) throw new UsageError(`${command} needs one deployment id (see \`deploy.ts status\`)`);
      return { kind: "decide", action: command, id: rest[0], wait, timeoutS };
  }
  throw new UsageError(`unknown command "${command}"`);
}

function deployRequest(command: string, values: Partial<Record<ValueFlag, string>>, given: ValueFlag[]): DeployRequest {
  const flags = FLAGS[command];
  for (const flag of given) {
    if (flag !== "target" && !flags.takes.includes(flag)) throw new UsageError(`--${flag} does not apply to ${command}`);
  }
  for (const flag of flags.needs) if (!values[flag]) throw new UsageError(`${command} needs --${flag}`);
  const argFlags = flags.takes.filter((flag) => !(flag in STRATEGY_FLAGS));
  const args = Object.fromEntries(argFlags.filter((flag) => values[flag] !== undefined).map((flag) => [flag, values[flag]!]));
  const checked = v.safeParse(Action, { command, args });
  if (!checked.success) throw new UsageError(`invalid ${command}: ${describeIssues(checked.issues)}`);
  if (values.target !== undefined) {
    const target = v.safeParse(Target, values.target);
    if (!target.success) throw new UsageError(`--target ${describeIssues(target.issues)}`);
  }
  const strategy = strategyOf(values);
  return { command: command as Action["command"], args, ...(values.target ? { target: values.target } : {}), ...(strategy ? { strategy } : {}) };
}

/** The rollout flags as one strategy string, each checked by the webhook's own parser (a typo exits 2 here). */
export function strategyOf(values: Partial<Record<string, string>>): string | undefined {
  const parts: Partial<Strategy>[] = [];
  for (const [flag, key] of Object.entries(STRATEGY_FLAGS)) {
    const value = values[flag];
    if (value === undefined) continue;
    if (/[\s;=]/.test(value)) throw new UsageError(`--${flag} takes one value without spaces, ";" or "=", not "${value}"`);
    try {
      parts.push(parseStrategy(`${key}=${value}`));
    } catch (error) {
      if (error instanceof StrategyError) throw new UsageError(`--${flag}: ${error.message}`);
      throw error;
    }
  }
  return parts.length > 0 ? formatStrategy(Object.assign({}, ...parts)) : undefined;
}

/** The webhook's address and key from the environment; throws UsageError naming the variable. */
export function readEnv(env: Record<string, string | undefined>): { url: string; apiKey: string } {
  const url = (env.ARBEIDER_URL || "http://127.0.0.1:8080").replace(/\/+$/, "");
  if (!/^https?:\/\/[^\s/]+/.test(url)) throw new UsageError(`ARBEIDER_URL must be an http:// or https:// URL, not "${url}"`);
  const apiKey = env.ARBEIDER_API_KEY ?? "";
  if (!apiKey) throw new UsageError("ARBEIDER_API_KEY is required (the webhook's API key)");
  return { url, apiKey };
}
