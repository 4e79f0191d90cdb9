import { readdirSync, readFileSync } from "node:fs";
import * as http from "node:http";
import { extname, join } from "node:path";

/** Every file under `dir`, as paths relative to it. */
export function listFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as Array<{ isFile(): boolean; name: string; parentPath: string }>)
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
}

const TYPES: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };

/** A static file server for a built page, on its own origin (Chorus is reached cross-origin, as in production). */
export async function serveStatic(root: string): Promise<{ url: string; close(): void }> {
  const files = new Set(listFiles(root));
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname.slice(1) || "index.html";
    if (!files.has(path)) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" }).end(readFileSync(join(root, path)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, close: () => server.close() };
}
