/**
 * The command-line client of the webhook's API (README, "Command-line client"): asks for
 * a deployment, and with `--wait` follows it node by node until every
 * expected node has finished; `status` and `nodes` print tables.
 *
 *   ARBEIDER_URL=https://deploy.example.com ARBEIDER_API_KEY=... \
 *     bun scripts/deploy.ts update --branch master --wait
 *
 * Exit status: 0 every expected node succeeded, 1 something failed or went
 * missing, 2 usage error or the webhook cannot be reached. `--help` says all.
 */
import { USAGE, UsageError, parseArgs, readEnv, type Invocation } from "./deploy/args.ts";
import { CliError, createClient, type Client } from "./deploy/client.ts";
import { follow } from "./deploy/follow.ts";
import { ansi, deploymentsTable, nodesTable, outcome, plain, renderDeployment } from "./deploy/view.ts";

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  tty: boolean;
  columns?: number;
}

async function execute(invocation: Exclude<Invocation, { kind: "help" }>, client: Client, io: Io): Promise<number> {
  const now = Date.now();
  switch (invocation.kind) {
    case "nodes": {
      const nodes = await client.nodes();
      io.out(nodes.length ? `${nodesTable(nodes, now).join("\n")}\n` : "no node has reported yet\n");
      return 0;
    }
    case "status": {
      if (!invocation.id) {
        const list = await client.deployments(20);
        io.out(list.length ? `${deploymentsTable(list, now).join("\n")}\n` : "no deployments yet\n");
        return 0;
      }
      if (invocation.wait) return follow(client, invocation.id, { write: io.out, tty: io.tty, columns: io.columns, timeoutMs: seconds(invocation.timeoutS) });
      const d = await client.deployment(invocation.id);
      if (!d) throw new CliError(1, `no deployment "${invocation.id}" (see \`deploy.ts status\` for recent ones)`);
      io.out(`${renderDeployment(d, now, io.tty ? ansi : plain).join("\n")}\n`);
      const result = outcome(d);
      return result.done ? result.code : 0;
    }
    case "deploy": {
      const { deployment, duplicate } = await client.create(invocation.request);
      if (!invocation.wait) {
        io.out(`${deployment}\n`);
        io.err(`${duplicate ? "already deployed" : "accepted"}: follow it with \`bun scripts/deploy.ts status ${deployment} --wait\`\n`);
        return 0;
      }
      return follow(client, deployment, { write: io.out, tty: io.tty, columns: io.columns, timeoutMs: seconds(invocation.timeoutS) });
    }
  }
}

const seconds = (s: number | undefined) => (s === undefined ? undefined : s * 1000);

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
  const io: Io = {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    tty,
    columns: process.stdout.columns,
  };
  const code = await run(process.argv.slice(2), process.env, io);
  // Let stdout drain before leaving (a pipe may be slower than we are).
  process.stdout.write("", () => process.exit(code));
}
