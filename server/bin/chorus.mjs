#!/usr/bin/env node
// `chorus serve`: the server with its embedded defaults (see README for settings).
import { pathToFileURL } from "node:url";
import { buildServer } from "../build.mjs";

const [command = "serve"] = process.argv.slice(2);
if (command !== "serve") {
  console.error(`unknown command "${command}"; usage: chorus serve`);
  process.exit(2);
}
process.setSourceMapsEnabled(true);
await import(pathToFileURL(await buildServer()).href);
