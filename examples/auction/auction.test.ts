// The auction example: bids checked in one transaction by the back end,
// concurrent ones ordered; two bidders in Chromium see each accepted bid,
// a refused one is shown only to its bidder, and a late joiner gets the
// price and every bid from the topic's history.
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startExample, type RunningExample } from "@chorus/example-kit";
import { chromiumAvailable, launchChromium } from "../../test/helpers/chromium.js";
import { texts, until } from "../../test/helpers/page.js";
import { NodeClient } from "../../test/helpers/clients.js";
import { serverForSuite } from "../../test/helpers/server.js";
import { createAuctionBackend, type Bid } from "./backend.js";


describe("the auction example", () => {
  const chorus = serverForSuite({ CHORUS_MAX_EMIT_RATE: "0" });
  let app: RunningExample;
  beforeAll(async () => {
    app = await startExample({ name: "auction", backend: createAuctionBackend, web: new URL("./web/", import.meta.url), chorusUrl: chorus.url, setup: "/setup", mode: "development" });
  }, 60_000);
  afterAll(() => app?.close());

  const bid = (userId: string, amount: number, auction = "lamp") =>
    fetch(`${app.url}/api/auctions/${auction}/bids`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ userId, amount }) });

  it("takes concurrent bids one at a time: each accepted bid beats the one before it, and the highest wins", async () => {
    await app.sdk.db.exec("INSERT INTO auctions (id, title, price, ends_at) VALUES ('race', 'A race', 100, 9999999999999)");
    const watcher = new NodeClient({ url: chorus.url, token: "watcher" });
    const seen: Bid[] = [];
    watcher.channel("auction/race").on("bid", ({ data }) => seen.push(data)).subscribe();
    await watcher.channel("auction/race").ready();
    const amounts = [105, 101, 110, 103, 120, 102, 115, 108, 119, 104];
    const answers = await Promise.all(amounts.map((amount, i) => bid(`racer-${i}`, amount, "race")));
    const accepted = (await Promise.all(answers.filter((r) => r.status === 201).map((r) => r.json()))) as Bid[];
    expect(answers.every((r) => r.status === 201 || r.status === 409)).toBe(true);
    const inOrder = accepted.sort((a, b) => a.bidId - b.bidId).map((b) => b.amount);
    for (let i = 1; i < inOrder.length; i++) expect(inOrder[i]).toBeGreaterThanOrEqual(inOrder[i - 1]! + 1);
    expect(inOrder.at(-1)).toBe(120);
    expect((await app.sdk.db.query("SELECT price, leader FROM auctions WHERE id = 'race'"))[0]).toEqual({ price: 120, leader: "racer-4" });
    // Broadcast: exactly the accepted ones, in the order they were accepted.
    await until("every accepted bid broadcast", async () => seen.length === inOrder.length);
    expect(seen.map((b) => b.amount)).toEqual(inOrder);
    // Refusals say why; bad input is a 400; an unknown auction a 404.
    const low = await bid("late", 50, "race");
    expect([low.status, (await low.json()).error]).toEqual([409, "a bid must be at least 121.00"]);
    expect((await bid("x y", 500, "race")).status).toBe(400);
    expect((await bid("ok", -1, "race")).status).toBe(400);
    expect((await bid("ok", 500, "nowhere")).status).toBe(404);
    watcher.disconnect();
  });

  describe.runIf(chromiumAvailable())("in Chromium", () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await launchChromium();
    });
    afterAll(() => browser?.close());

    const open = async (user: string): Promise<Page> => {
      const page = await (await browser.newContext()).newPage();
      page.on("pageerror", (e) => console.error("page error:", e));
      await page.goto(`${app.url}/?auction=lamp&user=${user}`);
      await until(`${user}'s page`, async () => (await texts(page, "h1"))[0] === "A brass reading lamp");
      return page;
    };
    const place = async (page: Page, amount: string) => {
      await page.fill("input", amount);
      await page.click("button[type=submit]");
    };

    it("two bidders see each accepted bid; a refused bid is its bidder's alone; a late joiner sees the price and every bid", async () => {
      const ann = await open("ann");
      const bob = await open("bob");
      expect((await texts(ann, "#price"))[0]).toBe("$10.00");

      await place(ann, "12");
      for (const page of [ann, bob]) await until("ann's bid everywhere", async () => (await texts(page, "#price"))[0] === "$12.00", 5000);
      expect((await texts(ann, "#leader"))[0]).toBe("You lead");
      expect((await texts(bob, "#leader"))[0]).toBe("ann leads");

      await place(bob, "12.50");
      await until("bob told why", async () => (await texts(bob, "#refused"))[0] === "a bid must be at least 13.00");
      await place(bob, "20");
      for (const page of [ann, bob]) await until("bob's bid everywhere", async () => (await texts(page, "#price"))[0] === "$20.00", 5000);
      expect(await texts(ann, "#bids li")).toEqual(["ann: $12.00", "bob: $20.00"]);

      const carol = await open("carol");
      await until("carol sees the price", async () => (await texts(carol, "#price"))[0] === "$20.00");
      await until("carol sees every bid", async () => (await texts(carol, "#bids li")).length === 2);
      expect(await texts(carol, "#bids li")).toEqual(["ann: $12.00", "bob: $20.00"]);
      expect((await texts(carol, "#leader"))[0]).toBe("bob leads");
    });
  });
});
