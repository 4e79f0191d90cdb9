import { expect, it } from "vitest";
import { unknownVariables } from "../../server/src/config.js";

it("names every CHORUS_* and NATS_* variable no setting reads, with the setting it most likely meant", () => {
  const env = {
    CHORUS_MAX_CONECTIONS: "5",
    CHORUS_HEARTBEAT: "100",
    NATS_URLL: "nats://x",
    CHORUS_NOTHING_LIKE_ANY_SETTING_AT_ALL: "1",
    CHORUS_MAX_CONNECTIONS: "10",
    NATS_URL: "nats://127.0.0.1:4222",
    CHORUS_JWT_SECRET: "a-secret-long-enough-for-hs256-tokens",
    PATH: "/usr/bin",
  };
  expect(unknownVariables(env)).toEqual([
    { name: "CHORUS_HEARTBEAT", suggestion: "CHORUS_HEARTBEAT_MS" },
    { name: "CHORUS_MAX_CONECTIONS", suggestion: "CHORUS_MAX_CONNECTIONS" },
    { name: "CHORUS_NOTHING_LIKE_ANY_SETTING_AT_ALL", suggestion: undefined },
    { name: "NATS_URLL", suggestion: "NATS_URL" },
  ]);
  // A value configFromEnv refuses does not hide the names: that error is reported on its own.
  expect(unknownVariables({ CHORUS_MAX_CONNECTIONS: "many", CHORUS_MAX_CONECTIONS: "5" })).toEqual([{ name: "CHORUS_MAX_CONECTIONS", suggestion: "CHORUS_MAX_CONNECTIONS" }]);
  expect(unknownVariables({ CHORUS_ENGINE: "nats", NATS_URL: "nats://a", CHORUS_API_KEYS: "k" })).toEqual([]);
});
