// @chorus/react in Chromium: a page built by Vite (development build, so
// StrictMode runs every effect twice on mount) renders the reference docs'
// components nearly verbatim and one component per hook; a back end (the
// server SDK) and other clients drive them.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServerSdk, type ServerSdk } from "../../clients/src/server-sdk.js";
import { chromiumAvailable, launchChromium } from "../helpers/chromium.js";
import { NodeClient } from "../helpers/clients.js";
import { ROOT, serverForSuite } from "../helpers/server.js";
import { serveStatic } from "../helpers/static-site.js";

describe.runIf(chromiumAvailable())("@chorus/react in Chromium, in StrictMode", () => {
  const chorus = serverForSuite({ CHORUS_MAX_PUBLISH_RATE: "0" });
  let out: string;
  let site: { url: string; close(): void };
  let browser: Browser;
  let sdk: ServerSdk;

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), "chorus-react-page-"));
    await build({
      root: join(ROOT, "test/browser/react-app"),
      configFile: false,
      logLevel: "warn",
      mode: "development",
      define: { "process.env.NODE_ENV": JSON.stringify("development") },
      resolve: { conditions: ["chorus-source", "module", "browser", "development|production"] },
      build: { outDir: out, emptyOutDir: true, minify: false },
    });
    site = await serveStatic(out);
    browser = await launchChromium();
    sdk = createServerSdk({ url: chorus.url });
    await sdk.db.exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id TEXT, total NUMERIC, status TEXT); CREATE TABLE todos (id INTEGER PRIMARY KEY, list_id INTEGER, title TEXT, text TEXT, done BOOLEAN NOT NULL DEFAULT false)");
  }, 120_000);

  afterAll(async () => {
    sdk?.close();
    await browser?.close();
    site?.close();
    if (out) rmSync(out, { recursive: true, force: true });
  });

  const open = async (query: Record<string, string>): Promise<Page> => {
    const page = await browser.newPage();
    page.on("pageerror", (e) => console.error("page error:", e));
    await page.goto(`${site.url}/?${new URLSearchParams({ chorus: chorus.url, ...query })}`);
    return page;
  };
  const texts = (page: Page, selector: string) => page.$$eval(selector, (els) => els.map((e) => e.textContent ?? ""));
  const attribute = (page: Page, selector: string, name: string) => page.getAttribute(selector, name).then((v) => v ?? "");
  const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  it("ConnectionIndicator, ChatRoom, OnlineUsers and LiveOrders as the docs write them", async () => {
    const room = "reference";
    const ann = await open({ view: "reference", room, user: "ann", name: "Ann" });
    await until("the indicator to say connected", async () => (await texts(ann, "#indicator span"))[0] === "connected");

    // ChatRoom: each message once, in order (its effect ran twice: subscribe, unsubscribe, subscribe).
    const publisher = new NodeClient({ url: chorus.url, token: "pub" });
    const chat = publisher.channel(`chat/${room}`);
    let n = 0;
    // Nothing on the page says when the component's subscription is in place: send until one shows.
    await until("the chat room to listen", async () => {
      await chat.publish("message", { id: `probe-${++n}`, user: "pub", text: `probe ${n}` });
      return (await texts(ann, "#chat div > div")).length > 0;
    });
    const before = (await texts(ann, "#chat div > div")).length;
    for (let i = 0; i < 5; i++) await chat.publish("message", { id: `m${i}`, user: "pub", text: `hello ${i}` });
    await until("five messages", async () => (await texts(ann, "#chat div > div")).length >= before + 5);
    await new Promise((r) => setTimeout(r, 300));
    const shown = await texts(ann, "#chat div > div");
    expect(shown.slice(before)).toEqual([0, 1, 2, 3, 4].map((i) => `pub: hello ${i}`));
    expect(new Set(shown).size).toBe(shown.length); // none twice

    // OnlineUsers: a second user arrives, then leaves.
    await until("ann online", async () => (await texts(ann, "#online h3"))[0] === "1 online");
    const ben = await open({ view: "reference", room, user: "ben", name: "Ben" });
    for (const page of [ann, ben]) await until("two online", async () => (await texts(page, "#online h3"))[0] === "2 online");
    expect((await texts(ann, "#online span")).sort()).toEqual(["Ann", "Ben"]);
    await ben.close();
    await until("ben gone", async () => (await texts(ann, "#online h3"))[0] === "1 online");

    // LiveOrders: the table's changes, with no emit by the back end.
    await until("the orders list to listen", async () => {
      const id = 1000 + ++n;
      await sdk.db.query("INSERT INTO orders (id, user_id, total, status) VALUES (?, ?, ?, ?)", [id, "ann", 1, "probe"]);
      return (await texts(ann, "#orders li")).length > 0;
    });
    await sdk.db.query("INSERT INTO orders (id, user_id, total, status) VALUES (?, ?, ?, ?)", [1, "ann", 99.99, "pending"]);
    await until("order 1", async () => (await texts(ann, "#orders li"))[0] === "#1 - pending - $99.99");
    await sdk.db.query("UPDATE orders SET status = ? WHERE id = ?", ["shipped", 1]);
    await until("order 1 shipped", async () => (await texts(ann, "#orders li"))[0] === "#1 - shipped - $99.99");
    await sdk.db.query("DELETE FROM orders WHERE id = ?", [1]);
    await until("order 1 gone", async () => !(await texts(ann, "#orders li")).some((t) => t.startsWith("#1 ")));
    await ann.close();
    publisher.disconnect();
  });

  it("each hook: status, channel, presence, history with loadMore, table rows and an AI stream", async () => {
    const room = "hooks";
    const publisher = new NodeClient({ url: chorus.url, token: "pub" });
    const chat = publisher.channel(`chat/${room}`);
    for (let i = 1; i <= 7; i++) await chat.publish("message", { text: `old ${i}` }, { persist: true });
    await sdk.db.query("INSERT INTO todos (id, title) VALUES (?, ?)", [1, "write tests"]);

    const cat = await open({ view: "hooks", room, user: "cat", name: "Cat" });
    await until("connected", async () => (await texts(cat, "#status"))[0] === "connected");
    await until("subscribed", async () => (await attribute(cat, "#messages", "data-state")) === "subscribed");

    // useHistory: the last five, oldest first; older ones on demand.
    await until("history", async () => (await attribute(cat, "#history", "data-loading")) === "false");
    expect(await attribute(cat, "#history", "data-texts")).toBe("old 3,old 4,old 5,old 6,old 7");
    await cat.click("#older");
    await until("older history", async () => (await attribute(cat, "#history", "data-texts")).startsWith("old 1,"));
    expect(await attribute(cat, "#history", "data-texts")).toBe("old 1,old 2,old 3,old 4,old 5,old 6,old 7");

    // useChannel and useHistory: a live message once each.
    await chat.publish("message", { text: "live 1" }, { persist: true });
    await until("the live message", async () => (await attribute(cat, "#history", "data-texts")).endsWith("old 7,live 1"));
    await until("the live message in the channel", async () => (await texts(cat, "#messages p")).includes("live 1"));
    await new Promise((r) => setTimeout(r, 300));
    expect(await texts(cat, "#messages p")).toEqual(["live 1"]);

    // usePresence: two members; a state change is seen in place.
    const dan = await open({ view: "hooks", room, user: "dan", name: "Dan" });
    for (const page of [cat, dan]) await until("two members", async () => (await attribute(page, "#members", "data-users")) === "cat,dan");
    await dan.click("#move");
    await until("dan moved", async () => (await texts(cat, "#members span")).join("").includes("Dan@1"));
    expect((await texts(cat, "#members span")).map((s) => s.trim())).toEqual(["Cat@0", "Dan@1"]);
    await dan.close();
    await until("dan left", async () => (await attribute(cat, "#members", "data-users")) === "cat");

    // useTable: the row written before the page opened (from the table's history), then changes.
    await until("todo 1", async () => (await attribute(cat, "#todos", "data-rows")) === "1:write tests:open");
    await sdk.db.query("INSERT INTO todos (id, title) VALUES (?, ?)", [2, "ship it"]);
    await sdk.db.query("UPDATE todos SET done = true WHERE id = ?", [1]);
    await until("todos changed", async () => (await attribute(cat, "#todos", "data-rows")) === "1:write tests:done,2:ship it:open");
    await sdk.db.query("DELETE FROM todos WHERE id = ?", [2]);
    await until("todo 2 gone", async () => (await attribute(cat, "#todos", "data-rows")) === "1:write tests:done");

    // useStream: a piped response, as it grows and once done.
    await sdk.socket.pipe(`ai/${room}`, ["Hel", "lo, ", "Cat"], { event: "answer" });
    await until("the answer", async () => (await attribute(cat, "#answer", "data-status")) === "done");
    expect(await attribute(cat, "#answer", "data-text")).toBe("Hello, Cat");
    expect(await attribute(cat, "#answer", "data-count")).toBe("1");
    await cat.close();
    publisher.disconnect();
  });

  it("the complete examples: Chat, CollaborativeTodos, LiveMetrics and LiveFeed as the docs write them", async () => {
    const room = "complete";
    const earlier = new NodeClient({ url: chorus.url, token: "gus" });
    for (const text of ["first", "second"]) {
      await earlier.channel(`chat/${room}`).publish("message", { id: `h-${text}`, userId: "gus", userName: "Gus", text, timestamp: Date.now() }, { persist: true });
    }
    earlier.disconnect();
    const eve = await open({ view: "complete", room, list: "7", user: "eve", name: "Eve" });
    const fay = await open({ view: "complete", room, list: "7", user: "fay", name: "Fay" });
    const lines = (page: Page) => texts(page, "#full-chat div[style] > div");

    // Chat: the history on join (as getHistory returns it), who is online, and a message sent from the form.
    for (const page of [eve, fay]) {
      await until("history", async () => (await lines(page)).length === 2);
      expect(await lines(page)).toEqual(["Gus: second", "Gus: first"]);
      await until("both online", async () => (await texts(page, "#full-chat > div > div:first-child"))[0]?.startsWith("2 online") ?? false);
    }
    expect((await texts(eve, "#full-chat > div > div:first-child"))[0]!.replace("2 online: ", "").split(", ").sort()).toEqual(["Eve", "Fay"]);
    await eve.fill("#full-chat input", "hello from Eve");
    await eve.click("#full-chat button");
    for (const page of [eve, fay]) await until("the sent message", async () => (await lines(page)).includes("Eve: hello from Eve"));
    await new Promise((r) => setTimeout(r, 300));
    for (const page of [eve, fay]) expect(await lines(page)).toEqual(["Gus: second", "Gus: first", "Eve: hello from Eve"]);

    // CollaborativeTodos: the editors, and list 7's rows as the table changes (list 8's stay out).
    await until("both editors", async () => (await texts(eve, "#todo-list p"))[0] === "Editors: Eve, Fay" || (await texts(eve, "#todo-list p"))[0] === "Editors: Fay, Eve");
    await sdk.db.query("INSERT INTO todos (id, list_id, text) VALUES (?, ?, ?)", [10, 7, "buy milk"]);
    await sdk.db.query("INSERT INTO todos (id, list_id, text) VALUES (?, ?, ?)", [11, 8, "not this list"]);
    await sdk.db.query("INSERT INTO todos (id, list_id, text) VALUES (?, ?, ?)", [12, 7, "call Ann"]);
    for (const page of [eve, fay]) await until("list 7", async () => (await texts(page, "#todo-list li")).join("|") === "buy milk|call Ann");
    await sdk.db.query("UPDATE todos SET done = true WHERE id = ?", [10]);
    await until("done", async () => (await eve.$eval("#todo-list li", (li) => (li as HTMLElement).style.textDecoration)) === "line-through");
    await sdk.db.query("DELETE FROM todos WHERE id = ?", [12]);
    await until("deleted", async () => (await texts(fay, "#todo-list li")).join("|") === "buy milk");
    await fay.close();
    await until("one editor", async () => (await texts(eve, "#todo-list p"))[0] === "Editors: Eve");

    // LiveMetrics and LiveFeed: a metrics broadcast from the back end, then orders counted as they are inserted.
    await sdk.socket.emit("metrics:update", { activeUsers: 5, ordersToday: 2, revenue: 10 }, "dashboard/metrics");
    const metrics = () => texts(eve, "#metrics p");
    await until("the metrics", async () => (await metrics()).join("|") === "5|2|$10.00");
    await sdk.db.query("INSERT INTO orders (id, user_id, total, status) VALUES (?, ?, ?, ?)", [500, "eve", 4.5, "pending"]);
    await until("an order counted", async () => (await metrics()).join("|") === "5|3|$14.50");
    await until("the feed", async () => (await texts(eve, "#feed li"))[0] === "pending");
    await sdk.db.query("UPDATE orders SET status = ? WHERE id = ?", ["shipped", 500]);
    await until("the feed updated", async () => (await texts(eve, "#feed li"))[0] === "shipped");
    expect(await metrics()).toEqual(["5", "3", "$14.50"]); // an UPDATE is not a new order
    await eve.close();
  });
});
