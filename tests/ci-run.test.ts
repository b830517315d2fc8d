/**
 * `.ci/run`, CI's entry point, reads its closing line "N passed, N failed,
 * N skipped" from bun's own summary and lists every skipped test with the
 * reason in its name. Here it runs against a stand-in `make` that prints what
 * `bun test` prints, so each case is exact; the real `make test` is what CI runs.
 */
import { expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, removeDirs, tempDir } from "./helpers.ts";

/** Runs .ci/run with a `make` that prints `output` and exits with `status`. */
async function ciRun(output: string, status: number) {
  const bin = tempDir("arbeider-ci-");
  try {
    writeFileSync(join(bin, "output"), output);
    writeFileSync(join(bin, "make"), `#!/bin/sh\n[ "$1" = test ] || exit 99\ncat "${join(bin, "output")}" >&2\nexit ${status}\n`);
    chmodSync(join(bin, "make"), 0o755);
    const child = Bun.spawn(["bash", join(ROOT, ".ci/run")], { env: { PATH: `${bin}:${process.env.PATH}` }, stdout: "pipe", stderr: "pipe" });
    const [stdout, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    return { code, lines: stdout.trimEnd().split("\n") };
  } finally {
    removeDirs(bin);
  }
}

const summary = (counts: string) => `bun test v1.4.5\n\ntests/a.test.ts:\n(pass) one\n(skip) images > two [SKIPPED: podman is not installed]\n\n${counts}\nRan 4 tests across 1 file. [1.00s]\n`;

test(".ci/run ends with passed, failed and skipped counted from bun's summary, and names the skipped tests", async () => {
  const cases = [
    { output: summary(" 3 pass\n 1 skip\n 0 fail"), status: 0, code: 0, last: "3 passed, 0 failed, 1 skipped" },
    { output: summary(" 3 pass\n 1 skip\n 1 todo\n 0 fail"), status: 0, code: 0, last: "3 passed, 0 failed, 2 skipped" },
    { output: summary(" 2 pass\n 1 skip\n 1 fail"), status: 1, code: 1, last: "2 passed, 1 failed, 1 skipped" },
    { output: "make: *** [Makefile:50: check] Error 2\n", status: 2, code: 1, last: "0 passed, 1 failed, 0 skipped" },
    // A make that fails after bun passed (or a summary without a fail line) still fails the run.
    { output: summary(" 3 pass\n 0 fail"), status: 2, code: 1, last: "3 passed, 0 failed, 0 skipped" },
  ];
  for (const { output, status, code, last } of cases) {
    const run = await ciRun(output, status);
    expect({ code: run.code, last: run.lines.at(-1) }).toEqual({ code, last });
    if (output.includes(" skip\n")) expect(run.lines).toContain("  (skip) images > two [SKIPPED: podman is not installed]");
  }
});
