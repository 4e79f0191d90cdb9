#!/usr/bin/env node
// The `chorus` command: `chorus` or `chorus serve` runs the server, `chorus --help`
// lists the rest. Runs the compiled command line (dist/cli.mjs): shipped in the
// package, made by `npm run build` (or `npm start`) in the repository.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const cli = new URL("../dist/cli.mjs", import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  console.error("chorus: the server is not built (dist/cli.mjs is missing); run `npm run build` first");
  process.exit(1);
}
process.setSourceMapsEnabled(true);
await import(cli.href);
