import * as http from "node:http";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { createChatBackend } from "../../examples/chat/src/backend.js";
import { buildPage } from "../../examples/chat/src/page.js";
import { chromiumAvailable, launchChromium } from "../helpers/chromium.js";
import { removeDir, startServer, type ServerProcess } from "../helpers/server.js";

describe.runIf(chromiumAvailable())("the browser client in Chromium (chat example, cross-origin)", () => {
  let chorus: ServerProcess;
  let backend: http.Server;
  let pageUrl: string;
  let browser: Browser;
  let sdk: ReturnType<typeof createServerSdk>;

  beforeAll(async () => {
    chorus = await startServer();
    sdk = createServerSdk({ url: chorus.url });
    // The page comes from the back end's origin, Chorus is another: CORS is exercised.
    const page = await buildPage(chorus.url);
    backend = http.createServer(createChatBackend(sdk, () => page));
    await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
    pageUrl = `http://127.0.0.1:${(backend.address() as { port: number }).port}/`;
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    backend?.close();
    sdk?.close();
    await chorus?.stop();
    if (chorus) removeDir(chorus.dataDir);
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
    await sdk.socket.emit("chat:message", { id: "srv-1", userId: "server", text: "from the back end", timestamp: Date.now() }, "chat/general");
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
