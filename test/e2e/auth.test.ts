import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { ServerService } from "../../gen/chorus/v1/server_pb.js";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { BrowserClient, NodeClient, transports } from "../helpers/clients.js";
import { codeOf, eventually, serverForSuite, sleep } from "../helpers/server.js";

const SECRET = "test-secret-that-is-long-enough-for-hs256";
const keys = mkdtempSync(join(tmpdir(), "chorus-keys-"));
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
writeFileSync(join(keys, "rsa.pem"), rsa.publicKey.export({ type: "spki", format: "pem" }));
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const jwks = { keys: [{ ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" }] };
writeFileSync(join(keys, "jwks.json"), JSON.stringify(jwks));

const server = serverForSuite({
  CHORUS_JWT_SECRET: SECRET,
  CHORUS_JWT_PUBLIC_KEY: join(keys, "rsa.pem"),
  CHORUS_JWKS_FILE: join(keys, "jwks.json"),
  CHORUS_JWT_AUDIENCE: "chorus-test",
  CHORUS_PERMISSIONS: JSON.stringify({
    subscribe: ["chat/*", "notifications/{sub}"],
    publish: ["chat/*"],
    history: ["chat/*"],
  }),
  CHORUS_API_KEYS: "backend-key",
});

interface TokenOptions {
  sub?: string;
  aud?: string;
  expiresIn?: string | number;
  claims?: Record<string, unknown>;
  key?: "hs" | "rs" | "es" | "wrong";
}
async function token(o: TokenOptions = {}): Promise<string> {
  const jwt = new SignJWT({ ...o.claims })
    .setSubject(o.sub ?? "alice")
    .setAudience(o.aud ?? "chorus-test")
    .setIssuedAt()
    .setExpirationTime(o.expiresIn ?? "1h");
  switch (o.key ?? "hs") {
    case "hs":
      return jwt.setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(SECRET));
    case "wrong":
      return jwt.setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode("not-the-secret-not-the-secret-xx"));
    case "rs":
      return jwt.setProtectedHeader({ alg: "RS256" }).sign(rsa.privateKey);
    case "es":
      return jwt.setProtectedHeader({ alg: "ES256", kid: "ec-1" }).sign(ec.privateKey);
  }
}

const sessions = async () => (await (await fetch(`${server.url}/healthz`)).json()).sessions as number;

describe("user tokens", () => {
  it("accept HS256, RS256 and ES256 (JWKS) tokens; sub is the user id", async () => {
    for (const key of ["hs", "rs", "es"] as const) {
      const c = new NodeClient({ url: server.url, token: await token({ key, sub: `user-${key}` }) });
      await c.connect();
      expect(c.userId).toBe(`user-${key}`);
      c.disconnect();
    }
  });

  it("refuse a wrong signature, an expired token, a wrong audience and no token, with UNAUTHENTICATED and no state left", async () => {
    const cases: Array<[string, string | undefined, RegExp]> = [
      ["wrong signature", await token({ key: "wrong" }), /signature/],
      ["expired", await token({ expiresIn: Math.floor(Date.now() / 1000) - 60 }), /expired/],
      ["wrong audience", await token({ aud: "someone-else" }), /"aud"/],
      ["missing", undefined, /missing token/],
      ["garbage", "not-a-jwt", /not a valid JWT/],
    ];
    for (const transport of transports) {
      for (const [name, t, message] of cases) {
        const c = transport.create({ url: server.url, token: t });
        const error = await c.connect().then(
          () => undefined,
          (e: Error) => e,
        );
        expect(error?.message, `${transport.name}: ${name}`).toMatch(message);
        expect(await codeOf(Promise.reject(error))).toBe("Unauthenticated");
        expect(c.status).toBe("disconnected"); // no reconnect loop
        c.disconnect();
      }
    }
    expect(await sessions()).toBe(0);
  });

  it("end a session whose token expires, with UNAUTHENTICATED and status disconnected", async () => {
    const c = new NodeClient({ url: server.url, token: await token({ expiresIn: Math.floor(Date.now() / 1000) + 2 }) });
    const statuses: string[] = [];
    let reason: unknown;
    c.onStatusChange((s, error) => {
      statuses.push(s);
      if (error) reason = error;
    });
    await c.connect();
    await eventually(() => c.status === "disconnected", "the session to end at expiry", 5000);
    expect(statuses).toEqual(["connecting", "connected", "disconnected"]);
    expect(await codeOf(Promise.reject(reason))).toBe("Unauthenticated");
    expect(String((reason as Error).message)).toMatch(/token expired/);
    await sleep(1500);
    expect(c.status).toBe("disconnected"); // and it stays so
  });

  it("keep a session alive when getToken refreshes it before expiry, without dropping it", async () => {
    let minted = 0;
    const c = new BrowserClient({ url: server.url, getToken: () => token({ expiresIn: Math.floor(Date.now() / 1000) + 3 }).finally(() => minted++) });
    const statuses: string[] = [];
    c.onStatusChange((s) => statuses.push(s));
    await c.connect();
    await sleep(4500);
    expect(c.status).toBe("connected");
    expect(statuses).toEqual(["connecting", "connected"]);
    expect(minted).toBeGreaterThanOrEqual(2);
    c.disconnect();
  });

  it("setToken refuses a token for another user and keeps the session", async () => {
    const c = new NodeClient({ url: server.url, token: await token({ sub: "alice" }) });
    await c.connect();
    expect(await codeOf(c.setToken(await token({ sub: "mallory" })))).toBe("PermissionDenied");
    expect(await codeOf(c.setToken("garbage"))).toBe("Unauthenticated");
    await c.setToken(await token({ sub: "alice" }));
    expect(c.status).toBe("connected");
    c.disconnect();
  });
});

describe.each(transports)("permissions over $name", (transport) => {
  it("allow and deny per action, with {sub} standing for the user", async () => {
    const alice = transport.create({ url: server.url, token: await token({ sub: "alice" }) });
    await alice.channel("chat/lobby").subscribe().ready();
    await alice.channel("notifications/alice").subscribe().ready();
    expect(await codeOf(alice.channel("notifications/bob").subscribe().ready())).toBe("PermissionDenied");
    expect(await codeOf(alice.channel("orders").subscribe().ready())).toBe("PermissionDenied");
    await alice.channel("chat/lobby").publish("m", 1);
    expect(await codeOf(alice.channel("notifications/alice").publish("m", 1))).toBe("PermissionDenied");
    expect((await alice.channel("chat/lobby").getHistory()).length).toBe(0);
    expect(await codeOf(alice.channel("notifications/alice").getHistory())).toBe("PermissionDenied");
    // A user id is never a wildcard.
    const star = transport.create({ url: server.url, token: await token({ sub: "*" }) });
    expect(await codeOf(star.channel("notifications/alice").subscribe().ready())).toBe("PermissionDenied");
    alice.disconnect();
    star.disconnect();
  });

  it("add grants from the token's chorus claim", async () => {
    const c = transport.create({ url: server.url, token: await token({ sub: "carol", claims: { chorus: { publish: ["notifications/{sub}"] } } }) });
    await c.channel("notifications/carol").publish("m", 1);
    expect(await codeOf(c.channel("notifications/dave").publish("m", 1))).toBe("PermissionDenied");
    c.disconnect();
  });
});

describe("API keys", () => {
  it("keep user tokens out of ServerService", async () => {
    const client = createClient(ServerService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const request = { topic: "chat/x", event: "m", data: "1" };
    expect(await codeOf(client.emit(request, { headers: { authorization: `Bearer ${await token()}` } }))).toBe("Unauthenticated");
    expect(await codeOf(client.emit(request))).toBe("Unauthenticated");
    expect((await client.emit(request, { headers: { authorization: "Bearer backend-key" } })).id).not.toBe("");
  });

  it("sendTo reaches every connection of one user, and only that user", async () => {
    const [a1, a2, b] = await Promise.all([token({ sub: "ann" }), token({ sub: "ann" }), token({ sub: "ben" })]);
    const clients = [new NodeClient({ url: server.url, token: a1 }), new BrowserClient({ url: server.url, token: a2 }), new NodeClient({ url: server.url, token: b })];
    const got = clients.map(() => [] as unknown[]);
    clients.forEach((c, i) => c.on("order:shipped", ({ data }) => got[i]!.push(data)));
    await Promise.all(clients.map((c) => c.connect()));
    const sdk = createServerSdk({ url: server.url, apiKey: "backend-key" });
    await sdk.sendTo("ann", "order:shipped", { order: 42 });
    await eventually(() => got[0]!.length === 1 && got[1]!.length === 1, "both of ann's connections");
    await sleep(100);
    expect(got).toEqual([[{ order: 42 }], [{ order: 42 }], []]);
    expect(await codeOf(sdk.sendTo("", "e", 1))).toBe("InvalidArgument");
    for (const c of clients) c.disconnect();
    sdk.close();
  });
});

describe("a server that verifies tokens but has no API keys", () => {
  const strict = serverForSuite({ CHORUS_JWT_SECRET: SECRET });

  it("keeps ServerService closed", async () => {
    const client = createClient(ServerService, createConnectTransport({ baseUrl: strict.url, httpVersion: "1.1" }));
    const error = await client.emit({ topic: "chat/x", event: "m", data: "1" }).catch((e: Error) => e);
    expect(await codeOf(Promise.reject(error))).toBe("Unauthenticated");
    expect(String(error)).toMatch(/CHORUS_API_KEYS/);
  });
});
