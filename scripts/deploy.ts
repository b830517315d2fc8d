/**
 * The command-line client of the webhook's API (docs/cli.md): asks for
 * a deployment (an update pinned to one commit, rolled out in waves if asked),
 * approves or aborts a rollout, and with `--wait` follows it live until the
 * webhook says it is over; `status` and `nodes` print tables.
 *
 *   ARBEIDER_URL=https://deploy.example.com ARBEIDER_API_KEY=... \
 *     bun scripts/deploy.ts update --branch master --waves 1,50% --wait
 *
 * Exit status: 0 the deployment succeeded, 1 it did not (or the webhook
 * refused it), 2 usage error or the webhook cannot be reached, 130 Ctrl-C
 * while waiting. `--help` says all.
 */
import { USAGE, UsageError, parseArgs, readEnv, type Invocation } from "./deploy/args.ts";
import { CliError, createClient, type Client } from "./deploy/client.ts";
import { follow } from "./deploy/follow.ts";
import { branchTip } from "./deploy/git.ts";
import { deploymentsTable, nodeNotes, nodesTable } from "./deploy/tables.ts";
import { ansi, plain } from "./deploy/terminal.ts";
import { outcome, renderDeployment } from "./deploy/view.ts";

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  tty: boolean;
  columns?: number;
  /** Where `update` without --commit asks git for the branch's tip. */
  cwd?: string;
  /** Aborted on Ctrl-C while following a deployment. */
  interrupt?: AbortSignal;
  /** Told when following starts: from then on, Ctrl-C stops following instead of ending the process. */
  following?: () => void;
}

async function execute(invocation: Exclude<Invocation, { kind: "help" }>, client: Client, io: Io): Promise<number> {
  const now = Date.now();
  const wait = (id: string, timeoutS: number | undefined) => {
    io.following?.();
    return follow(client, id, { write: io.out, tty: io.tty, columns: io.columns, timeoutMs: timeoutS === undefined ? undefined : timeoutS * 1000, interrupt: io.interrupt });
  };
  switch (invocation.kind) {
    case "nodes": {
      const nodes = await client.nodes();
      io.out(nodes.length ? `${[...nodesTable(nodes, now), ...nodeNotes(nodes)].join("\n")}\n` : "no node has reported yet\n");
      return 0;
    }
    case "status": {
      if (!invocation.id) {
        const list = await client.deployments(20);
        io.out(list.length ? `${deploymentsTable(list, now).join("\n")}\n` : "no deployments yet\n");
        return 0;
      }
      if (invocation.wait) return wait(invocation.id, invocation.timeoutS);
      const d = await client.deployment(invocation.id);
      if (!d) throw new CliError(1, `no deployment "${invocation.id}" (see \`deploy.ts status\` for recent ones)`);
      io.out(`${renderDeployment(d, now, io.tty ? ansi : plain, io.tty ? io.columns : undefined).join("\n")}\n`);
      const result = outcome(d);
      return result.done ? result.code : 0;
    }
    case "decide": {
      const answer = await client.decide(invocation.id, invocation.action);
      if (invocation.wait) return wait(invocation.id, invocation.timeoutS);
      const said = invocation.action === "approve" ? `approved after wave ${answer.approved}: the next wave starts` : "aborted: no further wave; its on_failure applies";
      io.out(`${invocation.id} ${said}\n`);
      return 0;
    }
    case "deploy": {
      const { request } = invocation;
      if (request.command === "update" && !request.args.commit) request.args.commit = await branchTip(request.args.branch, io.cwd ?? process.cwd());
      const { deployment, duplicate } = await client.create(request);
      if (!invocation.wait) {
        io.out(`${deployment}\n`);
        io.err(`${duplicate ? "already deployed" : "accepted"}: follow it with \`bun scripts/deploy.ts status ${deployment} --wait\`\n`);
        return 0;
      }
      return wait(deployment, invocation.timeoutS);
    }
  }
}

/** Runs the CLI with `argv` and `env`; resolves with the exit status. */
export async function run(argv: readonly string[], env: Record<string, string | undefined>, io: Io): Promise<number> {
  try {
    const invocation = parseArgs(argv);
    if (invocation.kind === "help") {
      io.out(USAGE);
      return 0;
    }
    return await execute(invocation, createClient(readEnv(env)), io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`deploy: ${error.message}\nRun \`bun scripts/deploy.ts --help\` for usage.\n`);
      return 2;
    }
    if (error instanceof CliError) {
      io.err(`deploy: ${error.message}\n`);
      return error.exit;
    }
    throw error;
  }
}

if (import.meta.main) {
  const tty = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR && process.env.TERM !== "dumb";
  const interrupt = new AbortController();
  let following = false;
  // While following, the first Ctrl-C stops following (the deployment goes on); otherwise, or the second time, it ends at once.
  process.on("SIGINT", () => (following && !interrupt.signal.aborted ? interrupt.abort() : process.exit(130)));
  const io: Io = {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    tty,
    columns: process.stdout.columns,
    interrupt: interrupt.signal,
    following: () => void (following = true),
  };
  const code = await run(process.argv.slice(2), process.env, io);
  // Let stdout drain before leaving (a pipe may be slower than we are).
  process.stdout.write("", () => process.exit(code));
}
