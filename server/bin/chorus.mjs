#!/usr/bin/env node
// `chorus serve`: the server with its embedded defaults (see README for settings).
// Runs the compiled server (dist/main.mjs): shipped in the package, made by
// `npm run build` (or `npm start`) in the repository.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const [command = "serve"] = process.argv.slice(2);
if (command !== "serve") {
  console.error(`unknown command "${command}"; usage: chorus serve`);
  process.exit(2);
}
const main = new URL("../dist/main.mjs", import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  console.error("chorus: the server is not built (dist/main.mjs is missing); run `npm run build` first");
  process.exit(1);
}
process.setSourceMapsEnabled(true);
await import(main.href);
