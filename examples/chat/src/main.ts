// One command for the whole example: an embedded Chorus node, the chat
// back end beside it, and the page. `npm run example:chat` from the root.
import { defaultConfig, jsonLogger, startChorus } from "@chorus/server";
import { startChatApp } from "./app.js";

const chorus = await startChorus(
  { ...defaultConfig(), port: Number(process.env.CHORUS_PORT ?? 8080), host: "127.0.0.1", dataDir: process.env.CHORUS_DATA_DIR ?? "./.chorus" },
  jsonLogger(),
);
const app = await startChatApp({ chorusUrl: `http://localhost:${chorus.port}`, port: Number(process.env.CHAT_PORT ?? 3000) });
console.log(`chat example: open ${app.url.replace("127.0.0.1", "localhost")} in two tabs (Chorus at http://localhost:${chorus.port})`);

const stop = () => {
  app.close();
  void chorus.close().then(() => process.exit(0));
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
