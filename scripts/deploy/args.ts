/**
 * The command line of `scripts/deploy.ts`, parsed into one plain value: what
 * to ask the webhook for and how to follow it. Pure; the request is checked
 * with the same schemas the webhook and the workers use, so a typo is a usage
 * error here, not a rejected deployment on every node.
 */
import * as v from "valibot";
import { Action, Target, describeIssues } from "../../shared/protocol.ts";

export const USAGE = `Usage: bun scripts/deploy.ts <command> [options]

Commands
  update --branch B [--commit C]     check out branch B (at commit C, else its tip) and run update.sh
  rollback [--commit C]              go back to commit C, or to the commit before the last update
  signal --service S --signal SIG    send SIG (HUP USR1 USR2 TERM INT QUIT) to service S's pidfile
  hook --name N                      run the executable N in the workers' ARBEIDER_HOOKS_DIR
  ping                               every node answers with its commit and branch
  status [ID]                        recent deployments as a table, or deployment ID node by node
  nodes                              every node: groups, branch, commit, busy, online, last seen

Options
  --target T      all (default), group:<name> or node:<id>
  --wait          follow the deployment live until every expected node has finished;
                  on a terminal one line per node is redrawn, otherwise lines are appended
  --timeout S     with --wait: give up after S seconds (exit 1)
  -h, --help      this text

Environment
  ARBEIDER_URL      the webhook, e.g. https://deploy.example.com (default http://127.0.0.1:8080)
  ARBEIDER_API_KEY  the webhook's API key (sent as a bearer token)
  NO_COLOR          when set, --wait prints plain lines even on a terminal

Exit status
  0  every expected node succeeded (or skipped the command); without --wait: the webhook accepted it
  1  a node failed, rejected the command or went missing; --timeout expired; the webhook refused it
  2  usage error, missing ARBEIDER_API_KEY, key refused, or the webhook cannot be reached
`;

/** A problem with the command line or the environment: exit status 2. */
export class UsageError extends Error {}

export type DeployRequest = { command: Action["command"]; target?: string; args: Record<string, string> };

export type Invocation =
  | { kind: "help" }
  | { kind: "deploy"; request: DeployRequest; wait: boolean; timeoutS?: number }
  | { kind: "status"; id?: string; wait: boolean; timeoutS?: number }
  | { kind: "nodes" };

const VALUE_FLAGS = ["branch", "commit", "target", "service", "signal", "name", "timeout"] as const;
type ValueFlag = (typeof VALUE_FLAGS)[number];

/** Which value flags each command takes, and which it cannot do without. */
const FLAGS: Record<string, { takes: ValueFlag[]; needs: ValueFlag[] }> = {
  update: { takes: ["branch", "commit"], needs: ["branch"] },
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

  if (command === "status" || command === "nodes") {
    if (given.length > 0) throw new UsageError(`--${given[0]} does not apply to ${command}`);
    if (command === "nodes") {
      if (rest.length > 0 || wait) throw new UsageError("nodes takes no arguments");
      return { kind: "nodes" };
    }
    if (rest.length > 1) throw new UsageError("status takes at most one deployment id");
    if (wait && !rest[0]) throw new UsageError("status --wait needs a deployment id");
    return { kind: "status", id: rest[0], wait, timeoutS };
  }

  const flags = FLAGS[command];
  if (!flags) throw new UsageError(`unknown command "${command}"`);
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest[0]}"`);
  for (const flag of given) {
    if (flag !== "target" && !flags.takes.includes(flag)) throw new UsageError(`--${flag} does not apply to ${command}`);
  }
  for (const flag of flags.needs) if (!values[flag]) throw new UsageError(`${command} needs --${flag}`);

  const args = Object.fromEntries(flags.takes.filter((flag) => values[flag] !== undefined).map((flag) => [flag, values[flag]!]));
  const checked = v.safeParse(Action, { command, args });
  if (!checked.success) throw new UsageError(`invalid ${command}: ${describeIssues(checked.issues)}`);
  if (values.target !== undefined) {
    const target = v.safeParse(Target, values.target);
    if (!target.success) throw new UsageError(`--target ${describeIssues(target.issues)}`);
  }
  const request: DeployRequest = { command: command as Action["command"], args, ...(values.target ? { target: values.target } : {}) };
  return { kind: "deploy", request, wait, timeoutS };
}

/** The webhook's address and key from the environment; throws UsageError naming the variable. */
export function readEnv(env: Record<string, string | undefined>): { url: string; apiKey: string } {
  const url = (env.ARBEIDER_URL || "http://127.0.0.1:8080").replace(/\/+$/, "");
  if (!/^https?:\/\/[^\s/]+/.test(url)) throw new UsageError(`ARBEIDER_URL must be an http:// or https:// URL, not "${url}"`);
  const apiKey = env.ARBEIDER_API_KEY ?? "";
  if (!apiKey) throw new UsageError("ARBEIDER_API_KEY is required (the webhook's API key)");
  return { url, apiKey };
}
