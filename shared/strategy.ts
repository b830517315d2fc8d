/**
 * How an `update` is rolled out (docs/rollouts.md): the strategy string
 * (`waves=1,30%,100% bake=30 max_failures=1 on_failure=rollback approve=1`)
 * parsed into a plain value, merged from its sources by precedence
 * (ARBEIDER_ROLLOUT, the branch's entry, the API body, the CLI's flags), and
 * turned into waves of node ids. Pure: the webhook, the CLI and the tests all
 * use the same rules, so a typo is refused the same way everywhere.
 */
import * as v from "valibot";

/** A wave's cumulative size: a node count, or a percentage of the eligible nodes. */
export type Size = number | `${number}%`;

export interface Strategy {
  /** Cumulative sizes; `100%` is always last. */
  waves: Size[];
  /** Seconds a finished wave must stay healthy before the next starts. */
  bake: number;
  /** Failed nodes tolerated: a count, or a percentage of the eligible nodes (rounded down). */
  max_failures: Size;
  on_failure: "rollback" | "halt";
  /** Wave numbers (1-based) after which the rollout pauses until approved. */
  approve: number[];
}

const SizeSchema = v.union([v.pipe(v.number(), v.integer(), v.minValue(0)), v.pipe(v.string(), v.regex(/^\d{1,3}%$/))]);

/** A parsed strategy as it travels in a `created` record. */
export const StrategySchema = v.object({
  waves: v.pipe(v.array(SizeSchema), v.minLength(1)),
  bake: v.pipe(v.number(), v.integer(), v.minValue(0)),
  max_failures: SizeSchema,
  on_failure: v.picklist(["rollback", "halt"]),
  approve: v.array(v.pipe(v.number(), v.integer(), v.minValue(1))),
}) as v.GenericSchema<Strategy>;

export const DEFAULT_STRATEGY: Strategy = { waves: ["100%"], bake: 0, max_failures: 0, on_failure: "rollback", approve: [] };

/** A strategy string that cannot be used, naming the key. */
export class StrategyError extends Error {}

const KEYS = ["waves", "bake", "max_failures", "on_failure", "approve"] as const;

function size(word: string, key: string): Size {
  if (/^\d{1,6}$/.test(word) && Number(word) > 0) return Number(word);
  const percent = /^(\d{1,3})%$/.exec(word);
  if (percent && Number(percent[1]) >= 1 && Number(percent[1]) <= 100) return `${Number(percent[1])}%`;
  throw new StrategyError(`${key}: "${word}" is neither a positive count nor a percentage from 1% to 100%`);
}

const list = (value: string) => value.split(/[,/]/).map((item) => item.trim());

function parseValue(key: (typeof KEYS)[number], value: string): Partial<Strategy> {
  switch (key) {
    case "waves":
      return { waves: list(value).map((word) => size(word, key)) };
    case "bake":
      if (!/^\d{1,6}$/.test(value)) throw new StrategyError(`bake: "${value}" is not a whole number of seconds`);
      return { bake: Number(value) };
    case "max_failures":
      if (value === "0" || value === "0%") return { max_failures: 0 };
      return { max_failures: size(value, key) };
    case "on_failure":
      if (value !== "rollback" && value !== "halt") throw new StrategyError(`on_failure: "${value}" must be rollback or halt`);
      return { on_failure: value };
    case "approve": {
      const waves = list(value).map((word) => {
        if (!/^\d{1,4}$/.test(word) || Number(word) < 1) throw new StrategyError(`approve: "${word}" is not a wave number (1, 2, ...)`);
        return Number(word);
      });
      return { approve: [...new Set(waves)].sort((a, b) => a - b) };
    }
  }
}

/** The keys a strategy string sets; throws a StrategyError naming the key that is wrong. */
export function parseStrategy(text: string): Partial<Strategy> {
  const out: Partial<Strategy> = {};
  for (const word of text.split(/[;\s]+/).filter(Boolean)) {
    const eq = word.indexOf("=");
    const key = (eq < 0 ? word : word.slice(0, eq)) as (typeof KEYS)[number];
    if (!KEYS.includes(key)) throw new StrategyError(`"${key}" is not a strategy key (${KEYS.join(", ")})`);
    if (eq < 0 || eq === word.length - 1) throw new StrategyError(`${key}: needs a value (${key}=...)`);
    if (key in out) throw new StrategyError(`${key}: is given twice`);
    Object.assign(out, parseValue(key, word.slice(eq + 1)));
  }
  return out;
}

/** The strategy from partial ones, lowest precedence first, with `100%` as the last wave. */
export function mergeStrategies(...parts: Partial<Strategy>[]): Strategy {
  const merged: Strategy = { ...DEFAULT_STRATEGY, ...Object.assign({}, ...parts) };
  const waves = merged.waves.at(-1) === "100%" ? merged.waves : [...merged.waves, "100%" as const];
  return { ...merged, waves };
}

/** The strategy as one string, in the form parseStrategy reads: how the CLI sends its flags. */
export function formatStrategy(strategy: Partial<Strategy>): string {
  return KEYS.filter((key) => strategy[key] !== undefined)
    .map((key) => `${key}=${Array.isArray(strategy[key]) ? (strategy[key] as unknown[]).join(",") : strategy[key]}`)
    .join(" ");
}

/** How many of `total` nodes `value` is: counts as they are (at most all), percentages rounded up or down. */
function countOf(value: Size, total: number, round: (x: number) => number): number {
  if (typeof value === "number") return Math.min(value, total);
  return round((Number(value.slice(0, -1)) * total) / 100);
}

/**
 * The waves of a rollout: the eligible nodes (in the order they are served)
 * cut at each cumulative size, percentages rounded up and at least one node.
 * A size that adds no node makes no wave; `100%` takes the rest.
 */
export function planWaves(strategy: Strategy, eligible: readonly string[]): string[][] {
  const waves: string[][] = [];
  let done = 0;
  for (const value of strategy.waves) {
    const upTo = Math.max(done, Math.min(eligible.length, Math.max(1, countOf(value, eligible.length, Math.ceil))));
    if (upTo > done) waves.push(eligible.slice(done, upTo));
    done = upTo;
  }
  if (done < eligible.length) waves.push(eligible.slice(done));
  return waves;
}

/** The failed nodes a rollout over `total` eligible nodes tolerates. */
export function toleratedFailures(strategy: Strategy, total: number): number {
  return countOf(strategy.max_failures, total, Math.floor);
}

/** Eligible nodes in rollout order: those in group `canary` first, then by node id. */
export function rolloutOrder(nodes: readonly { node: string; groups: readonly string[] }[]): string[] {
  const canary = (n: { groups: readonly string[] }) => (n.groups.includes("canary") ? 0 : 1);
  return [...nodes].sort((a, b) => canary(a) - canary(b) || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)).map((n) => n.node);
}
