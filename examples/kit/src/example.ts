import { serve, type ServerType } from "@hono/node-server";
import { createServerSdk, type ServerSdk } from "@chorus/client/server";
import { defaultConfig, jsonLogger, startChorus, type RunningChorus } from "@chorus/server";
import { Hono } from "hono";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "vite";

export interface ExampleOptions {
  /** Shown in the start-up line. */
  name: string;
  /** The example's back end (its routes as the reference writes them), given the server SDK; with `close`, it has more to stop (a timer). */
  backend: (sdk: ServerSdk) => Hono | { app: Hono; close(): void };
  /** The folder holding the page: index.html and its React entry. */
  web: URL;
  /** A Chorus to use; none: an embedded node is started. */
  chorusUrl?: string;
  apiKey?: string;
  /** Where the page and the back end are served (0: any free port). */
  port?: number;
  /** A back-end route to POST once started (the reference apps' `POST /setup`, which creates their tables). */
  setup?: string;
  /** Vite's mode: "development" keeps React's StrictMode checks (the tests), "production" minifies. */
  mode?: "development" | "production";
}

export interface RunningExample {
  /** The page, and the back end under /api (and at the root, for curl -X POST …/setup). */
  url: string;
  chorusUrl: string;
  sdk: ServerSdk;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml" };

/**
 * One example: its page built by Vite and served beside its back end, on
 * one origin, so the page's `fetch('/api/…')` reaches the back end as the
 * reference apps expect; the browser talks to Chorus directly (another
 * origin: CORS). The page reads Chorus' address from `/config.js`.
 */
export async function startExample(options: ExampleOptions): Promise<RunningExample> {
  let chorus: RunningChorus | undefined;
  let chorusUrl = options.chorusUrl;
  if (!chorusUrl) {
    const dataDir = mkdtempSync(join(tmpdir(), `chorus-${options.name}-`));
    chorus = await startChorus({ ...defaultConfig(), port: 0, host: "127.0.0.1", dataDir }, jsonLogger());
    chorusUrl = chorus.url;
    const close = chorus.close;
    chorus = { ...chorus, close: () => close().finally(() => rmSync(dataDir, { recursive: true, force: true })) };
  }
  const sdk = createServerSdk({ url: chorusUrl, apiKey: options.apiKey });
  const out = mkdtempSync(join(tmpdir(), `chorus-${options.name}-page-`));
  const mode = options.mode ?? "production";
  await build({
    root: fileURLToPath(options.web),
    configFile: false,
    logLevel: "warn",
    mode,
    define: { "process.env.NODE_ENV": JSON.stringify(mode) },
    resolve: { conditions: ["chorus-source", "module", "browser", "development|production"] },
    build: { outDir: out, emptyOutDir: true, minify: mode === "production" },
  });
  const files = new Map<string, Buffer>(
    (readdirSync(out, { recursive: true, withFileTypes: true }) as Array<{ isFile(): boolean; name: string; parentPath: string }>)
      .filter((e) => e.isFile())
      .map((e) => {
        const path = join(e.parentPath, e.name);
        return [`/${path.slice(out.length + 1)}` as string, readFileSync(path)] as const;
      }),
  );
  rmSync(out, { recursive: true, force: true });

  const made = options.backend(sdk);
  const backend = made instanceof Hono ? made : made.app;
  const stopBackend = made instanceof Hono ? () => {} : () => made.close();
  const app = new Hono();
  app.get("/config.js", (c) => c.body(`window.CHORUS_URL = ${JSON.stringify(chorusUrl)};\n`, 200, { "content-type": "text/javascript" }));
  app.route("/api", backend);
  app.route("/", backend);
  app.get("*", (c) => {
    const path = c.req.path === "/" ? "/index.html" : c.req.path;
    const file = files.get(path) ?? (extname(path) === "" ? files.get("/index.html") : undefined);
    if (!file) return c.notFound();
    return c.body(new Uint8Array(file), 200, { "content-type": TYPES[extname(files.has(path) ? path : "/index.html")] ?? "application/octet-stream" });
  });

  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: options.port ?? 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  const { port } = server.address() as { port: number };
  const url = `http://127.0.0.1:${port}`;
  if (options.setup) {
    const response = await fetch(`${url}${options.setup}`, { method: "POST" });
    if (!response.ok) throw new Error(`POST ${options.setup} answered ${response.status}: ${await response.text()}`);
  }
  return {
    url,
    chorusUrl,
    sdk,
    close: async () => {
      stopBackend();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      sdk.close();
      await chorus?.close();
    },
  };
}

/** The example as one command: started, announced, stopped on Ctrl-C. */
export async function runExample(options: ExampleOptions, hint: string): Promise<void> {
  const example = await startExample({ chorusUrl: process.env.CHORUS_URL, apiKey: process.env.CHORUS_API_KEY, port: Number(process.env.PORT ?? 3000), ...options });
  console.log(`${options.name}: open ${example.url.replace("127.0.0.1", "localhost")} ${hint} (Chorus at ${example.chorusUrl})`);
  const stop = () => void example.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
