/**
 * Tests that cannot run on this machine (no Chromium, no podman) are reported
 * as skipped, never as passed: bun's `test.skip`, with the reason in the
 * test's name (bun prints it on the `(skip)` line, and `.ci/run` lists those
 * lines) and one loud line when the file loads.
 */
import { test } from "bun:test";

/** `test` that skips when `reason` is set, and `title` to put the reason into a test's name. */
export function skipNote(what: string, reason: string | undefined) {
  if (reason) console.warn(`\n!!! ${what} tests SKIPPED: ${reason}\n`);
  return {
    testIf: reason ? test.skip : test,
    title: (name: string) => (reason ? `${name} [SKIPPED: ${reason}]` : name),
  };
}
