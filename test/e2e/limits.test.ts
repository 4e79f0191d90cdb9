import { describe, expect, it } from "vitest";
import type { RealtimeClient } from "../../clients/src/client.js";
import { BrowserClient, NodeClient } from "../helpers/clients.js";
import { codeOf, serverForSuite, sleep } from "../helpers/server.js";

describe("maxConnections", () => {
  const server = serverForSuite({ CHORUS_MAX_CONNECTIONS: "5" });

  it("refuses the connection past the limit with RESOURCE_EXHAUSTED; the others keep working", async () => {
    const admitted: RealtimeClient[] = [];
    for (let i = 0; i < 5; i++) {
      const c = i % 2 ? new BrowserClient({ url: server.url }) : new NodeClient({ url: server.url });
      await c.connect();
      admitted.push(c);
    }
    const extra = new NodeClient({ url: server.url, reconnect: false });
    const refused = extra.connect();
    expect(await codeOf(refused)).toBe("ResourceExhausted");
    expect(extra.status).toBe("disconnected");

    const got: unknown[] = [];
    admitted[0]!.channel("chat/full").on("m", ({ data }) => got.push(data)).subscribe();
    await admitted[0]!.channel("chat/full").ready();
    await admitted[1]!.channel("chat/full").publish("m", "still served");
    await sleep(100);
    expect(got).toEqual(["still served"]);

    // A freed place is free again.
    admitted.pop()!.disconnect();
    await sleep(200);
    const later = new NodeClient({ url: server.url });
    await later.connect();
    for (const c of [...admitted, later, extra]) c.disconnect();
  });
});

describe("publish rate", () => {
  const server = serverForSuite({ CHORUS_MAX_PUBLISH_RATE: "20" });

  it("refuses publishes past the rate with RESOURCE_EXHAUSTED, keeps the session, and refills", async () => {
    const c = new NodeClient({ url: server.url });
    const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => c.channel("chat/rate").publish("m", i, { persist: true })));
    const accepted = results.filter((r) => r.status === "fulfilled").length;
    expect(accepted).toBeGreaterThanOrEqual(20);
    expect(accepted).toBeLessThan(30);
    const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(await codeOf(Promise.reject(refused.reason))).toBe("ResourceExhausted");
    // Nothing half-applied: exactly the accepted ones are in history.
    expect(await c.channel("chat/rate").getHistory(100)).toHaveLength(accepted);
    await sleep(1000);
    await c.channel("chat/rate").publish("m", "after a pause");
    expect(c.status).toBe("connected");
    c.disconnect();
  });
});

describe("subscriptions per connection", () => {
  const server = serverForSuite({ CHORUS_MAX_SUBSCRIPTIONS: "3" });

  it("refuses the subscription past the limit with RESOURCE_EXHAUSTED and keeps the session usable", async () => {
    const c = new BrowserClient({ url: server.url });
    for (const t of ["chat/1", "chat/2", "chat/3"]) await c.channel(t).subscribe().ready();
    expect(await codeOf(c.channel("chat/4").subscribe().ready())).toBe("ResourceExhausted");
    await c.channel("chat/3").subscribe().ready(); // again: not a new subscription
    await c.channel("chat/1").unsubscribe();
    await c.channel("chat/4").subscribe().ready(); // a freed place
    c.disconnect();
  });
});
