// The dashboard example in Chromium: the back end's once-a-second figures
// and each order's INSERT move the reference LiveMetrics; the load script
// places orders through the back end.
import { spawn } from "node:child_process";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startExample, type RunningExample } from "@chorus/example-kit";
import { chromiumAvailable, launchChromium } from "../../test/helpers/chromium.js";
import { until } from "../../test/helpers/page.js";
import { ROOT, serverForSuite } from "../../test/helpers/server.js";
import { createDashboardBackend } from "./backend.js";

const figure = (page: Page, name: string) => page.textContent(`[data-metric=${name}] p`).then((t) => t ?? "");

describe.runIf(chromiumAvailable())("the dashboard example in Chromium", () => {
  const chorus = serverForSuite();
  let app: RunningExample;
  let browser: Browser;
  beforeAll(async () => {
    app = await startExample({ name: "dashboard", backend: (sdk) => createDashboardBackend(sdk, 300), web: new URL("./web/", import.meta.url), chorusUrl: chorus.url, setup: "/setup", mode: "development" });
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it("counts each INSERT as it commits, agrees with the back end's figures, and follows the load script", async () => {
    const page = await browser.newPage();
    page.on("pageerror", (e) => console.error("page error:", e));
    await page.goto(`${app.url}/`);
    await until("the first broadcast", async () => (await figure(page, "orders")) === "0" && (await figure(page, "revenue")) === "$0.00");

    // An INSERT by the server SDK: the order count and revenue move.
    await app.sdk.db.query("INSERT INTO orders (user_id, total) VALUES (?, ?)", ["ada", 12.5]);
    await until("one order", async () => (await figure(page, "orders")) === "1" && (await figure(page, "revenue")) === "$12.50", 5000);
    await until("one active user", async () => (await figure(page, "users")) === "1", 3000);

    // The load script, through the back end.
    const load = spawn(process.execPath, ["--conditions=chorus-source", "--import", "tsx", "examples/dashboard/load.ts", "10", "2", app.url], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    load.stdout.on("data", (d: Buffer) => (out += d.toString()));
    await new Promise((resolve) => load.once("exit", resolve));
    const placed = Number([...out.matchAll(/orders placed: (\d+), failed: 0/g)].at(-1)?.[1]);
    expect(placed).toBeGreaterThanOrEqual(10);
    const expected = (await fetch(`${app.url}/api/metrics`).then((r) => r.json())) as { ordersToday: number; revenue: number };
    expect(expected.ordersToday).toBe(placed + 1);
    await until("the page to agree with the table", async () => (await figure(page, "orders")) === String(expected.ordersToday) && (await figure(page, "revenue")) === `$${expected.revenue.toFixed(2)}`, 5000);
    await page.close();
  });
});
