// The admin API (ServerService, API key): every node's connections a page
// at a time, and ending a user's connections on every node, with or
// without letting its clients reconnect. On both engines, and across two
// nodes on NATS.
import { describe, expect, it } from "vitest";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { NodeClient } from "../helpers/clients.js";
import { natsAvailable, natsNodesForSuite, testEngines } from "../helpers/nats.js";
import { codeOf, eventually, serverForSuite, sleep } from "../helpers/server.js";

const KEY = "admin-test-key";

for (const engine of await testEngines("admin")) {
  describe(`the admin API (${engine.name})`, () => {
    const server = serverForSuite({ ...engine.env(), CHORUS_API_KEYS: KEY });

    it("lists connections a page at a time, by user, and ends a user's with or without reconnecting", async () => {
      const sdk = createServerSdk({ url: server.url, apiKey: KEY });
      const ada1 = new NodeClient({ url: server.url, token: "ada" });
      await ada1.channel("chat/admin").subscribe().ready();
      const ada2 = new NodeClient({ url: server.url, token: "ada" });
      await ada2.connect();
      const bob = new NodeClient({ url: server.url, token: "bob" });
      await bob.connect();

      const all = await sdk.connections.list();
      expect(all.connections.map((c) => c.userId)).toEqual(["ada", "ada", "bob"]);
      expect(all.nextPageToken).toBe("");
      expect(all.connections[0]).toMatchObject({ connectionId: ada1.connectionId, kind: "connect", topics: ["chat/admin"], nodeId: expect.any(String) });
      const first = await sdk.connections.list({ pageSize: 2 });
      expect(first.connections.map((c) => c.connectionId)).toEqual([ada1.connectionId, ada2.connectionId]);
      const second = await sdk.connections.list({ pageSize: 2, pageToken: first.nextPageToken });
      expect([second.connections.map((c) => c.connectionId), second.nextPageToken]).toEqual([[bob.connectionId], ""]);
      expect((await sdk.connections.list({ userId: "ada" })).connections).toHaveLength(2);
      expect(await codeOf(sdk.connections.list({ pageToken: "nonsense" }))).toBe("InvalidArgument");
      expect(await codeOf(sdk.connections.list({ pageSize: 5000 }))).toBe("InvalidArgument");
      const keyless = createServerSdk({ url: server.url, onError: () => {} });
      expect(await codeOf(keyless.connections.list())).toBe("Unauthenticated");
      keyless.close();

      // Ada is shown out and may not come back: her clients stop trying.
      expect(await sdk.connections.disconnectUser("ada", { reason: "banned", reconnect: false })).toBe(2);
      await eventually(() => ada1.status === "disconnected" && ada2.status === "disconnected", "ada's clients to stop");
      await sleep(1500);
      expect([ada1.status, ada2.status, bob.status]).toEqual(["disconnected", "disconnected", "connected"]);
      expect((await sdk.connections.list()).connections.map((c) => c.userId)).toEqual(["bob"]);

      // Bob is moved off (say, for maintenance) and comes back by himself.
      expect(await sdk.connections.disconnectUser("bob", { reconnect: true })).toBe(1);
      await eventually(() => bob.status !== "connected", "bob dropped");
      await eventually(() => bob.status === "connected", "bob back", 10_000);
      expect((await sdk.connections.list()).connections.map((c) => c.userId)).toEqual(["bob"]);
      expect(await sdk.connections.disconnectUser("nobody")).toBe(0);
      for (const c of [ada1, ada2, bob]) c.disconnect();
      sdk.close();
    });
  });
}

const nats = await natsAvailable();

describe.skipIf(!nats)("the admin API across two nodes on NATS", () => {
  const nodes = natsNodesForSuite("admin-nodes", { CHORUS_API_KEYS: KEY });

  it("lists the connections of both nodes from either, and ends a user's on the other node", async () => {
    const onA = new NodeClient({ url: nodes.a.url, token: "ann" });
    const onB = new NodeClient({ url: nodes.b.url, token: "ben" });
    const annOnB = new NodeClient({ url: nodes.b.url, token: "ann" });
    await Promise.all([onA.connect(), onB.connect(), annOnB.connect()]);
    const sdk = createServerSdk({ url: nodes.a.url, apiKey: KEY });
    // A node learns of the others from their heartbeats (every second).
    let listed: Awaited<ReturnType<typeof sdk.connections.list>> | undefined;
    for (let i = 0; i < 40 && (listed?.connections.length ?? 0) < 3; i++) {
      listed = await sdk.connections.list();
      if (listed.connections.length < 3) await sleep(100);
    }
    expect(listed!.connections.map((c) => c.userId).sort()).toEqual(["ann", "ann", "ben"]);
    expect(new Set(listed!.connections.map((c) => c.nodeId)).size).toBe(2);

    expect(await sdk.connections.disconnectUser("ann", { reconnect: false })).toBe(2);
    await eventually(() => onA.status === "disconnected" && annOnB.status === "disconnected", "ann's clients on both nodes to stop");
    expect(onB.status).toBe("connected");
    const sdkB = createServerSdk({ url: nodes.b.url, apiKey: KEY });
    expect((await sdkB.connections.list()).connections.map((c) => c.userId)).toEqual(["ben"]);
    for (const c of [onA, onB, annOnB]) c.disconnect();
    sdk.close();
    sdkB.close();
  });
});
