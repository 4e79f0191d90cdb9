// The chat example as a user meets it: its back end (the reference's
// routes) and its page in two Chromium contexts against one Chorus node.
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startExample, type RunningExample } from "@chorus/example-kit";
import { chromiumAvailable, launchChromium } from "../../test/helpers/chromium.js";
import { texts, until } from "../../test/helpers/page.js";
import { NodeClient } from "../../test/helpers/clients.js";
import { eventually, serverForSuite } from "../../test/helpers/server.js";
import { createChatBackend } from "./backend.js";


describe("the chat example", () => {
  const chorus = serverForSuite({ CHORUS_PRESENCE_GRACE_MS: "1000" });
  let app: RunningExample;
  beforeAll(async () => {
    app = await startExample({ name: "chat", backend: createChatBackend, web: new URL("./web/", import.meta.url), chorusUrl: chorus.url, setup: "/setup", mode: "development" });
  }, 60_000);
  afterAll(() => app?.close());

  const send = (body: unknown) => fetch(`${app.url}/api/examples/chat/send`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

  it("POST /examples/chat/send stores the message and emits it into chat/<roomId>; a bad one is a 400", async () => {
    const listener = new NodeClient({ url: chorus.url, token: "listener" });
    const seen: unknown[] = [];
    listener.channel("chat/lobby").on("chat:message", ({ data }) => seen.push(data)).subscribe();
    await listener.channel("chat/lobby").ready();
    const message = { id: "m-1", userId: "ada", text: "hello, lobby", timestamp: 1_764_000_000_000 };
    expect((await send({ roomId: "lobby", ...message })).status).toBe(200);
    await eventually(() => seen.length === 1, "the emit");
    expect(seen[0]).toEqual(message);
    // A retried send is stored once; the room's history is the table's.
    expect((await send({ roomId: "lobby", ...message })).status).toBe(200);
    expect(await (await fetch(`${app.url}/api/examples/chat/history?roomId=lobby`)).json()).toEqual([message]);
    expect(await app.sdk.db.query("SELECT room_id, user_id FROM messages WHERE id = ?", ["m-1"])).toEqual([{ room_id: "lobby", user_id: "ada" }]);
    for (const bad of [{ ...message, roomId: "a/b" }, { roomId: "lobby", ...message, text: "  " }, { roomId: "lobby" }]) {
      const response = await send(bad);
      expect(response.status).toBe(400);
      expect((await response.json()).error).toBeTruthy();
    }
    listener.disconnect();
  });

  describe.runIf(chromiumAvailable())("in Chromium", () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await launchChromium();
    });
    afterAll(() => browser?.close());

    const open = async (user: string, room: string): Promise<{ context: BrowserContext; page: Page }> => {
      const context = await browser.newContext();
      const page = await context.newPage();
      page.on("pageerror", (e) => console.error("page error:", e));
      await page.goto(`${app.url}/?room=${room}&user=${user}`);
      await until(`${user} connected`, async () => (await texts(page, "#status"))[0] === "connected");
      return { context, page };
    };
    const say = async (page: Page, text: string) => {
      await page.fill("input", text);
      await page.click("button[type=submit]");
    };
    const shown = (page: Page) => texts(page, "#log .text");

    it("two people see each other's messages and presence within a second, typing, leaving, and a gap in the network", async () => {
      const room = "browsers";
      await send({ roomId: room, id: "before-1", userId: "carol", text: "said before anyone came", timestamp: Date.now() - 1000 });
      const ann = await open("ann", room);
      const bob = await open("bob", room);

      // History on join, oldest first.
      await until("history for bob", async () => (await shown(bob.page))[0] === "said before anyone came");

      // Presence: each sees the other within a second.
      let started = Date.now();
      await until("both online", async () => (await texts(ann.page, "#online span")).includes("bob") && (await texts(bob.page, "#online span")).includes("ann"), 1000);
      console.log(`chat: both present after ${Date.now() - started} ms`);

      // A message reaches the other within a second; the sender sees it once (optimistic, then the broadcast).
      await say(ann.page, "hi bob");
      started = Date.now(); // sent: from here, what the user waits
      await until("bob to see it", async () => (await shown(bob.page)).includes("hi bob"), 1000);
      const latency = Date.now() - started;
      await say(bob.page, "hi ann");
      await until("ann to see it", async () => (await shown(ann.page)).includes("hi ann"), 1000);
      await new Promise((r) => setTimeout(r, 300));
      expect(await shown(ann.page)).toEqual(["said before anyone came", "hi bob", "hi ann"]);
      expect(await shown(bob.page)).toEqual(["said before anyone came", "hi bob", "hi ann"]);
      console.log(`chat: a message typed by one reached the other in ${latency} ms`);

      // Typing.
      await ann.page.fill("input", "typing something");
      await until("bob sees ann typing", async () => (await texts(bob.page, "#typing"))[0] === "ann is typing…");

      // The network gone for bob: reconnecting, and what was said meanwhile appears once he is back.
      await bob.context.setOffline(true);
      await until("bob reconnecting", async () => (await texts(bob.page, "#status"))[0] !== "connected", 15_000);
      await say(ann.page, "while you were away");
      await bob.context.setOffline(false);
      await until("bob back", async () => (await texts(bob.page, "#status"))[0] === "connected", 15_000);
      await until("bob gets what was said", async () => (await shown(bob.page)).includes("while you were away"));
      expect(await shown(bob.page)).toEqual(["said before anyone came", "hi bob", "hi ann", "while you were away"]);

      // Closing bob's page takes him off ann's list.
      await bob.context.close();
      await until("bob gone from ann's list", async () => !(await texts(ann.page, "#online span")).includes("bob"), 10_000);
      await ann.context.close();
    });
  });
});
