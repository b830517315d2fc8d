/**
 * The runnable parts of the documentation, for the tests that run them as a
 * reader would: the fenced `sh` blocks a document marks with a comment just
 * above them (`<!-- api-test: setup -->`, invisible on the rendered page),
 * and a way to run such text in bash, `set -e` and in a process group of its
 * own, so whatever it leaves running in the background is ended after, alone
 * or as one of the blocks a reader types into the same terminal.
 */
import { randomUUID } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killGroup } from "../worker/proc.ts";
import { run, type RunResult } from "../worker/run.ts";
import { AMQP_URL, ROOT } from "./helpers.ts";

export interface Block {
  /** What the marker says: where or when the block runs. */
  tag: string;
  code: string;
  /** 1-based line of the block's first line in the document, for messages. */
  line: number;
}

/** The `sh` blocks of `docs/<file>` marked `<!-- <marker>: tag -->`, in their order. */
export function markedBlocks(file: string, marker: string): Block[] {
  const text = readFileSync(join(ROOT, "docs", file), "utf8");
  const pattern = new RegExp(`<!-- ${marker}: ([^>]+?) -->\\n\`\`\`sh\\n([\\s\\S]*?)\`\`\`\\n`, "g");
  return [...text.matchAll(pattern)].map((m) => ({ tag: m[1]!, code: m[2]!, line: text.slice(0, m.index).split("\n").length + 2 }));
}

export type Replacements = readonly (readonly [string | RegExp, string])[];

/** Whether `text` holds `from`. */
const holds = (text: string, from: string | RegExp) => (typeof from === "string" ? text.includes(from) : new RegExp(from.source).test(text));

/** `text` with every `[from, to]` pair replaced; `required`: each must occur (a page that changed fails loudly). */
export function replaceAll(text: string, pairs: Replacements, required = true): string {
  return pairs.reduce((out, [from, to]) => {
    if (required && !holds(out, from)) throw new Error(`the documentation no longer holds ${String(from)}`);
    return out.replaceAll(from, to);
  }, text);
}

/** The environment of a reader's shell: a PATH with bun on it, a home, the local broker, and a git identity. */
export function readerEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/root",
    AMQP_URL,
    GIT_AUTHOR_NAME: "docs reader",
    GIT_AUTHOR_EMAIL: "reader@arbeider.invalid",
    GIT_COMMITTER_NAME: "docs reader",
    GIT_COMMITTER_EMAIL: "reader@arbeider.invalid",
    ...extra,
  };
}

/** Runs `script` with bash (`-e -o pipefail`) in `cwd`; what it started in the background is ended after it. */
export async function runShell(script: string, options: { cwd: string; env: Record<string, string>; timeoutMs: number }): Promise<RunResult> {
  let group: number | undefined;
  try {
    return await run(["bash", "-e", "-o", "pipefail", "-c", script], {
      cwd: options.cwd,
      env: options.env,
      deadline: Date.now() + options.timeoutMs,
      onSpawn: (pgid) => (group = pgid),
    });
  } finally {
    if (group !== undefined) await killGroup(group, 2000);
  }
}

/**
 * A reader's terminal on one host: blocks run one after another in `cwd`,
 * and what one exports is set for the next, as in a shell kept open.
 */
export function shellSession(cwd: string, env: Record<string, string>) {
  const file = join(tmpdir(), `arbeider-session-${randomUUID()}`);
  let vars = { ...env };
  return {
    /** Sets variables for the blocks that follow, as the reader would by hand. */
    set(extra: Record<string, string>): void {
      vars = { ...vars, ...extra };
    },
    async run(code: string, timeoutMs: number): Promise<RunResult> {
      // Reached only when the block succeeded (`set -e`): its variables, for the next block.
      const result = await runShell(`${code}\nenv -0 > '${file}'`, { cwd, env: vars, timeoutMs });
      if (result.code === 0) vars = Object.fromEntries(readFileSync(file, "utf8").split("\0").filter(Boolean).map((item) => [item.slice(0, item.indexOf("=")), item.slice(item.indexOf("=") + 1)]));
      rmSync(file, { force: true });
      return result;
    },
  };
}
