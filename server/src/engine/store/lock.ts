import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { uptime } from "node:os";
import { join } from "node:path";

/** What a holder of the data directory writes into its lock file. */
interface LockRecord {
  pid: number;
  /** Identifies the machine's current boot: a different one means the machine restarted since. */
  boot: string;
  /** When the process started, to tell a live holder from a reused pid. */
  started: string;
  /** The fsync mode the holder ran with. */
  fsync: string;
}

export interface DataDirLock {
  /** Set when the previous holder did not shut down cleanly: how it ran. */
  readonly previous: { sameBoot: boolean; fsync: string } | undefined;
  /** Releases the lock: a clean shutdown. */
  release(): void;
}

export class DataDirInUse extends Error {}

/**
 * One process per data directory: two writers would hand out the same
 * positions and corrupt each other's files. The lock is a file created
 * atomically (link), naming its holder; a lock whose holder is gone is
 * taken over, and tells the new holder that the last run ended uncleanly.
 */
export function lockDataDir(dir: string, fsync: string): DataDirLock {
  const path = join(dir, "LOCK");
  const mine: LockRecord = { pid: process.pid, boot: bootId(), started: processStart(process.pid), fsync };
  let previous: DataDirLock["previous"];
  for (let attempt = 0; attempt < 3; attempt++) {
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
    const fd = openSync(tmp, "w");
    writeSync(fd, JSON.stringify(mine));
    fsyncSync(fd);
    closeSync(fd);
    try {
      linkSync(tmp, path);
      unlinkSync(tmp);
      return {
        previous,
        release: () => {
          try {
            unlinkSync(path);
          } catch {
            // already gone: nothing to release
          }
        },
      };
    } catch (error) {
      unlinkSync(tmp);
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    let holder: LockRecord | undefined;
    try {
      holder = JSON.parse(readFileSync(path, "utf8")) as LockRecord;
    } catch {
      holder = undefined; // torn or empty: its writer died mid-write
    }
    if (holder && alive(holder)) {
      throw new DataDirInUse(`data directory ${dir} is in use by process ${holder.pid} (started ${holder.started}); stop it first, or give this one another CHORUS_DATA_DIR`);
    }
    previous = holder ? { sameBoot: holder.boot === mine.boot, fsync: holder.fsync } : { sameBoot: false, fsync: "unknown" };
    // Stale: move it aside (atomically) and try again.
    try {
      renameSync(path, `${path}.stale`);
    } catch {
      // another starter moved it first
    }
  }
  throw new DataDirInUse(`could not lock data directory ${dir}: another process keeps taking it`);
}

function alive(holder: LockRecord): boolean {
  if (holder.boot !== bootId()) return false;
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  // The pid exists; it is the holder only if it started when the holder did.
  const started = processStart(holder.pid);
  return started === "" || holder.started === "" || started === holder.started;
}

/** The kernel's id for this boot, or the boot time to the minute where there is none. */
function bootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return `boot-${Math.round((Date.now() - uptime() * 1000) / 60_000)}`;
  }
}

/** A process's start time in clock ticks since boot (Linux), or "" where unknown. */
function processStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "";
  } catch {
    return "";
  }
}
