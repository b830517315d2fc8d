/**
 * The runnable parts of the documentation, for the tests that run them as a
 * reader would: the fenced `sh` blocks a document marks with a comment just
 * above them (`<!-- api-test: setup -->`, invisible on the rendered page),
 * and a way to run such text in bash, `set -e` and in a process group of its
 * own, so whatever it leaves running in the background is ended after.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { killGroup } from "../worker/proc.ts";
import { run, type RunResult } from "../worker/run.ts";
import { ROOT } from "./helpers.ts";

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

/** `text` with every `[from, to]` pair replaced, each pair required to occur (a guide that changed fails loudly). */
export function replaceAll(text: string, pairs: readonly (readonly [string | RegExp, string])[]): string {
  return pairs.reduce((out, [from, to]) => {
    const found = typeof from === "string" ? out.includes(from) : new RegExp(from.source, from.flags.replace("g", "")).test(out);
    if (!found) throw new Error(`the documentation no longer holds ${String(from)}`);
    return out.replaceAll(from, to);
  }, text);
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
