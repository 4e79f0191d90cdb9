import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { configFromEnv } from "../../server/src/config.js";
import { SETTINGS, settingsReport } from "../../server/src/settings.js";
import { withSettings } from "../../scripts/settings-docs.js";
import { ROOT } from "../helpers/server.js";

it("names exactly the variables the configuration reads", () => {
  const read = new Set<string>();
  configFromEnv(new Proxy({}, { get: (_, name) => (typeof name === "string" && read.add(name), undefined) }) as NodeJS.ProcessEnv);
  expect(SETTINGS.map((s) => s.variable).sort()).toEqual([...read].sort());
  expect(new Set(SETTINGS.map((s) => s.variable)).size).toBe(SETTINGS.length);
});

it("is what the README's settings reference says (npm run docs:settings writes it)", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  expect(readme).toBe(withSettings(readme));
});

it("shows the values in effect, never a secret's", () => {
  const report = settingsReport({ CHORUS_MAX_CONNECTIONS: "42", CHORUS_JWT_SECRET: "do-not-print-me", CHORUS_API_KEYS: "k1,k2" });
  expect(report).toMatch(/CHORUS_MAX_CONNECTIONS\n\s+default: 10000\n\s+current: 42\n\s+sessions per node/);
  expect(report).toMatch(/CHORUS_HEARTBEAT_MS\n\s+default: 30000\n\s+current: \(default\)/);
  expect(report).toContain("current: (set, not shown)");
  expect(report).not.toContain("do-not-print-me");
  expect(report).not.toContain("k1,k2");
});
