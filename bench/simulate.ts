import type { Harness } from "./harness.ts";
import type { Result } from "./results.ts";
export async function simulate(_h: Harness): Promise<Result[]> {
  return [];
}
