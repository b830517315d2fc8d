/**
 * The worker's configuration: the `WorkerEnv` variables, then the checks only
 * the file system can answer (key files readable and Ed25519, the repository a
 * git checkout with an origin, the hooks folder a folder, the allowed-signers
 * file readable). Every problem is a ConfigError naming its variable, which
 * `main()` prints as one line before exiting with status 2.
 */
import { accessSync, constants, realpathSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { ConfigError, WorkerEnv, loadConfig, readVerifyKeyFiles } from "../shared/config.ts";
import type { VerifyKey } from "../shared/signing.ts";
import { run } from "./run.ts";

export interface Settings {
  env: WorkerEnv;
  keys: VerifyKey[];
  /** Absolute top folder of the checkout. */
  repo: string;
  /** Absolute git folder of the checkout (`.git`). */
  gitDir: string;
  stateFile: string;
  /** Configured update script, absolute; unset means `update.sh` of the checkout when present. */
  updateScript?: string;
  hooksDir?: string;
  /** ARBEIDER_HEALTH_CMD, absolute (it may appear only with a later commit, so it is not checked at start). */
  healthCmd?: string;
  /** ARBEIDER_ALLOWED_SIGNERS, absolute: commits are checked out only with a signature it accepts. */
  allowedSigners?: string;
}

async function gitOutput(cwd: string, args: string[]): Promise<string | undefined> {
  const result = await run(["git", ...args], { cwd, deadline: Date.now() + 30_000 });
  return result.code === 0 ? result.stdout.trim() : undefined;
}

/** The checkout's top folder and git folder; `dir` must be the top of a checkout with an origin. */
async function findCheckout(dir: string): Promise<{ repo: string; gitDir: string }> {
  const problem = (what: string) => new ConfigError("ARBEIDER_REPO_DIR", `${dir} ${what}`);
  let repo: string;
  try {
    repo = realpathSync(dir);
    if (!statSync(repo).isDirectory()) throw problem("is not a folder");
  } catch (error) {
    throw error instanceof ConfigError ? error : problem("does not exist");
  }
  const top = await gitOutput(repo, ["rev-parse", "--show-toplevel"]);
  if (top === undefined || realpathSync(top) !== repo) throw problem("is not the top folder of a git checkout");
  const gitDir = await gitOutput(repo, ["rev-parse", "--absolute-git-dir"]);
  if (!gitDir) throw problem("has no git folder");
  if ((await gitOutput(repo, ["remote", "get-url", "origin"])) === undefined) throw problem("has no remote named origin to fetch from");
  return { repo, gitDir };
}

function checkFile(variable: string, file: string): string {
  try {
    const real = realpathSync(file);
    if (statSync(real).isFile()) {
      accessSync(real, constants.R_OK);
      return real;
    }
  } catch {
    // reported below
  }
  throw new ConfigError(variable, `${file} is not a readable file`);
}

const inRepo = (repo: string, path: string | undefined) => (path === undefined ? undefined : isAbsolute(path) ? path : join(repo, path));

function checkFolder(variable: string, dir: string): string {
  try {
    const real = realpathSync(dir);
    if (statSync(real).isDirectory()) return real;
  } catch {
    // reported below
  }
  throw new ConfigError(variable, `${dir} is not a folder`);
}

/** Loads and checks the worker's configuration from `env`. */
export async function loadSettings(source: Record<string, string | undefined>): Promise<Settings> {
  const env = loadConfig(WorkerEnv, source);
  const keys = readVerifyKeyFiles(env.ARBEIDER_VERIFY_KEY_FILE);
  const { repo, gitDir } = await findCheckout(env.ARBEIDER_REPO_DIR);
  const stateFile = resolve(env.ARBEIDER_STATE_FILE ?? join(gitDir, "arbeider-state.json"));
  checkFolder("ARBEIDER_STATE_FILE", dirname(stateFile));
  const signers = env.ARBEIDER_ALLOWED_SIGNERS;
  return {
    env,
    keys,
    repo,
    gitDir,
    stateFile,
    updateScript: inRepo(repo, env.ARBEIDER_UPDATE_SCRIPT),
    hooksDir: env.ARBEIDER_HOOKS_DIR === undefined ? undefined : checkFolder("ARBEIDER_HOOKS_DIR", env.ARBEIDER_HOOKS_DIR),
    healthCmd: inRepo(repo, env.ARBEIDER_HEALTH_CMD),
    allowedSigners: signers === undefined ? undefined : checkFile("ARBEIDER_ALLOWED_SIGNERS", signers),
  };
}
