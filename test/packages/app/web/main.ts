// A page built by Vite from the installed @chorus/client (its browser build):
// subscribe, publish, read history; the result goes into the page as JSON.
import { RealtimeClient, type RealtimePayload } from "@chorus/client";

const url = new URLSearchParams(location.search).get("chorus")!;
const topic = `chat/packaged-web-${Date.now()}`;
const realtime = new RealtimeClient({ url, token: "bea" });
realtime.onStatusChange((status) => (document.getElementById("status")!.textContent = status));
const seen: Array<{ event: string; text: string; userId?: string }> = [];
const channel = realtime.channel(topic);
channel.on("message", ({ event, data, userId }: RealtimePayload<{ text: string }>) => seen.push({ event, text: data.text, userId })).subscribe();

async function main(): Promise<void> {
  await channel.ready();
  await channel.publish("message", { text: "from the browser" }, { persist: true });
  while (seen.length < 1) await new Promise((r) => setTimeout(r, 20));
  const history = (await channel.getHistory(10)).map((m) => m.data.text);
  document.body.dataset.result = JSON.stringify({ seen, history });
}
main().catch((error: unknown) => (document.body.dataset.result = JSON.stringify({ error: String(error) })));
