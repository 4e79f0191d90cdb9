import { execFileSync } from "node:child_process";

/** The commit a benchmark ran (short hash), so a report says what it measured. */
export function currentCommit(root: string): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}
