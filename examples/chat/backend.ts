// The reference "Realtime Chat" server code, with our SDK: messages are
// stored with sdk.db and broadcast with sdk.socket.emit into chat/<roomId>.
// What it adds: the input is checked (a bad request is a 400, not a
// crash), and GET /examples/chat/history gives a room's messages oldest
// first, for a page that joins or comes back.
import type { ServerSdk } from "@chorus/client/server";
import { Hono } from "hono";

export function createChatBackend(sdk: ServerSdk): Hono {
  const app = new Hono();

  // Setup (run once): create tables. created_at is BIGINT where the
  // reference (written for SQLite) says INTEGER: in PostgreSQL an INTEGER
  // holds 32 bits, and a time in milliseconds does not fit.
  app.post("/setup", async (c) => {
    await sdk.db.exec(`
      CREATE TABLE IF NOT EXISTS messages (
        id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        text TEXT NOT NULL,
        created_at BIGINT NOT NULL
      )
    `);
    return c.json({ ok: true });
  });

  // Send a chat message
  app.post("/examples/chat/send", async (c) => {
    const body = await c.req.json().catch(() => undefined);
    const problem = checkMessage(body);
    if (problem) return c.json({ error: problem }, 400);
    const { roomId, id, userId, text, timestamp } = body as ChatPost;

    // Persist to DB (a retried send is stored once)
    await sdk.db.query("INSERT INTO messages (id, room_id, user_id, text, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING", [id, roomId, userId, text, timestamp]);

    // Broadcast to all subscribers
    sdk.socket.emit("chat:message", { id, userId, text, timestamp }, `chat/${roomId}`);

    return c.json({ ok: true });
  });

  // A room's last messages, oldest first.
  app.get("/examples/chat/history", async (c) => {
    const roomId = c.req.query("roomId") ?? "";
    if (!ROOM.test(roomId)) return c.json({ error: "roomId: 1-64 letters, digits, _ or -" }, 400);
    const rows = await sdk.db.query("SELECT id, user_id, text, created_at FROM (SELECT * FROM messages WHERE room_id = ? ORDER BY created_at DESC LIMIT 100) recent ORDER BY created_at", [roomId]);
    return c.json(rows.map((r: any) => ({ id: r.id, userId: r.user_id, text: r.text, timestamp: Number(r.created_at) })));
  });

  app.onError((error, c) => c.json({ error: error.message }, 500));
  return app;
}

export interface ChatPost {
  roomId: string;
  id: string;
  userId: string;
  text: string;
  timestamp: number;
}

const ROOM = /^[A-Za-z0-9_-]{1,64}$/;
const ID = /^[A-Za-z0-9_-]{1,64}$/;

function checkMessage(body: unknown): string | undefined {
  const m = body as Partial<ChatPost> | undefined;
  if (!m || typeof m !== "object") return "the body must be a JSON object";
  if (typeof m.roomId !== "string" || !ROOM.test(m.roomId)) return "roomId: 1-64 letters, digits, _ or -";
  if (typeof m.id !== "string" || !ID.test(m.id)) return "id: 1-64 letters, digits, _ or -";
  if (typeof m.userId !== "string" || !ID.test(m.userId)) return "userId: 1-64 letters, digits, _ or -";
  if (typeof m.text !== "string" || m.text.trim() === "" || m.text.length > 2000) return "text: 1-2000 characters";
  if (typeof m.timestamp !== "number" || !Number.isSafeInteger(m.timestamp)) return "timestamp: milliseconds since 1970";
  return undefined;
}
