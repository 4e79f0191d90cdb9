// The built-in page at `/`: a new user sees Chorus work without writing
// code. Each panel is walked in Chromium against a node in development mode,
// then against one that verifies tokens (the page asks for one).
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { chromiumAvailable, launchChromium } from "../helpers/chromium.js";
import { texts, until } from "../helpers/page.js";
import { NodeClient } from "../helpers/clients.js";
import { ROOT, serverForSuite } from "../helpers/server.js";

const some = (page: Page, selector: string, part: string) => texts(page, selector).then((all) => all.some((t) => t.includes(part)));

/** Screenshots land in a temporary directory; with CHORUS_UPDATE_SCREENSHOTS=1 they replace the README's (docs/). */
const shots = mkdtempSync(join(tmpdir(), "chorus-console-shots-"));
const screenshot = async (page: Page, name: string) => {
  const file = join(shots, name);
  await page.screenshot({ path: file, fullPage: true });
  if (process.env.CHORUS_UPDATE_SCREENSHOTS === "1") copyFileSync(file, join(ROOT, "docs", name));
};

describe.runIf(chromiumAvailable())("the built-in page", () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    rmSync(shots, { recursive: true, force: true });
  });

  describe("in development mode", () => {
    const server = serverForSuite({ CHORUS_MAX_PUBLISH_RATE: "0" });

    it("walks every panel: status, a topic's messages in and out, presence, history with paging, an AI stream, a live table, the node", { timeout: 120_000 }, async () => {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      page.on("pageerror", (e) => console.error("page error:", e));
      const loadedAt = Date.now();
      await page.goto(`${server.url}/`);
      await until("connected", async () => (await texts(page, "#status"))[0] === "connected");
      await until("joined the default topic", async () => (await texts(page, "#joined"))[0] === "joined demo/room");

      // Messages in: another client publishes; the time from loading the page to seeing it is the closing note's figure.
      const other = new NodeClient({ url: server.url, token: "grace" });
      await other.channel("demo/room").publish("message", { text: "from another client" }, { persist: true });
      await until("a message in", () => some(page, "#messages li.in", "from another client"));
      console.log(`built-in page: ${Date.now() - loadedAt} ms from page load to the first message on screen`);

      // Messages out, kept in history.
      for (let n = 1; n <= 12; n++) {
        await page.fill("#data", JSON.stringify({ text: `out ${n}` }));
        await page.click("#send-form button");
        await until(`message ${n} out`, () => some(page, "#messages li.out", `out ${n}"`));
      }
      // The other client hears them.
      const heard: unknown[] = [];
      other.channel("demo/room").on("message", ({ data }) => heard.push(data)).subscribe();
      await other.channel("demo/room").ready();
      await page.fill("#data", JSON.stringify({ text: "to grace" }));
      await page.click("#send-form button");
      await until("grace to hear it", async () => heard.some((d) => (d as { text: string }).text === "to grace"));

      // Presence: the page and another client.
      await page.fill("#name", "Ada");
      await page.click("#track-form button");
      await other.channel("demo/room").track({ name: "Grace" });
      await until("two members", async () => (await texts(page, "#member-count"))[0] === "2");
      expect((await texts(page, "#members li")).sort()).toEqual([expect.stringContaining("Ada"), expect.stringContaining("Grace")]);

      // History: the newest ten, then older ones.
      await page.click("#history-load");
      await until("ten in history", async () => (await texts(page, "#history li")).length === 10);
      expect((await texts(page, "#history li"))[0]).toContain("to grace");
      await page.click("#history-older");
      await until("older ones", async () => (await texts(page, "#history li")).length === 14);
      expect((await texts(page, "#history li")).at(-1)).toContain("from another client");

      // An AI stream: the reply grows and ends.
      await page.click("#stream-start");
      await until("the stream to end", () => some(page, "#stream-out", "[done]"), 15_000);
      expect((await texts(page, "#stream-out"))[0]).toContain("every stream ends");

      // A live table: rows follow INSERT, UPDATE, DELETE, including a change made elsewhere.
      await page.click("#table-open");
      await until("the table open", () => some(page, "#table-state", "live"), 60_000); // the first use opens the embedded database
      await page.click("#row-insert");
      await page.click("#row-insert");
      await until("two rows", async () => (await texts(page, "#rows tr")).length === 2);
      await page.click("#row-update");
      await until("the first row updated", async () => (await texts(page, "#rows tr td:nth-child(3)"))[0] === "2");
      const sdk = createServerSdk({ url: server.url });
      await sdk.db.query("INSERT INTO demo_items (label, qty) VALUES ($1, $2)", ["from the back end", 7]);
      await until("the back end's row", () => some(page, "#rows tr", "from the back end"));
      await page.click("#row-delete");
      await until("the last row gone", async () => (await texts(page, "#rows tr")).length === 2);
      sdk.close();

      // The node: connections, topics, traffic, engine, database.
      await until("the inspector", async () => Number((await texts(page, "#fact-messages-published"))[0]) >= 14);
      expect((await texts(page, "#fact-connections"))[0]).toMatch(/^[2-9]\d* \(/);
      expect((await texts(page, "#fact-engine"))[0]).toBe("memory");
      await until("the changes counted", () => some(page, "#fact-database", "pglite, open, 5 changes stored"));
      expect(await page.isVisible("#token-form")).toBe(false); // nothing to ask in development mode
      expect(await page.isVisible("#key-form")).toBe(false);
      expect(await some(page, "#topics li", "demo/room: 2 subscribers")).toBe(true);
      await screenshot(page, "console.png");
      other.disconnect();
      await page.close();
    });
  });

  describe("on a node that verifies tokens", () => {
    const SECRET = "console-test-secret-long-enough-for-hs256";
    const server = serverForSuite({ CHORUS_JWT_SECRET: SECRET, CHORUS_API_KEYS: "console-key", CHORUS_PERMISSIONS: JSON.stringify({ subscribe: ["demo/*"], publish: ["demo/*"], history: ["demo/*"], presence: ["demo/*"] }) });

    it("asks for a token and an API key, then works", async () => {
      const page = await browser.newPage();
      await page.goto(`${server.url}/`);
      await until("the token form", async () => page.isVisible("#token-form"));
      expect(await page.isVisible("#key-form")).toBe(true);
      const token = await new SignJWT({}).setSubject("ada").setExpirationTime("1h").setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(SECRET));
      await page.fill("#token", token);
      await page.click("#token-form button");
      await until("connected", async () => (await texts(page, "#status"))[0] === "connected");
      await page.click("#join-form button");
      await until("joined", async () => (await texts(page, "#joined"))[0] === "joined demo/room");
      await page.fill("#api-key", "console-key");
      await page.click("#key-form button");
      await until("the inspector", async () => (await texts(page, "#fact-mode"))[0] === "tokens verified");
      await page.close();
    });
  });
});
