import { expect, it } from "vitest";
import { reconnectDelay } from "../../clients/src/client.js";

it("backs off 1 s, 2 s, 4 s … capped at 30 s, with jitter", () => {
  const middle = () => 0.5;
  expect([0, 1, 2, 3, 4, 5, 6, 10].map((n) => reconnectDelay(n, middle))).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  expect(reconnectDelay(0, () => 0)).toBe(800);
  expect(reconnectDelay(0, () => 1)).toBe(1200);
  const spread = new Set(Array.from({ length: 50 }, () => reconnectDelay(3)));
  expect(spread.size).toBeGreaterThan(10);
});
