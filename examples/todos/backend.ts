// The todos' back end: it only writes rows. Every editor's page hears the
// INSERT, UPDATE and DELETE from the table's change events, whoever made
// them (this back end, another service, psql): nobody calls emit.
import type { ServerSdk } from "@chorus/client/server";
import { Hono } from "hono";

export function createTodosBackend(sdk: ServerSdk): Hono {
  const app = new Hono();

  app.post("/setup", async (c) => {
    await sdk.db.exec(`
      CREATE TABLE IF NOT EXISTS todos (
        id SERIAL PRIMARY KEY,
        list_id INTEGER NOT NULL,
        text TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT false
      )
    `);
    return c.json({ ok: true });
  });

  app.get("/todos", async (c) => {
    const listId = Number(c.req.query("listId"));
    if (!Number.isSafeInteger(listId)) return c.json({ error: "listId: an integer" }, 400);
    return c.json(await sdk.db.query("SELECT * FROM todos WHERE list_id = ? ORDER BY id", [listId]));
  });

  app.post("/todos", async (c) => {
    const { listId, text } = (await c.req.json().catch(() => ({}))) as { listId?: unknown; text?: unknown };
    if (!Number.isSafeInteger(listId) || typeof text !== "string" || text.trim() === "" || text.length > 500) return c.json({ error: "listId (integer) and text (1-500 characters)" }, 400);
    const [row] = await sdk.db.query("INSERT INTO todos (list_id, text) VALUES (?, ?) RETURNING *", [listId, text.trim()]);
    return c.json(row, 201);
  });

  app.patch("/todos/:id", async (c) => {
    const { done } = (await c.req.json().catch(() => ({}))) as { done?: unknown };
    if (typeof done !== "boolean") return c.json({ error: "done: true or false" }, 400);
    const rows = await sdk.db.query("UPDATE todos SET done = ? WHERE id = ? RETURNING *", [done, Number(c.req.param("id"))]);
    return rows.length ? c.json(rows[0]) : c.json({ error: "no such todo" }, 404);
  });

  app.delete("/todos/:id", async (c) => {
    const rows = await sdk.db.query("DELETE FROM todos WHERE id = ? RETURNING id", [Number(c.req.param("id"))]);
    return rows.length ? c.json({ ok: true }) : c.json({ error: "no such todo" }, 404);
  });

  app.onError((error, c) => c.json({ error: error.message }, 500));
  return app;
}
