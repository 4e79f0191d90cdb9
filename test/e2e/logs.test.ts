// What an operator reads at CHORUS_LOG_LEVEL=debug: every session's start
// and end with its reason, every refused command with its code, refused
// connections at the limit in one line per few seconds; and never a token,
// an API key or a payload.
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { NodeClient } from "../helpers/clients.js";
import { codeOf, eventually, serverForSuite } from "../helpers/server.js";

const SECRET = "logs-test-secret-long-enough-for-hs256";
const API_KEY = `key-${Math.random().toString(36).slice(2)}`;

describe("logs", () => {
  const server = serverForSuite({
    CHORUS_LOG_LEVEL: "debug",
    CHORUS_JWT_SECRET: SECRET,
    CHORUS_API_KEYS: API_KEY,
    CHORUS_MAX_CONNECTIONS: "2",
    CHORUS_PERMISSIONS: JSON.stringify({ subscribe: ["chat/*"], publish: ["chat/*"] }),
  });
  const lines = () =>
    server
      .output()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  it("at debug: sessions opened and closed with reasons, refused commands with codes, refusals at the limit; no token, key or payload", async () => {
    const token = await new SignJWT({}).setSubject("ada").setExpirationTime("1h").setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(SECRET));
    const payload = `payload-${Math.random().toString(36).slice(2)}`;
    const ada = new NodeClient({ url: server.url, token });
    await ada.channel("chat/logs").subscribe().ready();
    await ada.channel("chat/logs").publish("m", { payload }, { persist: true });
    expect(await codeOf(ada.channel("secret/logs").subscribe().ready())).toBe("PermissionDenied");
    expect(await codeOf(ada.channel("chat/logs").publish("e".repeat(300), { payload }))).toBe("InvalidArgument");
    const sdk = createServerSdk({ url: server.url, apiKey: API_KEY });
    await sdk.socket.emit("m", { payload }, "chat/logs");
    sdk.close();
    const other = new NodeClient({ url: server.url, token });
    await other.connect();
    const refused = new NodeClient({ url: server.url, token, reconnect: false });
    expect(await codeOf(refused.connect())).toBe("ResourceExhausted");
    other.disconnect();
    ada.disconnect();
    await eventually(() => lines().filter((l) => l.msg === "session closed").length >= 2, "the closes logged");

    const all = lines();
    expect(all.find((l) => l.msg === "session opened")).toMatchObject({ level: "debug", kind: "connect", user: "ada", connection: expect.any(String) });
    expect(all.filter((l) => l.msg === "session closed").map((l) => l.reason)).toContain("closed by the client");
    expect(all.filter((l) => l.msg === "command refused").map((l) => [l.method, l.code])).toEqual(
      expect.arrayContaining([
        ["Subscribe", "PermissionDenied"],
        ["Publish", "InvalidArgument"],
      ]),
    );
    expect(all.find((l) => typeof l.msg === "string" && (l.msg as string).startsWith("refusing sessions"))).toMatchObject({ level: "info", times: 1 });
    const text = server.output();
    for (const secret of [token, API_KEY, payload, SECRET]) expect(text).not.toContain(secret);
    refused.disconnect();
  });
});
