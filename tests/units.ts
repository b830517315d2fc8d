/**
 * systemd's file formats, read the way systemd reads them, for the tests of
 * examples/systemd: a unit file as sections of keys (a key may repeat), and
 * an `EnvironmentFile=` as variables. tests/systemd-units.test.ts checks the
 * units' settings; tests/install-guide.test.ts starts what a unit would start.
 */

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
