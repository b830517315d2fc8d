/**
 * The Debian packages the benchmark compares against or drives (wrk, the
 * `webhook` peer, Ansible and an sshd for it): used when present, installed
 * with apt-get when missing and we are root on a Debian-like system (as
 * scripts/rabbitmq.sh does for the broker), and otherwise skipped with the
 * reason. A quick run never installs anything.
 */
import { spawnSync } from "node:child_process";

/** Whether `argv` runs and exits 0. */
export const runs = (...argv: string[]) => spawnSync(argv[0]!, argv.slice(1), { stdio: "ignore" }).status === 0;

const canInstall = () => process.getuid?.() === 0 && spawnSync("apt-get", ["--version"], { stdio: "ignore" }).status === 0;

/** Whether `present()` holds; first installs `packages` when it does not and `install` allows it. */
export function ensurePackages(packages: readonly string[], present: () => boolean, install: boolean): boolean {
  if (present()) return true;
  if (!install || !canInstall()) return false;
  console.error(`bench: installing Debian's ${packages.join(", ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  spawnSync("apt-get", ["update", "-qq"], { stdio: "ignore", env });
  spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...packages], { stdio: "ignore", env });
  return present();
}
