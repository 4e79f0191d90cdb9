// The dashboard's back end: orders go into the `orders` table (every
// dashboard hears each INSERT from the table's change events), and once a
// second the day's figures, read from the table, are broadcast on
// `dashboard/metrics` as `metrics:update`, what the reference LiveMetrics
// listens to.
import type { ServerSdk } from "@chorus/client/server";
import { Hono } from "hono";

export interface Metrics {
  activeUsers: number;
  ordersToday: number;
  revenue: number;
}

export function createDashboardBackend(sdk: ServerSdk, tickMs = 1000): { app: Hono; close(): void } {
  const app = new Hono();

  app.post("/setup", async (c) => {
    // total is DOUBLE PRECISION: a NUMERIC travels as a string, and the page adds totals up.
    await sdk.db.exec(`
      CREATE TABLE IF NOT EXISTS orders (
        id SERIAL PRIMARY KEY,
        user_id TEXT NOT NULL,
        total DOUBLE PRECISION NOT NULL,
        status TEXT NOT NULL DEFAULT 'new',
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
      )
    `);
    ready = true;
    return c.json({ ok: true });
  });

  app.post("/orders", async (c) => {
    const { userId, total } = (await c.req.json().catch(() => ({}))) as { userId?: unknown; total?: unknown };
    if (typeof userId !== "string" || !/^[\w-]{1,64}$/.test(userId) || typeof total !== "number" || !(total > 0) || total > 1e9) {
      return c.json({ error: "userId (1-64 letters, digits, _ or -) and total (a positive number)" }, 400);
    }
    const [row] = await sdk.db.query("INSERT INTO orders (user_id, total) VALUES (?, ?) RETURNING id", [userId, Math.round(total * 100) / 100]);
    return c.json(row, 201);
  });

  app.get("/metrics", async (c) => c.json(await metrics()));
  app.onError((error, c) => c.json({ error: error.message }, 500));

  let ready = false;
  const metrics = async (): Promise<Metrics> => {
    const [row] = await sdk.db.query<{ users: number; orders: number; revenue: number }>(
      "SELECT count(DISTINCT user_id)::int AS users, count(*)::int AS orders, coalesce(sum(total), 0)::float8 AS revenue FROM orders WHERE created_at >= date_trunc('day', now())",
    );
    return { activeUsers: row?.users ?? 0, ordersToday: row?.orders ?? 0, revenue: row?.revenue ?? 0 };
  };
  let busy = false;
  const tick = setInterval(() => {
    if (!ready || busy) return;
    busy = true;
    metrics()
      .then((m) => sdk.socket.emit("metrics:update", m, "dashboard/metrics"))
      .catch(() => {}) // the next tick tries again
      .finally(() => (busy = false));
  }, tickMs);
  return { app, close: () => clearInterval(tick) };
}
