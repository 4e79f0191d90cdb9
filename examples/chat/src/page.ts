import { build } from "esbuild";
import { fileURLToPath } from "node:url";

/** Bundles the browser client and the page script once, at start-up. */
export async function buildPage(chorusUrl: string): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL("./web.ts", import.meta.url))],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    conditions: ["chorus-source"], // the client's TypeScript sources, in this repository
    target: "es2022",
    minify: true,
  });
  const script = result.outputFiles[0]!.text;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chorus chat</title>
<style>
  body { font: 15px system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }
  #log { border: 1px solid #ccc; height: 24rem; overflow-y: auto; padding: .5rem; }
  .me { text-align: right; } .who { color: #888; font-size: 12px; }
  form { display: flex; gap: .5rem; margin-top: .5rem; } input { flex: 1; }
</style></head>
<body>
  <h1>chat/general <small id="status">idle</small></h1>
  <div id="log"></div>
  <form id="send"><input id="text" autocomplete="off" placeholder="Type a message…"><button>Send</button></form>
  <script>window.CHORUS_URL = ${JSON.stringify(chorusUrl)};</script>
  <script type="module">${script}</script>
</body></html>`;
}
