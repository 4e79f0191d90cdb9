// The chat page: history first, then live messages; sending goes through
// the back end's POST endpoint, which emits into chat/general.
import { RealtimeClient } from "@chorus/client/browser";
import type { ChatMessage } from "./backend.js";

declare global {
  interface Window {
    CHORUS_URL: string;
  }
}

const userId = `user-${Math.random().toString(36).slice(2, 8)}`;
const realtime = new RealtimeClient({ url: window.CHORUS_URL, token: userId });
const log = document.getElementById("log")!;
const shown = new Set<string>();

function show(message: ChatMessage): void {
  if (shown.has(message.id)) return; // already shown (optimistically or from history)
  shown.add(message.id);
  const row = document.createElement("div");
  row.className = message.userId === userId ? "me" : "";
  const who = document.createElement("div");
  who.className = "who";
  who.textContent = message.userId;
  const text = document.createElement("div");
  text.textContent = message.text;
  row.append(who, text);
  log.append(row);
  log.scrollTop = log.scrollHeight;
}

realtime.onStatusChange((status) => (document.getElementById("status")!.textContent = status));
const channel = realtime.channel("chat/general");
channel.on("chat:message", ({ data }) => show(data as ChatMessage)).subscribe();
channel.getHistory(100).then((history) => history.reverse().forEach((h) => show(h.data as ChatMessage)));

document.getElementById("send")!.addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("text") as HTMLInputElement;
  if (!input.value.trim()) return;
  const message: ChatMessage = { id: `${Date.now()}-${Math.random().toString(36).slice(2, 6)}`, userId, text: input.value, timestamp: Date.now() };
  show(message); // optimistic
  input.value = "";
  await fetch("/examples/chat/send", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(message) });
});
