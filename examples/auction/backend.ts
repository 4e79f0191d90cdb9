// The auction's back end: a bid is validated and recorded in one SQL
// statement (one transaction: concurrent bids are ordered by the row lock,
// each checked against the price the one before it left), and only then
// broadcast on `auction/<id>`, kept in the topic's history so a late joiner
// sees every bid.
import type { ServerSdk } from "@chorus/client/server";
import { Hono } from "hono";

/** A bid must beat the price by at least this much. */
export const MIN_INCREMENT = 1;

export interface Bid {
  bidId: number;
  auctionId: string;
  userId: string;
  amount: number;
  at: number;
}

export function createAuctionBackend(sdk: ServerSdk): Hono {
  const app = new Hono();

  app.post("/setup", async (c) => {
    await sdk.db.exec(`
      CREATE TABLE IF NOT EXISTS auctions (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        price DOUBLE PRECISION NOT NULL,
        leader TEXT,
        ends_at BIGINT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS bids (
        id SERIAL PRIMARY KEY,
        auction_id TEXT NOT NULL REFERENCES auctions (id),
        user_id TEXT NOT NULL,
        amount DOUBLE PRECISION NOT NULL,
        created_at BIGINT NOT NULL
      );
      INSERT INTO auctions (id, title, price, ends_at)
        VALUES ('lamp', 'A brass reading lamp', 10, (extract(epoch FROM now()) * 1000)::bigint + 86400000)
        ON CONFLICT (id) DO NOTHING;
    `);
    return c.json({ ok: true });
  });

  app.get("/auctions/:id", async (c) => {
    const [auction] = await sdk.db.query("SELECT id, title, price, leader, ends_at FROM auctions WHERE id = ?", [c.req.param("id")]);
    if (!auction) return c.json({ error: "no such auction" }, 404);
    return c.json({ id: auction.id, title: auction.title, price: auction.price, leader: auction.leader, endsAt: Number(auction.ends_at) });
  });

  app.post("/auctions/:id/bids", async (c) => {
    const auctionId = c.req.param("id");
    const { userId, amount } = (await c.req.json().catch(() => ({}))) as { userId?: unknown; amount?: unknown };
    if (typeof userId !== "string" || !/^[\w-]{1,64}$/.test(userId)) return c.json({ error: "userId: 1-64 letters, digits, _ or -" }, 400);
    if (typeof amount !== "number" || !Number.isFinite(amount) || amount <= 0 || amount > 1e9) return c.json({ error: "amount: a positive number" }, 400);
    const bid = Math.round(amount * 100) / 100;
    const at = Date.now();
    // One statement, one transaction: the update takes the auction's row lock, so a concurrent
    // bid waits and is checked against the price this one leaves. (The final SELECT sees the
    // auction as it was before this statement: for a refused bid, the price that beat it.)
    const [result] = await sdk.db.query(
      `WITH won AS (
         UPDATE auctions SET price = $2, leader = $3
         WHERE id = $1 AND $2 >= price + ${MIN_INCREMENT} AND ends_at > $4
         RETURNING id
       ), recorded AS (
         INSERT INTO bids (auction_id, user_id, amount, created_at) SELECT id, $3, $2, $4 FROM won RETURNING id
       )
       SELECT (SELECT id FROM recorded) AS bid_id, a.price, a.ends_at FROM auctions a WHERE a.id = $1`,
      [auctionId, bid, userId, at],
    );
    if (!result) return c.json({ error: "no such auction" }, 404);
    if (result.bid_id === null) {
      const ended = Number(result.ends_at) <= at;
      return c.json({ error: ended ? "the auction has ended" : `a bid must be at least ${(result.price + MIN_INCREMENT).toFixed(2)}`, price: result.price }, 409);
    }
    const accepted: Bid = { bidId: result.bid_id, auctionId, userId, amount: bid, at };
    // Stored once under its bid's id, whatever a retry does.
    await sdk.socket.emit("bid", accepted, `auction/${auctionId}`, { persist: true, id: `bid-${result.bid_id}` });
    return c.json(accepted, 201);
  });

  app.onError((error, c) => c.json({ error: error.message }, 500));
  return app;
}
