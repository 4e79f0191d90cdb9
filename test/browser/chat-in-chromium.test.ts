import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startChatApp, type ChatApp } from "../../examples/chat/src/app.js";
import { chromiumAvailable, launchChromium } from "../helpers/chromium.js";
import { serverForSuite } from "../helpers/server.js";

describe.runIf(chromiumAvailable())("the browser client in Chromium (chat example, cross-origin)", () => {
  const chorus = serverForSuite();
  let app: ChatApp;
  let pageUrl: string;
  let browser: Browser;

  beforeAll(async () => {
    // The page comes from the back end's origin, Chorus is another: CORS is exercised.
    app = await startChatApp({ chorusUrl: chorus.url });
    pageUrl = `${app.url}/`;
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    app?.close();
  });

  const open = async (): Promise<Page> => {
    const page = await browser.newPage();
    page.on("pageerror", (e) => console.error("page error:", e));
    await page.goto(pageUrl);
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "connected", undefined, { timeout: 10_000 });
    return page;
  };
  const messages = (page: Page) => page.$$eval("#log > div > div:last-child", (els) => els.map((e) => e.textContent));

  it("delivers a message typed in one tab to the other, and a tab opened later loads it from history", async () => {
    const [tab1, tab2] = await Promise.all([open(), open()]);
    await tab1.fill("#text", "hello from tab 1");
    await tab1.click("button");
    await tab2.waitForFunction(() => document.getElementById("log")!.textContent!.includes("hello from tab 1"), undefined, { timeout: 10_000 });

    // A back-end emit reaches both tabs too.
    await app.sdk.socket.emit("chat:message", { id: "srv-1", userId: "server", text: "from the back end", timestamp: Date.now() }, "chat/general");
    for (const tab of [tab1, tab2]) {
      await tab.waitForFunction(() => document.getElementById("log")!.textContent!.includes("from the back end"), undefined, { timeout: 10_000 });
    }
    expect(await messages(tab1)).toEqual(["hello from tab 1", "from the back end"]);
    expect(await messages(tab2)).toEqual(["hello from tab 1", "from the back end"]);

    const late = await open();
    await late.waitForFunction(() => document.getElementById("log")!.textContent!.includes("hello from tab 1"), undefined, { timeout: 10_000 });
    // The ephemeral emit is not in history; the persisted chat message is.
    expect(await messages(late)).toEqual(["hello from tab 1"]);
  });
});
