// One command for the whole example: an embedded Chorus node, the chat
// back end beside it, and the page. `npm run example:chat` from the root.
import * as http from "node:http";
import { createServerSdk } from "@chorus/client/server";
import { defaultConfig, jsonLogger, startChorus } from "@chorus/server";
import { createChatBackend } from "./backend.js";
import { buildPage } from "./page.js";

const chorusPort = Number(process.env.CHORUS_PORT ?? 8080);
const chatPort = Number(process.env.CHAT_PORT ?? 3000);
const chorus = await startChorus({ ...defaultConfig(), port: chorusPort, host: "127.0.0.1", dataDir: process.env.CHORUS_DATA_DIR ?? "./.chorus" }, jsonLogger());
const chorusUrl = `http://localhost:${chorus.port}`;
const page = await buildPage(chorusUrl);
const sdk = createServerSdk({ url: chorus.url });
const backend = http.createServer(createChatBackend(sdk, () => page));
backend.listen(chatPort, "127.0.0.1", () => {
  const { port } = backend.address() as { port: number };
  console.log(`chat example: open http://localhost:${port} in two tabs (Chorus at ${chorusUrl})`);
});

process.on("SIGINT", stop);
process.on("SIGTERM", stop);
function stop() {
  backend.close();
  sdk.close();
  void chorus.close().then(() => process.exit(0));
}
