/**
 * One worker per checkout: two workers on the same repository would check out
 * and run scripts over each other. The lock is a file in the checkout's git
 * folder, created with O_EXCL and holding the owner's process stamp; a lock
 * whose owner no longer runs (crash, SIGKILL, reboot) is stale and taken over.
 */
import { openSync, readFileSync, unlinkSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../shared/config.ts";
import { isRunning, stampOf, type ProcessStamp } from "./proc.ts";

export interface Lock {
  readonly file: string;
  release(): void;
}

function readOwner(file: string): ProcessStamp | undefined {
  try {
    const owner = JSON.parse(readFileSync(file, "utf8"));
    return typeof owner?.pid === "number" ? owner : undefined;
  } catch {
    return undefined;
  }
}

function tryCreate(file: string, stamp: ProcessStamp): boolean {
  try {
    const fd = openSync(file, "wx", 0o644);
    writeSync(fd, `${JSON.stringify(stamp)}\n`);
    closeSync(fd);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw new ConfigError("ARBEIDER_REPO_DIR", `cannot create the lock file ${file}: ${(error as Error).message}`);
  }
}

/** Takes the lock of the checkout whose git folder is `gitDir`, or throws a ConfigError naming its holder. */
export function acquireLock(gitDir: string): Lock {
  const file = join(gitDir, "arbeider-worker.lock");
  const stamp = stampOf(process.pid);
  // Two rounds: the second runs after a stale lock was removed; losing that race to another worker is a refusal.
  for (let round = 0; round < 2; round++) {
    if (tryCreate(file, stamp)) {
      return {
        file,
        release() {
          if (readOwner(file)?.pid === process.pid) unlinkSync(file);
        },
      };
    }
    const owner = readOwner(file);
    if (owner && owner.pid !== process.pid && isRunning(owner)) break;
    try {
      unlinkSync(file);
    } catch {
      // Someone else removed it first; the next round decides.
    }
  }
  const holder = readOwner(file)?.pid ?? "unknown";
  throw new ConfigError("ARBEIDER_REPO_DIR", `another worker (pid ${holder}) already serves this checkout; lock file ${file}`);
}
