// Compiles the server into ES modules (dependencies stay in node_modules):
// dist/main.mjs, what `npm start` and the `chorus` command run, and
// dist/index.mjs, the library (startChorus, config, logger), sharing one
// chunk. `npm start`, the tests and the benchmarks run this output rather
// than the TypeScript through a loader: the loader keeps every function's
// name by redefining it on each closure it creates, which costs memory per
// connection and time on every call that makes a closure.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const SERVER_BUNDLE = fileURLToPath(new URL("./dist/main.mjs", import.meta.url));

/** The built-in page (console/): its script bundled for browsers, and its HTML, compiled into the server as one constant. */
async function buildConsole() {
  const script = await build({
    entryPoints: [fileURLToPath(new URL("./console/page.ts", import.meta.url))],
    bundle: true,
    write: false,
    platform: "browser",
    format: "esm",
    target: "es2022",
    minify: true,
    conditions: ["chorus-source"],
    logLevel: "warning",
  });
  const html = readFileSync(new URL("./console/index.html", import.meta.url), "utf8");
  return { html, js: script.outputFiles[0].text };
}

export async function buildServer() {
  const page = await buildConsole();
  await build({
    define: { __CHORUS_CONSOLE__: JSON.stringify(page), __CHORUS_VERSION__: JSON.stringify(JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")).version) },
    entryPoints: {
      main: fileURLToPath(new URL("./src/main.ts", import.meta.url)),
      cli: fileURLToPath(new URL("./src/cli.ts", import.meta.url)),
      index: fileURLToPath(new URL("./src/index.ts", import.meta.url)),
    },
    outdir: fileURLToPath(new URL("./dist", import.meta.url)),
    outExtension: { ".js": ".mjs" },
    chunkNames: "chunks/[name]-[hash]",
    splitting: true,
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
