import { afterAll, beforeAll, expect, it } from "vitest";
import { BrowserClient, NodeClient } from "../../test/helpers/clients.js";
import { eventually, serverForSuite } from "../../test/helpers/server.js";
import { startChatApp, type ChatApp } from "./src/app.js";
import type { ChatMessage } from "./src/backend.js";

const chorus = serverForSuite();
let app: ChatApp;
let backendUrl: string;
beforeAll(async () => {
  app = await startChatApp({ chorusUrl: chorus.url });
  backendUrl = app.url;
});
afterAll(() => app.close());

const send = (body: unknown) =>
  fetch(`${backendUrl}/examples/chat/send`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

it("POST /examples/chat/send reaches every client on chat/general, and later joiners load it from history", async () => {
  const tab1 = new BrowserClient({ url: chorus.url, token: "user-1" });
  const tab2 = new NodeClient({ url: chorus.url, token: "user-2" });
  const seen: ChatMessage[][] = [[], []];
  [tab1, tab2].forEach((c, i) => c.channel("chat/general").on("*", ({ data }) => seen[i]!.push(data)).subscribe());
  await Promise.all([tab1.channel("chat/general").ready(), tab2.channel("chat/general").ready()]);

  const message = { id: "m-1", userId: "user-1", text: "hello, room", timestamp: 1700000000000 };
  const res = await send(message);
  expect(res.status).toBe(200);
  await eventually(() => seen.every((s) => s.length === 1), "the message at both tabs");
  expect(seen[0]![0]).toEqual(message);
  expect(seen[1]![0]).toEqual(message);

  // A retried POST (same id) is stored once.
  expect((await send(message)).status).toBe(200);
  const late = new NodeClient({ url: chorus.url, token: "user-3" });
  const history = await late.channel("chat/general").getHistory(50);
  expect(history.map((h) => h.data)).toEqual([message]);
  expect(history[0]).toMatchObject({ event: "chat:message", user_id: "user-1", room_id: "chat/general" });
  for (const c of [tab1, tab2, late]) c.disconnect();
});

it("rejects a bad message with 400 and broadcasts nothing", async () => {
  const res = await send({ userId: "user-1", text: "   " });
  expect(res.status).toBe(400);
  expect((await res.json()).error).toMatch(/text/);
  expect((await send({ userId: "no spaces allowed", text: "x" })).status).toBe(400);
});

it("serves the page with the bundled browser client", async () => {
  const html = await (await fetch(backendUrl)).text();
  expect(html).toContain("chat/general");
  expect(html).toContain(chorus.url);
  expect(html).not.toContain("node:http2"); // no Node-only code in the browser bundle
});
