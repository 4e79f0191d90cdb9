import * as http from "node:http";
import { afterAll, expect, it } from "vitest";
import { transports } from "../helpers/clients.js";
import { codeOf, serverForSuite } from "../helpers/server.js";

// The app's back end, asked about every subscription.
const asked: Array<{ user_id: string; topic: string; connection_id: string }> = [];
const hook = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    const ask = JSON.parse(body) as (typeof asked)[number];
    asked.push(ask);
    const reply = (status: number, answer: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(answer));
    if (ask.topic === "chat/vip") reply(200, { allow: true, data: { welcome: `hi ${ask.user_id}` } });
    else if (ask.topic === "chat/open") reply(200, { allow: true });
    else if (ask.topic === "chat/closed") reply(200, { allow: false, reason: "members only" });
    else if (ask.topic === "chat/broken") reply(500, {});
    else setTimeout(() => reply(200, { allow: true }), 1000); // too slow
  });
});
await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
afterAll(() => hook.close());

const server = serverForSuite({
  CHORUS_JOIN_HOOK_URL: `http://127.0.0.1:${(hook.address() as { port: number }).port}/join`,
  CHORUS_JOIN_HOOK_TIMEOUT_MS: "300",
});

it.each(transports)("asks the back end before each join and passes its data on, over $name", async (transport) => {
  const c = transport.create({ url: server.url, token: "zoe" });
  await c.channel("chat/vip").subscribe().ready();
  expect(c.channel("chat/vip").joinData).toEqual({ welcome: "hi zoe" });
  await c.channel("chat/open").subscribe().ready();
  expect(c.channel("chat/open").joinData).toBeUndefined();
  expect(asked.at(-1)).toMatchObject({ user_id: "zoe", topic: "chat/open", connection_id: c.connectionId });

  const closed = await c.channel("chat/closed").subscribe().ready().catch((e: Error) => e);
  expect(await codeOf(Promise.reject(closed))).toBe("PermissionDenied");
  expect(String(closed)).toMatch(/members only/);
  // Fails closed: a broken or slow hook refuses, with UNAVAILABLE.
  expect(await codeOf(c.channel("chat/broken").subscribe().ready())).toBe("Unavailable");
  expect(await codeOf(c.channel("chat/slow").subscribe().ready())).toBe("Unavailable");
  // A refused join left nothing behind: the channel is not subscribed.
  expect(c.channel("chat/closed").subscribed).toBe(false);
  c.disconnect();
});
