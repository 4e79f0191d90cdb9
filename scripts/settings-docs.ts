// `npm run docs:settings`: writes the README's settings reference from
// server/src/settings.ts (test/unit/settings.test.ts checks they agree).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { settingsMarkdown } from "../server/src/settings.js";

export const BEGIN = "<!-- settings:begin (generated from server/src/settings.ts by npm run docs:settings) -->";
export const END = "<!-- settings:end -->";

export function withSettings(readme: string): string {
  const start = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error("README.md has no settings markers");
  return `${readme.slice(0, start + BEGIN.length)}\n\n${settingsMarkdown()}\n${readme.slice(end)}`;
}

if (process.argv[1] === import.meta.filename) {
  const path = join(import.meta.dirname, "..", "README.md");
  writeFileSync(path, withSettings(readFileSync(path, "utf8")));
}
