/**
 * The numbers of a bench run: percentiles of samples, one `Result` per
 * figure (value beside its floor and the ratio between them, the issue's goal
 * and whether it was met), the Markdown table printed at the end and the JSON
 * written to `bench/results.json`.
 */

export interface Result {
  metric: string;
  value: number;
  unit: string;
  /** The same figure for the floor (or the peer), measured in the same run; null when it could not be measured. */
  floor: number | null;
  /** value / floor. */
  ratio: number | null;
  /** The issue's goal, e.g. "ratio <= 1.5"; "" for a figure shown for context only. */
  goal: string;
  /** Whether the goal holds; null when there is no goal or no floor to judge it by. */
  met: boolean | null;
}

/** The p-th percentile (0..100) by nearest rank; NaN for no samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const median = (samples: readonly number[]) => percentile(samples, 50);

type Goal =
  | { ratioAtMost: number }
  | { ratioAtLeast: number }
  | { ratioBelow: number }
  | { valueAtMost: number }
  | { valueBelow: number }
  | undefined;

/** A Result for `value` beside `floor`, judged by `goal` (a ratio bound or an absolute bound on value). */
export function result(metric: string, value: number, unit: string, floor: number | null, goal?: Goal): Result {
  const ratio = floor === null || !Number.isFinite(floor) || floor === 0 ? null : round(value / floor, 3);
  let text = "";
  let met: boolean | null = null;
  if (goal && "ratioAtMost" in goal) [text, met] = [`ratio <= ${goal.ratioAtMost}`, ratio === null ? null : ratio <= goal.ratioAtMost];
  if (goal && "ratioAtLeast" in goal) [text, met] = [`ratio >= ${goal.ratioAtLeast}`, ratio === null ? null : ratio >= goal.ratioAtLeast];
  if (goal && "ratioBelow" in goal) [text, met] = [`ratio < ${goal.ratioBelow}`, ratio === null ? null : ratio < goal.ratioBelow];
  if (goal && "valueAtMost" in goal) [text, met] = [`<= ${goal.valueAtMost} ${unit}`, value <= goal.valueAtMost];
  if (goal && "valueBelow" in goal) [text, met] = [`< ${goal.valueBelow} ${unit}`, value < goal.valueBelow];
  if (!Number.isFinite(value)) met = goal ? false : null;
  return { metric, value: round(value, 2), unit, floor: floor === null ? null : round(floor, 2), ratio, goal: text, met };
}

function round(n: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(n * scale) / scale;
}

function show(n: number | null, unit = ""): string {
  if (n === null || !Number.isFinite(n)) return "–";
  const text = Math.abs(n) >= 100 ? Math.round(n).toString() : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2);
  return unit ? `${text} ${unit}` : text;
}

/** The results as a Markdown table. */
export function table(results: readonly Result[]): string {
  const rows = [
    "| metric | value | floor | ratio | goal | met |",
    "| --- | ---: | ---: | ---: | --- | :-: |",
    ...results.map(
      (r) =>
        `| ${r.metric} | ${show(r.value, r.unit)} | ${show(r.floor, r.unit)} | ${r.ratio === null ? "–" : `${r.ratio < 10 ? r.ratio.toFixed(3) : r.ratio.toFixed(1)}x`} | ${r.goal || "–"} | ${r.met === null ? (r.goal ? "?" : "") : r.met ? "yes" : "**no**"} |`,
    ),
  ];
  return rows.join("\n");
}
