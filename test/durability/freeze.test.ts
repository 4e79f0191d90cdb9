// The browser transport behind a proxy that freezes one of its pooled
// connections at a time (half-open: no error, no close): a command stuck
// on it fails at its deadline, the connection is let go, and with the
// publisher retrying each failed message under its id, every persisted
// message reaches the subscribers exactly once and in order.
import { expect, it } from "vitest";
import { BrowserClient, NodeClient } from "../helpers/clients.js";
import { LoopbackProxy } from "../helpers/proxy.js";
import { eventually, serverForSuite, sleep } from "../helpers/server.js";

const server = serverForSuite({ CHORUS_MAX_PUBLISH_RATE: "0" });
const COUNT = 2000;
const DEADLINE_MS = 2000;

it("notices frozen pooled connections within the command deadline and loses no persisted message", { timeout: 120_000 }, async () => {
  const proxy = await LoopbackProxy.start(server.port);
  const topic = "chat/frozen-pool";
  const browser = new BrowserClient({ url: proxy.url, token: "browser", commandTimeoutMs: DEADLINE_MS, connectTimeoutMs: DEADLINE_MS, onError: () => {} });
  const watcher = new NodeClient({ url: server.url, token: "watcher" });
  const seenByBrowser: number[] = [];
  const seenByWatcher: number[] = [];
  browser.channel(topic).on("m", ({ data }) => seenByBrowser.push(data)).subscribe();
  watcher.channel(topic).on("m", ({ data }) => seenByWatcher.push(data)).subscribe();
  await browser.channel(topic).ready();
  await watcher.channel(topic).ready();
  const stalls: number[] = [];
  let freezes = 0;
  try {
    for (let n = 0; n < COUNT; n++) {
      if (n > 0 && n % 400 === 0) {
        proxy.freezeNewest();
        freezes++;
      }
      for (;;) {
        const started = Date.now();
        try {
          await browser.channel(topic).publish("m", n, { persist: true, id: `f${n}` });
          break;
        } catch {
          stalls.push(Date.now() - started);
          await sleep(20);
        }
      }
    }
    await eventually(() => seenByBrowser.length >= COUNT && seenByWatcher.length >= COUNT, "every message at both subscribers", 60_000);
    console.log(`frozen pool: ${freezes} connections frozen while publishing ${COUNT} persisted messages; ${stalls.length} commands failed at their deadline (${stalls.join(", ")} ms) and were retried; ${seenByBrowser.length} received by the browser client, ${seenByWatcher.length} by another`);
    const expected = Array.from({ length: COUNT }, (_, n) => n);
    expect(seenByBrowser).toEqual(expected);
    expect(seenByWatcher).toEqual(expected);
    expect((await watcher.channel(topic).getHistory(1000)).length).toBe(1000);
    for (const stall of stalls) expect(stall).toBeLessThan(DEADLINE_MS + 1500);
  } finally {
    browser.disconnect();
    watcher.disconnect();
    await proxy.close();
  }
});
