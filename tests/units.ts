/**
 * systemd's file formats, read the way systemd reads them, for the tests of
 * examples/systemd: a unit file as sections of keys (a key may repeat), and
 * an `EnvironmentFile=` as variables, and a unit's program started as systemd
 * would start it. tests/systemd-units.test.ts checks the units' settings;
 * tests/install-guide.test.ts starts what they start.
 */
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { startProcess, type Proc } from "./helpers.ts";

/** A unit file as section -> key -> values (a key may repeat). */
export function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const sections: Record<string, Record<string, string[]>> = {};
  let section: Record<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) section = sections[header[1]!] = {};
    else if (section && line.includes("=")) (section[line.slice(0, line.indexOf("="))] ??= []).push(line.slice(line.indexOf("=") + 1));
    else throw new Error(`not a unit file line: ${raw}`);
  }
  return sections;
}

/** An EnvironmentFile's `KEY=value` lines; a value in double or single quotes loses them, `#` lines are comments. */
export function parseEnvironmentFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`not an environment file line: ${raw}`);
    const value = line.slice(eq + 1).trim();
    const quoted = /^(["'])(.*)\1$/.exec(value);
    env[line.slice(0, eq).trim()] = quoted ? quoted[2]! : value;
  }
  return env;
}


/**
 * Starts what the unit file's `ExecStart` names (with the test's bun for
 * `/usr/local/bin/bun`), with its `Environment` and then its `EnvironmentFile`
 * (which overrides it, as in systemd), its `LoadCredential` files copied into
 * a folder under `root` that `%d` names, and its `WorkingDirectory` (else
 * `root`). `rewrite` maps the unit's paths to where the test keeps them. Not
 * emulated: `User`, the sandboxing, restarts.
 */
export function startAsSystemd(unitFile: string, options: { rewrite: (text: string) => string; root: string }): Proc {
  const { rewrite, root } = options;
  const service = parseUnit(readFileSync(unitFile, "utf8")).Service;
  if (!service?.ExecStart) throw new Error(`${unitFile} has no [Service] ExecStart`);
  const credentials = join(root, "credentials");
  mkdirSync(credentials, { recursive: true });
  for (const item of service.LoadCredential ?? []) {
    const [name, path] = item.split(":");
    copyFileSync(rewrite(path!), join(credentials, name!));
  }
  const env: Record<string, string> = {};
  for (const item of service.Environment ?? []) env[item.slice(0, item.indexOf("="))] = item.slice(item.indexOf("=") + 1).replaceAll("%d", credentials);
  for (const file of service.EnvironmentFile ?? []) Object.assign(env, parseEnvironmentFile(readFileSync(rewrite(file), "utf8")));
  const [program, ...args] = rewrite(service.ExecStart.at(-1)!).split(/\s+/);
  if (program !== "/usr/local/bin/bun") throw new Error(`${unitFile} starts ${program}, not /usr/local/bin/bun`);
  return startProcess(["bun", ...args], env, service.WorkingDirectory ? rewrite(service.WorkingDirectory.at(-1)!) : root);
}
