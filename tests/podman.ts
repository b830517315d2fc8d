/**
 * Podman for the image tests (tests/images.test.ts) on a machine with no
 * Docker engine and no registry: a private containers.conf with the two
 * settings such machines need (runc; default ulimits the kernel lets a
 * container set), a Debian base image made with debootstrap and cached
 * between runs outside the repository, and on it a stand-in for
 * `oven/bun:<version>-slim` (the bun binary from node_modules, the `bun` user
 * with uid 1000 as in the real image) under the name the Dockerfiles expect.
 * `podmanUnavailable()` says why containers cannot run here, so the test can
 * skip and say so.
 */
import { copyFileSync, existsSync, mkdirSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { run, type RunResult } from "../worker/run.ts";
import { removeDirs, tempDir } from "./helpers.ts";

const CONF_DIR = tempDir("arbeider-podman-");
const CONF = join(CONF_DIR, "containers.conf");
writeFileSync(
  CONF,
  `# runc, because crun refuses mixed cgroup hierarchies; ulimits a container may raise itself to.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
`,
);
process.once("exit", () => removeDirs(CONF_DIR));

const ENV = { ...process.env, CONTAINERS_CONF: CONF };

/** Where the base image's tarball is kept between runs: never inside the repository. */
export const CACHE_DIR = process.env.XDG_CACHE_HOME
  ? join(process.env.XDG_CACHE_HOME, "arbeider")
  : process.getuid?.() === 0
    ? "/var/cache/arbeider"
    : join(homedir(), ".cache", "arbeider");
const BASE_TARBALL = join(CACHE_DIR, "debian-bookworm-minbase.tar");
const BASE_IMAGE = "localhost/arbeider-base:bookworm";
const MIRROR = "http://deb.debian.org/debian";

/** Runs a program with the private containers.conf; resolves with how it ended, never rejects. */
export function exec(argv: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(argv, { cwd: options.cwd ?? CONF_DIR, env: ENV, deadline: Date.now() + (options.timeoutMs ?? 60_000) });
}

/** `podman ...args`; resolves with trimmed stdout, or rejects with the exit and stderr. */
export async function podman(args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  const result = await exec(["podman", ...args], options);
  if (result.code !== 0) {
    const how = result.error ?? (result.timedOut ? "timed out" : `exit ${result.code ?? result.signal}`);
    throw new Error(`podman ${args.join(" ")}: ${how}\n${result.stderr.slice(-3000)}${result.stdout.slice(-2000)}`);
  }
  return result.stdout.trim();
}

/** Containers named `<prefix>-<role>`: started detached, their logs, and their removal. */
export function containerSet(prefix: string) {
  const names: string[] = [];
  return {
    /** `podman run -d` with `args` before the image and `command` after it; returns the name. */
    async start(role: string, args: string[], image: string, command: string[] = []): Promise<string> {
      const name = `${prefix}-${role}`;
      names.push(name);
      await podman(["run", "-d", "--name", name, ...args, image, ...command]);
      return name;
    },
    /** Every container's output, for a failure message. */
    async logs(): Promise<string> {
      const each = await Promise.all(names.map(async (name) => {
        const got = await exec(["podman", "logs", name]);
        return `--- ${name}\n${got.stdout}${got.stderr}`;
      }));
      return each.join("\n");
    },
    /** Removes them newest first: one that joined another's process namespace must go before it. */
    async removeAll(): Promise<void> {
      for (const name of names.reverse()) {
        const removed = await exec(["podman", "rm", "--force", "--ignore", "--time", "0", name], { timeoutMs: 60_000 });
        if (removed.code !== 0) throw new Error(`cannot remove container ${name}: ${removed.stderr}`);
      }
      names.length = 0;
    },
  };
}

/** Why podman cannot run a container here, or undefined when it can. Takes well under a second. */
export async function podmanUnavailable(): Promise<string | undefined> {
  if (process.platform !== "linux") return `containers need Linux, this is ${process.platform}`;
  const version = await exec(["podman", "--version"]);
  if (version.code !== 0) return "podman is not installed (make test installs it as root; or apt-get install podman runc catatonit debootstrap)";
  const hasBase = existsSync(BASE_TARBALL) || (await exec(["podman", "image", "exists", BASE_IMAGE])).code === 0;
  if (!hasBase && (await exec(["debootstrap", "--version"])).code !== 0) return "debootstrap is missing to make the base image (apt-get install debootstrap)";
  if (!hasBase && process.getuid?.() !== 0) return "making the base image with debootstrap needs root";
  // A container of one program, /usr/bin/true and its libraries: no image, no network.
  const rootfs = tempDir("arbeider-probe-");
  try {
    const libs = (await exec(["ldd", "/usr/bin/true"])).stdout.match(/\/\S+/g) ?? [];
    for (const file of ["/usr/bin/true", ...libs]) {
      mkdirSync(join(rootfs, dirname(file)), { recursive: true });
      copyFileSync(realpathSync(file), join(rootfs, file));
    }
    const probe = await exec(["podman", "run", "--rm", "--network", "none", "--rootfs", rootfs, "/usr/bin/true"], { timeoutMs: 30_000 });
    if (probe.code !== 0) return `podman cannot run a container here: ${(probe.stderr.trim().split("\n").pop() ?? "").slice(0, 300)}`;
  } finally {
    removeDirs(rootfs);
  }
  return undefined;
}

/** The Debian base image, imported from the cached tarball, which debootstrap makes on the first run (1 to 2 min). */
async function ensureBase(log: (line: string) => void): Promise<void> {
  if ((await exec(["podman", "image", "exists", BASE_IMAGE])).code === 0) return;
  if (!existsSync(BASE_TARBALL)) {
    log(`making the base image with debootstrap (once; cached in ${BASE_TARBALL})`);
    mkdirSync(CACHE_DIR, { recursive: true });
    const root = tempDir("arbeider-debootstrap-");
    try {
      const made = await exec(["debootstrap", "--variant=minbase", "bookworm", root, MIRROR], { timeoutMs: 600_000 });
      if (made.code !== 0) throw new Error(`debootstrap failed (exit ${made.code}):\n${made.stderr.slice(-2000)}${made.stdout.slice(-2000)}`);
      // What a slim image leaves out: downloaded packages and package lists.
      for (const dir of ["var/cache/apt/archives", "var/lib/apt/lists"]) rmSync(join(root, dir), { recursive: true, force: true });
      mkdirSync(join(root, "var/cache/apt/archives/partial"), { recursive: true });
      mkdirSync(join(root, "var/lib/apt/lists/partial"), { recursive: true });
      // Written beside, then renamed: a run killed half-way leaves no half tarball behind.
      const partial = `${BASE_TARBALL}.${process.pid}`;
      const tar = await exec(["tar", "-C", root, "-cf", partial, "."], { timeoutMs: 300_000 });
      if (tar.code !== 0) throw new Error(`tar of the base image failed: ${tar.stderr}`);
      renameSync(partial, BASE_TARBALL);
    } finally {
      removeDirs(root);
    }
  }
  await podman(["import", BASE_TARBALL, BASE_IMAGE], { timeoutMs: 300_000 });
}

/**
 * `oven/bun:<version>-slim` as the Dockerfiles name it: the real image if this machine has it,
 * else a stand-in built once on the base image and kept in podman's storage, so later
 * builds on it reuse their cached layers.
 */
export async function ensureBunImage(version: string, bunBinary: string, log: (line: string) => void): Promise<string> {
  const name = `docker.io/oven/bun:${version}-slim`;
  if ((await exec(["podman", "image", "exists", name])).code === 0) return name;
  await ensureBase(log);
  log(`building a stand-in for ${name} from ${BASE_IMAGE} and ${bunBinary}`);
  const context = tempDir("arbeider-bun-image-");
  try {
    copyFileSync(bunBinary, join(context, "bun"));
    writeFileSync(
      join(context, "Containerfile"),
      `FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.description="stand-in for oven/bun:${version}-slim, made by the arbeider tests"
COPY --chmod=755 bun /usr/local/bin/bun
RUN ln -s bun /usr/local/bin/bunx \\
 && groupadd --gid 1000 bun \\
 && useradd --uid 1000 --gid bun --shell /bin/sh --create-home bun
`,
    );
    await podman(["build", "--pull=never", "--network", "none", "-t", name, context], { timeoutMs: 300_000 });
  } finally {
    removeDirs(context);
  }
  return name;
}

/** Builds `dockerfile` with the repository as context (its .dockerignore applies); returns the image id. */
export async function buildImage(root: string, dockerfile: string, tag: string, buildArgs: Record<string, string> = {}): Promise<string> {
  const idFile = join(CONF_DIR, `${tag.replace(/\W/g, "_")}.iid`);
  const args = Object.entries(buildArgs).flatMap(([key, value]) => ["--build-arg", `${key}=${value}`]);
  // The docker format keeps HEALTHCHECK; host networking lets RUN apt-get reach the mirror.
  await podman(["build", "--pull=never", "--format", "docker", "--network", "host", ...args, "--iidfile", idFile, "-f", dockerfile, "-t", tag, root], {
    cwd: root,
    timeoutMs: 600_000,
  });
  return (await Bun.file(idFile).text()).trim();
}
