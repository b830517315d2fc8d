/**
 * Text for a terminal, as pure functions: colours (or none), text from the
 * webhook made printable, lines clipped or wrapped to the terminal's width,
 * and tables whose columns line up. Anything a node sends (names, reasons,
 * output) passes through `printable` before it is written.
 */

const COLOURS = { green: "32", red: "31", yellow: "33", cyan: "36", magenta: "35", dim: "2", bold: "1" } as const;
export type Colour = keyof typeof COLOURS;
export type Paint = (colour: Colour, text: string) => string;
export const plain: Paint = (_, text) => text;
export const ansi: Paint = (colour, text) => `\x1b[${COLOURS[colour]}m${text}\x1b[0m`;

/** The colour of a state word, the same families as the dashboard's. */
export function colourOf(state: string): Colour {
  if (state === "succeeded" || state === "on latest") return "green";
  if (["failed", "rejected", "missing", "unhealthy"].includes(state)) return "red";
  if (["received", "started", "running", "updating", "baking"].includes(state)) return "yellow";
  if (["paused", "rolled_back", "behind", "moved", "dirty"].includes(state)) return "magenta";
  if (state === "skipped" || state === "superseded") return "cyan";
  return "dim";
}

/**
 * Text from the webhook (node names, reasons, output) as one printable line:
 * any node can publish events and heartbeats, and a control character in
 * them must not move the cursor or restyle the operator's terminal.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ");
}

/** How many columns `line` takes, not counting colour codes. */
export const visibleLength = (line: string) => [...line.replace(/\x1b\[[0-9;]*m/g, "")].length;

/** `line` cut to `columns` visible characters, keeping its colour codes, so a redraw never wraps. */
export function clip(line: string, columns: number): string {
  let visible = 0;
  let out = "";
  for (const part of line.split(/(\x1b\[[0-9;]*m)/)) {
    if (part.startsWith("\x1b[")) {
      out += part;
      continue;
    }
    const chars = [...part];
    const room = columns - visible;
    if (chars.length > room) return `${out}${chars.slice(0, Math.max(0, room - 1)).join("")}…${out.includes("\x1b[") ? "\x1b[0m" : ""}`;
    out += part;
    visible += chars.length;
  }
  return out;
}

/** Plain `text` in lines of at most `width` characters, broken at spaces where it can. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (let word of text.split(" ")) {
    // A word longer than a line is cut where the line ends.
    while (word.length > width) {
      if (line) lines.push(line);
      line = "";
      lines.push(word.slice(0, width));
      word = word.slice(width);
    }
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** Rows under a heading, each column as wide as its widest cell; cells are made printable. */
export function table(heading: string[], cells: string[][]): string[] {
  const rows = cells.map((row) => row.map((cell) => printable(cell ?? "")));
  const widths = heading.map((cell, i) => Math.max(cell.length, ...rows.map((row) => [...(row[i] ?? "")].length)));
  return [heading, ...rows].map((row) => row.map((cell, i) => (cell ?? "").padEnd(widths[i])).join("  ").trimEnd());
}
