/**
 * CPU time of the systems a benchmark compares, beside their wall time: on
 * a machine that others share, wall time swings with their load while the
 * CPU a system spends on one round stays put. A long-lived system (the
 * webhook and its workers, the broker, the peers' servers, sshd) is a set of
 * root processes: its CPU so far is what they and their live descendants
 * used, counting the children each waited for (/proc/<pid>/stat utime,
 * stime, cutime, cstime), so the git and update.sh a worker runs count as
 * the worker's. A process a round starts and waits for (the floor's git,
 * `ansible-playbook`) is counted from its own resource usage at exit, which
 * includes everything it waited for. Linux only; elsewhere every figure is 0.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { Subprocess } from "bun";

/** Milliseconds per clock tick of /proc/<pid>/stat (USER_HZ, 100 on every Linux that matters). */
const TICK_MS = 10;

interface Stat {
  ppid: number;
  ticks: number;
}

/** utime + stime + cutime + cstime and the parent of every live process. */
function readStats(): Map<number, Stat> {
  const stats = new Map<number, Stat>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return stats;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // The command name is in parentheses and may hold spaces or ")": the fields start after the last ")".
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const [ppid, utime, stime, cutime, cstime] = [fields[1], fields[11], fields[12], fields[13], fields[14]].map(Number);
    stats.set(Number(entry), { ppid: ppid!, ticks: utime! + stime! + cutime! + cstime! });
  }
  return stats;
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return "";
  }
}

/** Which processes a system is: its roots, and any process whose command line holds one of `marks` (daemons that left the tree). */
export interface System {
  roots(): readonly number[];
  marks?: readonly string[];
}

/** Live processes whose command line holds one of `marks`. */
export function markedPids(marks: readonly string[], stats = readStats()): number[] {
  if (marks.length === 0) return [];
  return [...stats.keys()].filter((pid) => marks.some((mark) => commandLine(pid).includes(mark)));
}

/** CPU ms used so far by `system`: its roots, their live descendants and what they waited for. */
export function cpuMs(system: System, stats = readStats()): number {
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) (children.get(s.ppid) ?? children.set(s.ppid, []).get(s.ppid)!).push(pid);
  const counted = new Set<number>();
  const visit = (pid: number) => {
    if (counted.has(pid) || !stats.has(pid)) return;
    counted.add(pid);
    for (const child of children.get(pid) ?? []) visit(child);
  };
  for (const pid of system.roots()) visit(pid);
  for (const pid of markedPids(system.marks ?? [], stats)) visit(pid);
  let ticks = 0;
  for (const pid of counted) ticks += stats.get(pid)!.ticks;
  return ticks * TICK_MS;
}

/** The CPU ms a process used, with everything it waited for, once it has exited. */
export function exitedCpuMs(proc: Subprocess): number {
  const usage = proc.resourceUsage();
  return usage ? Number(usage.cpuTime.total) / 1000 : 0;
}

/** Laps of a system's CPU: each `lap()` returns the ms used since the previous one (or since the meter was made). */
export function cpuMeter(system: System): { lap(): number } {
  let last = cpuMs(system);
  return {
    lap() {
      const now = cpuMs(system);
      const used = now - last;
      last = now;
      return Math.max(0, used);
    },
  };
}
