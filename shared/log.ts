/**
 * Logs are one JSON object per line on stdout: `{"at","level","msg",...}`.
 * Callers pass facts as fields, never secrets; errors are reduced to their
 * message so a stack never leaks a value from a request.
 */
export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Logger = Record<Level, (msg: string, fields?: Record<string, unknown>) => void>;

/** A logger that writes lines at `level` and above, each tagged with `base` fields. */
export function createLogger(level: Level, base: Record<string, unknown> = {}): Logger {
  const write = (at: Level) => (msg: string, fields: Record<string, unknown> = {}) => {
    if (RANK[at] < RANK[level]) return;
    const line = { at: new Date().toISOString(), level: at, msg, ...base, ...fields };
    process.stdout.write(`${JSON.stringify(line, (_, value) => (value instanceof Error ? value.message : value))}\n`);
  };
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
}
