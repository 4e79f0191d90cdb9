// The packages as a user gets them: @chorus/client, @chorus/react and
// @chorus/server are built and packed (`npm pack`, what `npm publish` would upload), and the
// tarballs are installed into a scratch app in a temporary directory,
// outside the workspace, with its own package.json; everything else comes
// from the registry. The installed `chorus` command serves; a plain Node
// ESM script, a typed usage file (tsc --noEmit) and a Vite-built page in
// Chromium use the installed client (and a typed React file the installed
// hooks).
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromiumAvailable, launchChromium } from "../helpers/chromium.js";
import { ROOT, startServer, type ServerProcess } from "../helpers/server.js";
import { listFiles, serveStatic } from "../helpers/static-site.js";

const run = promisify(execFile);
const FIXTURES = join(ROOT, "test/packages/app");

/** The version this workspace has installed, so the scratch app gets the same (from the npm cache when it can). */
function installedVersion(name: string): string {
  return (JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
}

async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout } = await run("npm", args, { cwd, timeout: 300_000, maxBuffer: 64 * 2 ** 20, env: { ...process.env, npm_config_update_notifier: "false" } });
  return stdout;
}

describe("the packages, packed and installed into an app outside the workspace", () => {
  let app: string;
  let server: ServerProcess;

  beforeAll(async () => {
    app = mkdtempSync(join(tmpdir(), "chorus-app-"));
    // prepack builds each package (tsc for the client; esbuild and tsc for the server).
    await npm(["pack", "--workspace", "clients", "--workspace", "server", "--workspace", "react", "--pack-destination", app, "--silent"], ROOT);
    const tarballs = readdirSync(app).filter((f) => f.endsWith(".tgz"));
    expect(tarballs.sort()).toEqual(["chorus-client-0.1.0.tgz", "chorus-react-0.1.0.tgz", "chorus-server-0.1.0.tgz"]);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "scratch-app", private: true, type: "module" }));
    cpSync(FIXTURES, app, { recursive: true });
    await npm(
      [
        "install",
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
        ...tarballs.map((t) => `./${t}`),
        `typescript@${installedVersion("typescript")}`,
        `vite@${installedVersion("vite")}`,
        ...["react", "react-dom", "@types/react"].map((name) => `${name}@${installedVersion(name)}`),
      ],
      app,
    );
    server = await startServer({}, join(app, "data"), { bin: join(app, "node_modules/.bin/chorus") });
  }, 600_000);

  afterAll(async () => {
    await server?.stop();
    if (app) rmSync(app, { recursive: true, force: true });
  });

  it("ships built ES modules and declarations only, and imports nothing outside itself", () => {
    for (const name of ["client", "react", "server"]) {
      const dir = join(app, "node_modules/@chorus", name);
      const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { private?: boolean; license?: string };
      expect(manifest.private, name).toBeUndefined();
      expect(manifest.license, name).toBe("Apache-2.0");
      const files = listFiles(dir);
      expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts")), name).toEqual([]);
      expect(files, name).toContain("README.md");
      for (const file of files.filter((f) => f.endsWith(".js") || f.endsWith(".mjs"))) {
        // Relative imports stay inside the package (checked by resolving them against the package's files).
        for (const [, spec] of readFileSync(join(dir, file), "utf8").matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
          const target = join(dir, file, "..", spec!);
          expect(target.startsWith(dir + "/") && files.includes(target.slice(dir.length + 1)), `${name}/${file} imports ${spec}`).toBe(true);
        }
      }
    }
  });

  it("a plain Node ESM script subscribes, publishes and reads history; a back end emits", async () => {
    const { stdout } = await run(process.execPath, ["node-check.mjs", server.url], { cwd: app, timeout: 30_000 });
    const result = JSON.parse(stdout) as { seen: unknown[]; history: string[]; status: string };
    expect(result.seen).toEqual([
      { event: "message", data: { text: "hi" }, userId: "ada" },
      { event: "chat:message", data: { text: "from the back end" }, userId: null },
    ]);
    expect(result.history).toEqual(["from the back end", "hi"]); // newest first
    expect(result.status).toBe("connected");
  });

  it("type-checks an app's usage files (the client, the server SDK, the React hooks) against the installed declarations", async () => {
    await run(join(app, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], { cwd: app, timeout: 120_000 }).catch((e: { stdout: string }) => {
      throw new Error(`tsc --noEmit failed:\n${e.stdout}`);
    });
  });

  it.runIf(chromiumAvailable())("a Vite-built page does the same in Chromium", async () => {
    const out = join(app, "web-dist");
    await run(join(app, "node_modules/.bin/vite"), ["build", "web", "--outDir", out, "--emptyOutDir", "--logLevel", "warn"], { cwd: app, timeout: 120_000 });
    const scripts = listFiles(out).filter((f) => f.endsWith(".js"));
    const bytes = scripts.reduce((sum, f) => sum + readFileSync(join(out, f)).length, 0);
    const gzipped = scripts.reduce((sum, f) => sum + gzipSync(readFileSync(join(out, f)), { level: 9 }).length, 0);
    console.log(`browser bundle of a page that subscribes, publishes and reads history: ${(bytes / 1024).toFixed(1)} KB minified, ${(gzipped / 1024).toFixed(1)} KB gzipped`);
    expect(gzipped).toBeLessThanOrEqual(35 * 1024); // the budget the README states

    const site = await serveStatic(out);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(`${site.url}/?chorus=${encodeURIComponent(server.url)}`);
      await page.waitForFunction(() => document.body.dataset.result, undefined, { timeout: 20_000 });
      const result = JSON.parse((await page.evaluate(() => document.body.dataset.result))!) as unknown;
      expect(errors).toEqual([]);
      expect(result).toEqual({ seen: [{ event: "message", text: "from the browser", userId: "bea" }], history: ["from the browser"] });
      expect(await page.textContent("#status")).toBe("connected");
    } finally {
      await browser.close();
      site.close();
    }
  });
});
