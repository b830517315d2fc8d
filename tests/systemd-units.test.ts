/**
 * The systemd units in examples/systemd: each runs its process as its own
 * user with the hardening an operator expects (no new privileges, the file
 * system read-only but for the worker's checkout), restarts on failure but
 * not on a configuration error, and lets a stopping worker finish the command
 * in hand. Read as files here; where `systemd-analyze` is installed it also
 * verifies them (any warning fails) and rates their exposure.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, removeDirs, tempDir } from "./helpers.ts";
import { run } from "../worker/run.ts";
import { skipNote } from "./skip.ts";
import { parseUnit } from "./units.ts";

const DIR = join(ROOT, "examples/systemd");
const UNITS = ["arbeider-worker.service", "arbeider-webhook.service"];

/** Seconds in a systemd time span such as `11min`, `30s` or `1min 30s`. */
function seconds(span: string): number {
  const units: Record<string, number> = { "": 1, s: 1, sec: 1, m: 60, min: 60, h: 3600 };
  return [...span.matchAll(/(\d+)\s*([a-z]*)/g)].reduce((sum, [, n, unit]) => sum + Number(n) * units[unit!]!, 0);
}

const unit = (name: string) => parseUnit(readFileSync(join(DIR, name), "utf8"));
const one = (values: string[] | undefined) => values?.at(-1);

describe("systemd units", () => {
  test("time spans read as systemd reads them", () => {
    expect([seconds("11min"), seconds("30s"), seconds("1min 30s"), seconds("600")]).toEqual([660, 30, 90, 600]);
  });

  for (const name of UNITS) {
    test(`${name} runs bun on its bundle (and no .env file) as its own user, hardened, restarting on failure but not on a configuration error`, () => {
      const service = unit(name).Service!;
      expect(one(service.ExecStart)).toBe(`/usr/local/bin/bun --no-env-file /opt/arbeider/${name.replace(/^arbeider-|\.service$/g, "")}.js`);
      expect(one(service.User)).toBe("arbeider");
      expect(one(service.EnvironmentFile)).toMatch(/^\/etc\/arbeider\/\w+\.env$/);
      expect(one(service.NoNewPrivileges)).toBe("yes");
      expect(one(service.ProtectSystem)).toBe("strict");
      expect(one(service.CapabilityBoundingSet)).toBe("");
      expect(one(service.Restart)).toBe("on-failure");
      expect(one(service.RestartPreventExitStatus)).toBe("2");
      expect(one(service.KillMode)).toBe("mixed");
      expect(unit(name).Install?.WantedBy).toEqual(["multi-user.target"]);
    });
  }

  test("the worker may write its checkout only, and a stop waits longer than a command may run", () => {
    const service = unit("arbeider-worker.service").Service!;
    expect(service.ReadWritePaths).toEqual([one(service.WorkingDirectory)!]);
    // ARBEIDER_TIMEOUT defaults to 600 s: the command in hand must be able to finish.
    expect(seconds(one(service.TimeoutStopSec)!)).toBeGreaterThan(600);
  });

  test("the webhook writes nothing and gets its private key as a credential", () => {
    const service = unit("arbeider-webhook.service").Service!;
    expect(service.ReadWritePaths).toBeUndefined();
    expect(service.LoadCredential).toEqual(["signing.pem:/etc/arbeider/signing.pem"]);
    expect(service.Environment).toContain("ARBEIDER_SIGNING_KEY_FILE=%d/signing.pem");
  });

  const analyze = Bun.which("systemd-analyze");
  const { testIf, title } = skipNote("systemd-analyze", analyze ? undefined : "systemd-analyze is not installed (apt-get install systemd)");
  testIf(title("systemd-analyze verifies both units without a warning and rates their exposure OK"), async () => {
    // verify checks that ExecStart's program exists: point it at this machine's bun.
    const dir = tempDir("arbeider-units-");
    try {
      for (const name of UNITS) writeFileSync(join(dir, name), readFileSync(join(DIR, name), "utf8").replaceAll("/usr/local/bin/bun", process.execPath));
      const analyzeIn = (...args: string[]) => run([analyze!, ...args], { cwd: dir, deadline: Date.now() + 30_000 });
      const verify = await analyzeIn("verify", ...UNITS);
      expect({ code: verify.code, output: verify.stdout + verify.stderr }).toEqual({ code: 0, output: "" });
      // Exposure runs from 0 (locked down) to 10 (unprotected); the threshold is in tenths: at most 2.0.
      for (const name of UNITS) {
        const security = await analyzeIn("security", "--offline=true", "--threshold=20", name);
        expect(security.code, security.stdout + security.stderr).toBe(0);
      }
    } finally {
      removeDirs(dir);
    }
  });
});
