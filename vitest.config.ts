import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // End-to-end suites start real server processes; two cores are enough
    // for two suites at a time. The abuse and durability suites measure
    // time and memory under load: `npm test` runs them one at a time, after
    // the others (test:serial).
    maxWorkers: 2,
  },
});
