/**
 * What the worker knows about other processes. On Linux it reads /proc, so it
 * can tell a live process from a zombie (a container's pid 1 often never reaps
 * them) and a pid that was reused by another process from the one it recorded:
 * a stamp holds the boot id and the process start time. Elsewhere it falls back
 * to `kill(pid, 0)`, which cannot tell those apart.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";

/** Enough to recognise one process again later: its pid, the boot it ran in, when it started. */
export interface ProcessStamp {
  pid: number;
  bootId?: string;
  startTime?: string;
}

const HAS_PROC = existsSync("/proc/self/stat");

/** State letter, process group and start time (clock ticks since boot) from /proc/<pid>/stat. */
function stat(pid: number): { state: string; pgrp: number; startTime: string } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses; fields after the last ")" are plain.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0], pgrp: Number(fields[2]), startTime: fields[19] };
  } catch {
    return undefined;
  }
}

function signalZero(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

let boot: { id: string | undefined } | undefined;

/** This boot's id, read once: a stamp is taken of every child a command starts. */
function bootId(): string | undefined {
  if (!boot) {
    try {
      boot = { id: readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim() };
    } catch {
      boot = { id: undefined };
    }
  }
  return boot.id;
}

/** A stamp of process `pid` as it is now. */
export function stampOf(pid: number): ProcessStamp {
  return { pid, bootId: bootId(), startTime: stat(pid)?.startTime };
}

/** Whether the very process `stamp` was taken of still runs. */
export function isRunning(stamp: ProcessStamp): boolean {
  if (stamp.bootId !== bootId()) return false;
  if (!HAS_PROC) return signalZero(stamp.pid);
  const now = stat(stamp.pid);
  return now !== undefined && now.state !== "Z" && now.startTime === stamp.startTime;
}

/** Whether process group `pgid` still has a member that is not a zombie. */
export function groupAlive(pgid: number): boolean {
  if (!HAS_PROC) return signalZero(-pgid);
  return readdirSync("/proc").some((name) => {
    if (!/^\d+$/.test(name)) return false;
    const member = stat(Number(name));
    return member !== undefined && member.pgrp === pgid && member.state !== "Z";
  });
}

/**
 * Whether the group led by the process in `stamp` still has live members that
 * are that group's: same boot, and the leader is either gone (its children
 * keep the group id) or still the same process, not a newcomer with its pid.
 */
export function groupStillOurs(stamp: ProcessStamp): boolean {
  if (stamp.bootId !== bootId()) return false;
  const leader = HAS_PROC ? stat(stamp.pid) : undefined;
  if (leader && leader.state !== "Z" && leader.startTime !== stamp.startTime) return false;
  return groupAlive(stamp.pid);
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** SIGTERM to the whole group, then SIGKILL to whatever is left after `graceMs`. */
export async function killGroup(pgid: number, graceMs: number): Promise<void> {
  signalGroup(pgid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (groupAlive(pgid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  if (groupAlive(pgid)) signalGroup(pgid, "SIGKILL");
}
