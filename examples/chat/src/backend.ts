import * as http from "node:http";
import type { ServerSdk } from "@chorus/client/server";

/** The shape the chat page posts, as in the reference "Realtime Chat". */
export interface ChatMessage {
  id: string;
  userId: string;
  text: string;
  timestamp: number;
}

export const CHAT_TOPIC = "chat/general";

/**
 * The chat's back end: `POST /examples/chat/send` persists the message in
 * the room's history and broadcasts it with one emit; `GET /` serves the page.
 */
export function createChatBackend(sdk: ServerSdk, page: () => string): http.RequestListener {
  return (req, res) => {
    const reply = (status: number, body: unknown, type = "application/json") => {
      res.writeHead(status, { "content-type": type });
      res.end(typeof body === "string" ? body : JSON.stringify(body));
    };
    if (req.method === "GET" && (req.url === "/" || req.url === "/index.html")) return reply(200, page(), "text/html; charset=utf-8");
    if (req.url !== "/examples/chat/send") return reply(404, { error: "not found" });
    if (req.method !== "POST") return reply(405, { error: "use POST" });

    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      body += chunk;
      if (body.length > 16_384) req.destroy();
    });
    req.on("end", async () => {
      let message: ChatMessage;
      try {
        message = parseMessage(JSON.parse(body));
      } catch (error) {
        return reply(400, { error: (error as Error).message });
      }
      try {
        // persist: later joiners load it with getHistory; id: a retried POST is stored once.
        const sent = await sdk.socket.emit("chat:message", message, CHAT_TOPIC, { persist: true, id: message.id, userId: message.userId });
        reply(200, { ok: true, id: sent.id, position: sent.position });
      } catch (error) {
        reply(502, { error: `chorus: ${(error as Error).message}` });
      }
    });
  };
}

function parseMessage(input: unknown): ChatMessage {
  const m = input as Partial<ChatMessage> | null;
  if (!m || typeof m !== "object") throw new Error("body must be a JSON object");
  if (typeof m.text !== "string" || m.text.trim() === "" || m.text.length > 2000) throw new Error("text must be 1-2000 characters");
  if (typeof m.userId !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(m.userId)) throw new Error("userId must be 1-64 letters, digits, _ or -");
  const id = typeof m.id === "string" && /^[A-Za-z0-9_-]{1,64}$/.test(m.id) ? m.id : `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  return { id, userId: m.userId, text: m.text.trim(), timestamp: typeof m.timestamp === "number" ? m.timestamp : Date.now() };
}
