/**
 * Pins an API `update` that names no commit: the branch's tip on
 * ARBEIDER_ORIGIN_URL, read with `git ls-remote` (an argument list, the URL
 * checked not to be an option and the branch by the protocol's rule), so
 * every node of the rollout deploys the same commit even when the branch
 * moves while it runs.
 */
import { spawn } from "node:child_process";
import { HTTPException } from "hono/http-exception";

const TIMEOUT_MS = 20_000;

/** The full sha of `branch` on `origin`; a 400 naming args.commit without an origin, a 502 when git cannot tell. */
export async function branchTip(origin: string | undefined, branch: string): Promise<string> {
  if (!origin) throw new HTTPException(400, { message: "args.commit: is required (or set ARBEIDER_ORIGIN_URL so the webhook pins the branch's tip)" });
  const ref = `refs/heads/${branch}`;
  const { code, stdout, stderr } = await git(["ls-remote", "--heads", origin, ref]);
  if (code !== 0) throw new HTTPException(502, { message: `args.commit: cannot read ${branch} from ARBEIDER_ORIGIN_URL: ${stderr.trim().split("\n").pop() || `git exited ${code}`}` });
  const line = stdout.split("\n").find((l) => l.endsWith(`\t${ref}`));
  const sha = line?.slice(0, 40);
  if (!sha || !/^[0-9a-f]{40}$/.test(sha)) throw new HTTPException(400, { message: `args.branch: ${branch} does not exist on ARBEIDER_ORIGIN_URL` });
  return sha;
}

function git(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("git", args, { env: { ...process.env, GIT_TERMINAL_PROMPT: "0", LC_ALL: "C", AMQP_URL: "" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
    child.once("error", (error) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: error.message });
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr: code === null ? "timed out" : stderr });
    });
  });
}
