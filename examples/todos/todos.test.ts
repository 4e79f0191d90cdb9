// The todos example in two Chromium contexts: rows added, ticked and
// deleted by one editor (or by any SQL) reach the other from the table's
// change events; each sees who else is editing.
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startExample, type RunningExample } from "@chorus/example-kit";
import { chromiumAvailable, launchChromium } from "../../test/helpers/chromium.js";
import { texts, until } from "../../test/helpers/page.js";
import { serverForSuite } from "../../test/helpers/server.js";
import { createTodosBackend } from "./backend.js";


describe.runIf(chromiumAvailable())("the todos example in Chromium", () => {
  const chorus = serverForSuite({ CHORUS_PRESENCE_GRACE_MS: "1000" });
  let app: RunningExample;
  let browser: Browser;
  beforeAll(async () => {
    app = await startExample({ name: "todos", backend: createTodosBackend, web: new URL("./web/", import.meta.url), chorusUrl: chorus.url, setup: "/setup", mode: "development" });
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  const open = async (user: string): Promise<{ context: BrowserContext; page: Page }> => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on("pageerror", (e) => console.error("page error:", e));
    await page.goto(`${app.url}/?list=1&user=${user}`);
    return { context, page };
  };
  const items = (page: Page) => texts(page, "li span");

  it("keeps two editors' lists the same, whoever changes the table, and shows who is editing", async () => {
    await app.sdk.db.query("INSERT INTO todos (list_id, text) VALUES (1, 'there before'), (2, 'another list')");
    const ann = await open("ann");
    const bob = await open("bob");
    await until("the rows already there", async () => (await items(ann.page)).join() === "there before" && (await items(bob.page)).join() === "there before");
    await until("both editors listed", async () => (await texts(ann.page, "#editors"))[0] === "Editors: ann, bob" && (await texts(bob.page, "#editors"))[0] === "Editors: ann, bob");

    // Added by ann, through the back end.
    await ann.page.fill("input", "buy milk");
    await ann.page.click("button[type=submit]");
    await until("bob sees the new todo", async () => (await items(bob.page)).includes("buy milk"), 5000);

    // An INSERT by any SQL (here the server SDK) reaches both; a row of another list reaches neither.
    await app.sdk.db.query("INSERT INTO todos (list_id, text) VALUES (?, ?), (?, ?)", [1, "from sql", 2, "not this list"]);
    for (const { page } of [ann, bob]) await until("the SQL insert", async () => (await items(page)).includes("from sql"), 5000);

    // Ticked by bob: struck through for ann.
    await bob.page.click("li span:text('buy milk')");
    await until("ann sees it done", async () => (await ann.page.getAttribute("li:has(span:text('buy milk'))", "class")) === "done", 5000);

    // Deleted by ann: gone for bob.
    await ann.page.click("button[aria-label='delete there before']");
    await until("bob sees it gone", async () => !(await items(bob.page)).includes("there before"), 5000);
    expect(await items(bob.page)).toEqual(["buy milk", "from sql"]);
    expect(await items(ann.page)).toEqual(["buy milk", "from sql"]);

    // Bob leaves: ann's editors list follows.
    await bob.context.close();
    await until("bob gone from the editors", async () => (await texts(ann.page, "#editors"))[0] === "Editors: ann", 10_000);
    await ann.context.close();
  });
});
