/**
 * Rollout strategies (shared/strategy.ts) as tables: what a strategy string
 * means, how its sources merge, how eligible nodes become waves (the rounding
 * rules operators get wrong elsewhere), and the ARBEIDER_BRANCHES entries.
 */
import { describe, expect, test } from "bun:test";
import { ConfigError, loadConfig, WebhookEnv } from "../shared/config.ts";
import { strategyPhrase } from "../shared/format.ts";
import { formatStrategy, mergeStrategies, parseStrategy, planWaves, rolloutOrder, toleratedFailures } from "../shared/strategy.ts";

const nodes = (n: number) => Array.from({ length: n }, (_, i) => `n${String(i + 1).padStart(2, "0")}`);

describe("strategy strings", () => {
  const rows: [string, object][] = [
    ["", {}],
    ["waves=1,30%,100%", { waves: [1, "30%", "100%"] }],
    ["waves=1/50%/100%;bake=30", { waves: [1, "50%", "100%"], bake: 30 }],
    ["max_failures=10% on_failure=halt approve=2,1", { max_failures: "10%", on_failure: "halt", approve: [1, 2] }],
    ["  bake=0 ;  max_failures=0 ", { bake: 0, max_failures: 0 }],
  ];
  for (const [text, parsed] of rows) test(`"${text}" sets ${JSON.stringify(parsed)}`, () => expect(parseStrategy(text)).toEqual(parsed));

  const refused: [string, RegExp][] = [
    ["speed=fast", /"speed" is not a strategy key/],
    ["waves", /waves: needs a value/],
    ["waves=0", /waves: "0" is neither/],
    ["waves=150%", /waves: "150%" is neither/],
    ["bake=-1", /bake: "-1" is not a whole number/],
    ["on_failure=ignore", /on_failure: "ignore" must be rollback or halt/],
    ["approve=0", /approve: "0" is not a wave number/],
    ["bake=1 bake=2", /bake: is given twice/],
  ];
  for (const [text, error] of refused) test(`"${text}" is refused naming the key`, () => expect(() => parseStrategy(text)).toThrow(error));

  test("later sources win key by key, and 100% is always the last wave", () => {
    const merged = mergeStrategies(parseStrategy("waves=1,50% bake=30"), parseStrategy("bake=5"), parseStrategy("max_failures=1"));
    expect(merged).toEqual({ waves: [1, "50%", "100%"], bake: 5, max_failures: 1, on_failure: "rollback", approve: [] });
    expect(mergeStrategies().waves).toEqual(["100%"]);
  });

  test("formatStrategy writes what parseStrategy reads", () => {
    const strategy = { waves: [1, "30%" as const], bake: 20, approve: [1] };
    expect(parseStrategy(formatStrategy(strategy))).toEqual(strategy);
  });

  test("strategyPhrase says it to a person, naming a bake, tolerated failures and approvals only when there are some", () => {
    const rows: [string, string][] = [
      ["", "wave 100% · on failure: rollback"],
      ["waves=1,30%,100% bake=20 max_failures=1 approve=1", "waves 1, 30%, 100% · bake 20 s · up to 1 failure · on failure: rollback · approval after wave 1"],
      ["waves=25%,100% max_failures=10% on_failure=halt approve=1,2", "waves 25%, 100% · up to 10% failures · on failure: halt · approval after waves 1, 2"],
    ];
    for (const [text, phrase] of rows) expect(strategyPhrase(mergeStrategies(parseStrategy(text)))).toBe(phrase);
  });
});

describe("waves", () => {
  const rows: [string, number, string[]][] = [
    ["waves=1,30%,100%", 10, ["n01", "n02 n03", "n04 n05 n06 n07 n08 n09 n10"]],
    ["waves=50%", 3, ["n01 n02", "n03"]],
    ["waves=10%", 3, ["n01", "n02 n03"]],
    ["waves=1,1,100%", 3, ["n01", "n02 n03"]],
    ["waves=5,100%", 3, ["n01 n02 n03"]],
    ["waves=100%", 1, ["n01"]],
    ["waves=1,100%", 0, []],
  ];
  for (const [text, n, expected] of rows) {
    test(`${text} over ${n} nodes: ${expected.length} waves`, () => {
      expect(planWaves(mergeStrategies(parseStrategy(text)), nodes(n)).map((w) => w.join(" "))).toEqual(expected);
    });
  }

  test("max_failures: a count as it is, a percentage rounded down", () => {
    expect(toleratedFailures(mergeStrategies(parseStrategy("max_failures=1")), 10)).toBe(1);
    expect(toleratedFailures(mergeStrategies(parseStrategy("max_failures=25%")), 10)).toBe(2);
    expect(toleratedFailures(mergeStrategies(parseStrategy("max_failures=10%")), 9)).toBe(0);
    expect(toleratedFailures(mergeStrategies({}), 10)).toBe(0);
  });

  test("nodes in group canary come first, then by node id", () => {
    expect(rolloutOrder([{ node: "b", groups: [] }, { node: "z", groups: ["canary"] }, { node: "a", groups: ["web"] }])).toEqual(["z", "a", "b"]);
  });
});

describe("ARBEIDER_BRANCHES entries", () => {
  const env = (branches: string) => loadConfig(WebhookEnv, { ARBEIDER_SIGNING_KEY_FILE: "/k", ARBEIDER_API_KEY: "k".repeat(20), ARBEIDER_BRANCHES: branches });

  test("branch=target;strategy, with / between wave sizes", () => {
    const rules = env("master=all;waves=1/50%/100%;bake=30,staging=group:staging").ARBEIDER_BRANCHES;
    expect(rules.get("master")).toEqual({ target: "all", strategy: { waves: [1, "50%", "100%"], bake: 30 } });
    expect(rules.get("staging")).toEqual({ target: "group:staging", strategy: {} });
  });

  const refused: [string, RegExp][] = [
    ["-x", /"-x" is not a safe branch name/],
    ["a..b", /"a..b" is not a safe branch name/],
    ["master=everyone", /target "everyone"/],
    ["master;bake=soon", /bake: "soon"/],
  ];
  for (const [value, error] of refused) {
    test(`${value} is refused at start, naming ARBEIDER_BRANCHES`, () => {
      let thrown: unknown;
      try {
        env(value);
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(ConfigError);
      expect((thrown as ConfigError).variable).toBe("ARBEIDER_BRANCHES");
      expect((thrown as Error).message).toMatch(error);
    });
  }
});
