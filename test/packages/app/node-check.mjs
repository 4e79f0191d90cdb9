// A plain Node ESM script, as an app outside the repository writes it: the
// packages are imported by name, nothing else. Prints what it saw as JSON.
import { RealtimeClient } from "@chorus/client";
import { createServerSdk } from "@chorus/client/server";

const url = process.argv[2];
const topic = "chat/packaged-node";
const realtime = new RealtimeClient({ url, token: "ada" });
const sdk = createServerSdk({ url });
const seen = [];
const channel = realtime.channel(topic);
channel.on("*", ({ event, data, userId }) => seen.push({ event, data, userId: userId ?? null })).subscribe();
await channel.ready();
await channel.publish("message", { text: "hi" }, { persist: true });
await sdk.socket.emit("chat:message", { text: "from the back end" }, topic, { persist: true });
const deadline = Date.now() + 10_000;
while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
const history = (await channel.getHistory(10)).map((m) => m.data.text);
console.log(JSON.stringify({ seen, history, status: realtime.status }));
realtime.disconnect();
sdk.close();
