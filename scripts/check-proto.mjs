#!/usr/bin/env node
// The contract's gate, run by `npm test` before anything else:
//   1. buf lint (STANDARD rules, buf.yaml);
//   2. gen/ must equal a fresh `buf generate` (gen/ is never edited by hand);
//   3. buf breaking against every earlier version of proto/ in this
//      repository's history (the last landed main is one of them): field
//      numbers and names are forever.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const bin = join(root, "node_modules", ".bin");
const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
const buf = (args) => spawnSync(join(bin, "buf"), args, { cwd: root, env, encoding: "utf8" });
let failed = false;

function step(name, fn) {
  const problem = fn();
  if (problem) {
    failed = true;
    console.error(`✗ ${name}\n${problem.trim()}\n`);
  } else {
    console.log(`✓ ${name}`);
  }
}

step("buf lint", () => {
  const r = buf(["lint"]);
  return r.status === 0 ? undefined : r.stdout + r.stderr;
});

step("gen/ matches buf generate", () => {
  const scratch = mkdtempSync(join(tmpdir(), "chorus-gen-"));
  try {
    const r = buf(["generate", "--output", scratch]);
    if (r.status !== 0) return `buf generate failed:\n${r.stdout}${r.stderr}`;
    const fresh = listFiles(join(scratch, "gen"));
    const committed = listFiles(join(root, "gen"));
    const differences = [];
    for (const file of new Set([...fresh.keys(), ...committed.keys()])) {
      if (!committed.has(file)) differences.push(`missing from gen/: ${file}`);
      else if (!fresh.has(file)) differences.push(`not produced by buf generate: gen/${file}`);
      else if (!fresh.get(file).equals(committed.get(file))) differences.push(`differs: gen/${file}`);
    }
    return differences.length ? `${differences.join("\n")}\nRun \`npm run generate\` and commit gen/.` : undefined;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});

step("buf breaking against earlier versions of proto/", () => {
  const git = (...args) => execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim();
  let commits;
  try {
    if (git("rev-parse", "--is-shallow-repository") === "true") {
      console.log("  (shallow clone: history incomplete, comparing against what is present)");
    }
    commits = git("log", "--format=%H", "-n", "20", "--", "proto").split("\n").filter(Boolean);
  } catch {
    commits = [];
  }
  // One comparison per distinct earlier contract.
  const seen = new Set();
  const targets = commits.filter((c) => {
    const tree = git("rev-parse", `${c}:proto`);
    if (seen.has(tree)) return false;
    seen.add(tree);
    return true;
  });
  if (targets.length === 0) {
    console.log("  skipped: no earlier version of proto/ in this repository's history (no landed main yet)");
    return undefined;
  }
  const problems = [];
  for (const commit of targets) {
    const r = buf(["breaking", "--against", `.git#ref=${commit},depth=${commits.length + 50}`]);
    if (r.status !== 0) problems.push(`against ${commit.slice(0, 12)}:\n${r.stdout}${r.stderr}`);
  }
  console.log(`  compared with ${targets.length} earlier version(s)`);
  return problems.length ? problems.join("\n") : undefined;
});

function listFiles(dir) {
  const files = new Map();
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.set(relative(dir, path), readFileSync(path));
    }
  };
  try {
    walk(dir);
  } catch {
    // a missing directory lists as empty
  }
  return files;
}

process.exit(failed ? 1 : 0);
