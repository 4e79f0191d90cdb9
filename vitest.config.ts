import { defineConfig } from "vitest/config";

export default defineConfig({
  // The workspace's packages resolve to their TypeScript sources (the
  // "chorus-source" export condition), as for tsc; the packed packages
  // resolve to their built dist/.
  ssr: { resolve: { conditions: ["chorus-source", "module", "node", "development|production"], externalConditions: ["chorus-source"] } },
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    server: { deps: { inline: [/@chorus\//] } },
    // End-to-end suites start real server processes; two cores are enough
    // for two suites at a time. The abuse and durability suites measure
    // time and memory under load, and the packages suite builds, packs and
    // installs, and the cluster example runs seven processes and restarts
    // them: `npm test` runs them one at a time, after the others
    // (test:serial).
    maxWorkers: 2,
  },
});
