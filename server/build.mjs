// Compiles the server into one ES module (dependencies stay in node_modules).
// `npm start` and the benchmarks run this output rather than the TypeScript
// through a loader: the loader keeps every function's name by redefining it
// on each closure it creates, which costs memory per connection and time on
// every call that makes a closure.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

export const SERVER_BUNDLE = fileURLToPath(new URL("./dist/main.mjs", import.meta.url));

export async function buildServer() {
  await build({
    entryPoints: [fileURLToPath(new URL("./src/main.ts", import.meta.url))],
    outfile: SERVER_BUNDLE,
    bundle: true,
    packages: "external",
    platform: "node",
    format: "esm",
    target: "node20",
    sourcemap: true,
    logLevel: "warning",
  });
  return SERVER_BUNDLE;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildServer();
