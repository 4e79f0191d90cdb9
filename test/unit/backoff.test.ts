import { expect, it } from "vitest";
import { reconnectDelay, tokenExpiry } from "../../clients/src/client.js";

it("backs off 1 s, 2 s, 4 s … capped at 30 s, spread ±50 %", () => {
  const middle = () => 0.5;
  expect([0, 1, 2, 3, 4, 5, 6, 10].map((n) => reconnectDelay(n, middle))).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  expect(reconnectDelay(0, () => 0)).toBe(500);
  expect(reconnectDelay(0, () => 0.999)).toBe(1499);
  expect(reconnectDelay(20, () => 0.999)).toBe(44970);
  const spread = new Set(Array.from({ length: 50 }, () => reconnectDelay(3)));
  expect(spread.size).toBeGreaterThan(10);
});

it("reads a JWT's expiry without verifying it, and nothing from other tokens", () => {
  const jwt = (claims: object) => ["e30", Buffer.from(JSON.stringify(claims)).toString("base64url"), "sig"].join(".");
  expect(tokenExpiry(jwt({ sub: "a", exp: 1_900_000_000 }))).toBe(1_900_000_000_000);
  expect(tokenExpiry(jwt({ sub: "a" }))).toBeUndefined();
  expect(tokenExpiry("plain-user-id")).toBeUndefined();
  expect(tokenExpiry("a.!!!.c")).toBeUndefined();
});
