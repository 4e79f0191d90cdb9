import { expect, it } from "vitest";
import { DEFAULT_RETENTION, parseRetention, retentionFor } from "../../server/src/engine/retention.js";

it("parses rules and applies the first match", () => {
  const rules = parseRetention("chat/**=count:500,age:7d; orders=age:90s ;**=count:10");
  expect(retentionFor(rules, "chat/general")).toMatchObject({ maxMessages: 500, maxAgeMs: 7 * 86_400_000 });
  expect(retentionFor(rules, "orders")).toMatchObject({ maxMessages: DEFAULT_RETENTION.maxMessages, maxAgeMs: 90_000 });
  expect(retentionFor(rules, "feed/x").maxMessages).toBe(10);
  expect(retentionFor(parseRetention("chat/*=count:1"), "other/x")).toEqual(DEFAULT_RETENTION);
});

it("refuses malformed rules with a message that shows the fix", () => {
  expect(() => parseRetention("chat/*")).toThrow(/pattern=count:N/);
  expect(() => parseRetention("chat/*=count:0")).toThrow(/count:N \(N > 0\)/);
  expect(() => parseRetention("chat/*=age:7w")).toThrow(/age:N followed by s, m, h or d/);
  expect(() => parseRetention(" ; ")).toThrow(/no rule/);
});
