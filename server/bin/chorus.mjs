#!/usr/bin/env node
// `chorus serve`: the server with its embedded defaults (see README for settings).
import { register } from "tsx/esm/api";

const [command = "serve"] = process.argv.slice(2);
if (command !== "serve") {
  console.error(`unknown command "${command}"; usage: chorus serve`);
  process.exit(2);
}
register();
await import(new URL("../src/main.ts", import.meta.url).href);
