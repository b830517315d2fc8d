/**
 * The real deploy's peers, doing the floor's work on clones of their own.
 * One Debian `webhook` (adnanh/webhook) per node: an HMAC-checked hook that
 * runs bench/peer-deploy.sh (the floor's fetch, checkout and update.sh) in
 * the node's clone and answers when it is done, with the CI calling every
 * node's URL at once. Ansible: `ansible-playbook` with `ansible.builtin.git`
 * and a command task for update.sh, over SSH to a private sshd on a loopback
 * port, with ControlPersist, pipelining and one fork per node. Each is skipped
 * with its reason when it cannot run here. Their CPU is that of their
 * servers (and what those ran), plus the playbook run and SSH's multiplexing
 * masters for Ansible.
 */
import { createHmac } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../testkit/kit.ts";
import { cpuMeter, markedPids } from "./cpu.ts";
import { runCounted, type Contender } from "./deploy.ts";
import type { Repos } from "./fleet.ts";
import { freePort, startInBatches, waitForPort, type Harness, type Proc } from "./harness.ts";
import { ensurePackages, runs } from "./install.ts";

const SECRET = "bench-peer-hmac-secret";

/** One adnanh/webhook process per node, or why there is none. */
export async function webhookPeer(h: Harness, repos: Repos): Promise<Contender | string> {
  if (!ensurePackages(["webhook"], () => runs("webhook", "-version"), !h.quick)) return "one webhook per node skipped: Debian's webhook is not installed (apt-get install webhook)";
  const nodes: { url: string; proc: Proc }[] = [];
  const meter = cpuMeter({ roots: () => nodes.map((n) => n.proc.pid) });
  const start = async (i: number) => {
    const clone = repos.clone(`peer-${i}`);
    const port = await freePort();
    const hooks = join(h.dir, `peer-hooks-${i}.json`);
    const signed = { match: { type: "payload-hmac-sha256", secret: SECRET, parameter: { source: "header", name: "X-Hub-Signature-256" } } };
    const hook = {
      id: "deploy",
      "execute-command": join(ROOT, "bench/peer-deploy.sh"),
      "command-working-directory": clone,
      "include-command-output-in-response": true,
      "pass-arguments-to-command": [{ source: "payload", name: "commit" }],
      "trigger-rule": signed,
    };
    writeFileSync(hooks, JSON.stringify([hook]));
    const proc = h.spawn(["webhook", "-hooks", hooks, "-ip", "127.0.0.1", "-port", String(port)], {}, { quiet: true });
    await waitForPort(port);
    return { url: `http://127.0.0.1:${port}/hooks/deploy`, proc };
  };
  return {
    name: "one webhook per node",
    async grow(n) {
      nodes.push(...(await startInBatches(nodes.length, n, 8, start)));
    },
    async deploy(sha) {
      const body = JSON.stringify({ commit: sha, ref: "refs/heads/master" });
      const headers = { "content-type": "application/json", "x-hub-signature-256": `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}` };
      meter.lap();
      const t0 = performance.now();
      await Promise.all(nodes.map(async (node) => {
        const response = await fetch(node.url, { method: "POST", body, headers });
        const text = await response.text();
        if (response.status !== 200) throw new Error(`${node.url} answered ${response.status}: ${text.slice(0, 500)}`);
      }));
      return { wallMs: performance.now() - t0, cpuMs: meter.lap() };
    },
    close: () => Promise.all(nodes.map((n) => n.proc.stop())).then(() => {}),
  };
}

/** A private sshd on a loopback port that lets in one key of ours, as root. */
async function startSshd(h: Harness, dir: string): Promise<{ proc: Proc; port: number; key: string }> {
  const key = join(dir, "id_ed25519");
  const hostKey = join(dir, "host_ed25519");
  for (const file of [key, hostKey]) await runCounted(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", file], dir);
  const port = await freePort();
  const config = join(dir, "sshd_config");
  writeFileSync(config, [
    `Port ${port}`,
    "ListenAddress 127.0.0.1",
    `HostKey ${hostKey}`,
    `PidFile ${join(dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${key}.pub`,
    "PermitRootLogin prohibit-password",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    // The run's folder is private to root but not in the layout StrictModes checks for.
    "StrictModes no",
    "MaxStartups 200",
    "MaxSessions 200",
    "LogLevel ERROR",
    "",
  ].join("\n"));
  // Privilege separation wants its empty folder, which the Debian service would make at boot.
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const proc = h.spawn(["/usr/sbin/sshd", "-D", "-e", "-f", config], {}, { quiet: true });
  await waitForPort(port);
  return { proc, port, key };
}

/** Ansible over a private sshd, or why there is none. */
export async function ansiblePeer(h: Harness, repos: Repos): Promise<Contender | string> {
  const present = () => runs("ansible-playbook", "--version") && existsSync("/usr/sbin/sshd") && runs("ssh", "-V");
  if (!ensurePackages(["ansible", "openssh-server"], present, !h.quick)) return "Ansible skipped: ansible-playbook or sshd is not installed (apt-get install ansible openssh-server)";
  if (process.getuid?.() !== 0) return "Ansible skipped: the private sshd it logs in to needs root";
  const dir = join(h.dir, "ansible");
  mkdirSync(join(dir, "cp"), { recursive: true });
  const sshd = await startSshd(h, dir);
  const controlDir = join(dir, "cp");
  // SSH's multiplexing masters leave ansible-playbook's tree; their command line names the control folder.
  const meter = cpuMeter({ roots: () => [sshd.proc.pid], marks: [controlDir] });
  const config = join(dir, "ansible.cfg");
  writeFileSync(config, [
    "[defaults]",
    "host_key_checking = False",
    "gathering = explicit",
    "interpreter_python = /usr/bin/python3",
    `local_tmp = ${join(dir, "tmp")}`,
    "[ssh_connection]",
    "pipelining = True",
    "ssh_args = -o ControlMaster=auto -o ControlPersist=600s -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no",
    "",
  ].join("\n"));
  const playbook = join(dir, "deploy.json");
  const tasks = [
    { name: "check the commit out", "ansible.builtin.git": { repo: "{{ origin }}", dest: "{{ dest }}", version: "{{ commit }}", force: true } },
    { name: "run update.sh", "ansible.builtin.command": { cmd: "./update.sh", chdir: "{{ dest }}" } },
  ];
  writeFileSync(playbook, JSON.stringify([{ hosts: "all", gather_facts: false, tasks }]));
  const inventory = join(dir, "inventory.json");
  const hosts: Record<string, { dest: string; ansible_control_path_dir: string }> = {};
  const vars = { ansible_host: "127.0.0.1", ansible_port: sshd.port, ansible_user: "root", ansible_ssh_private_key_file: sshd.key, origin: repos.origin };
  return {
    name: "Ansible",
    // Its rounds take 8 s at 20 nodes and 25 s at 50 here: a few of them keep `make bench` within its 10 minutes.
    rounds: (n) => (h.quick ? 1 : n > 20 ? 2 : 3),
    async grow(n) {
      for (let i = Object.keys(hosts).length; i < n; i++) {
        // A control folder per host: they all share one address, and each real node has its own connection.
        const cp = join(controlDir, String(i));
        mkdirSync(cp);
        hosts[`node-${i}`] = { dest: repos.clone(`ansible-${i}`), ansible_control_path_dir: cp };
      }
      writeFileSync(inventory, JSON.stringify({ all: { vars, hosts } }));
    },
    async deploy(sha) {
      meter.lap();
      const t0 = performance.now();
      const forks = String(Object.keys(hosts).length);
      const playbookCpu = await runCounted(["ansible-playbook", "-i", inventory, "-f", forks, "-e", `commit=${sha}`, playbook], dir, {
        ANSIBLE_CONFIG: config,
        ANSIBLE_NOCOLOR: "1",
      });
      return { wallMs: performance.now() - t0, cpuMs: playbookCpu + meter.lap() };
    },
    async close() {
      // The SSH masters ControlPersist keeps in the background are this run's: they go with it.
      for (const pid of markedPids([controlDir])) process.kill(pid, "SIGTERM");
      await sshd.proc.stop();
    },
  };
}
