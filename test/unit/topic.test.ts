import { expect, it } from "vitest";
import { topicKind, topicMatches, topicProblem } from "../../server/src/topic.js";

it("accepts channels with slashes and table names without", () => {
  for (const ok of ["chat/general", "notifications/auth0|123", "doc/a.b/c:d", "orders", "audit.events", "_t$1"]) {
    expect(topicProblem(ok, 255), ok).toBeUndefined();
  }
  expect(topicKind("chat/general")).toBe("channel");
  expect(topicKind("orders")).toBe("table");
});

it("rejects what could be read as a pattern or is malformed, saying why", () => {
  expect(topicProblem("", 255)).toMatch(/empty/);
  expect(topicProblem("chat/*", 255)).toMatch(/"\*"/);
  expect(topicProblem("chat/>", 255)).toMatch(/">"/);
  expect(topicProblem("chat/a b", 255)).toMatch(/" "/);
  expect(topicProblem("/chat", 255)).toMatch(/empty segment/);
  expect(topicProblem("chat/", 255)).toMatch(/empty segment/);
  expect(topicProblem("chat//x", 255)).toMatch(/empty segment/);
  expect(topicProblem("1orders", 255)).toMatch(/not a table name/);
  expect(topicProblem("a.b.c", 255)).toMatch(/not a table name/);
  expect(topicProblem(`x/${"y".repeat(300)}`, 255)).toMatch(/limit is 255/);
});

it("matches configuration patterns segment by segment", () => {
  expect(topicMatches("chat/*", "chat/general")).toBe(true);
  expect(topicMatches("chat/*", "chat/a/b")).toBe(false);
  expect(topicMatches("chat/**", "chat/a/b")).toBe(true);
  expect(topicMatches("chat/**", "chat")).toBe(false);
  expect(topicMatches("**", "orders")).toBe(true);
  expect(topicMatches("*", "orders")).toBe(true);
  expect(topicMatches("*", "chat/x")).toBe(false);
  expect(topicMatches("chat/general", "chat/general")).toBe(true);
});

it("substitutes {sub} literally for permission patterns", () => {
  expect(topicMatches("notifications/{sub}", "notifications/alice", "alice")).toBe(true);
  expect(topicMatches("notifications/{sub}", "notifications/bob", "alice")).toBe(false);
  expect(topicMatches("notifications/{sub}", "notifications/alice", "*")).toBe(false); // never a wildcard
  expect(topicMatches("notifications/{sub}", "notifications/a/b", "a/b")).toBe(false); // never spans segments
  expect(topicMatches("users/{sub}-inbox", "users/alice-inbox", "alice")).toBe(true);
  expect(topicMatches("notifications/{sub}", "notifications/{sub}")).toBe(true); // no user: literal
});
