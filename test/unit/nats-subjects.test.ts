import { describe, expect, it } from "vitest";
import { configFromEnv } from "../../server/src/config.js";
import { Subjects } from "../../server/src/engine/nats/subjects.js";
import { topicProblem } from "../../server/src/topic.js";

const SEGMENT_CHARS = "abcXYZ019_-.:@=+~|,";

/** Random valid topics, heavy on the characters an escaping could confuse. */
function randomTopics(count: number): string[] {
  const out = new Set<string>(["a/b", "a.b", "a~2Eb/c", "a/b.c", "a.b/c", "a~2E/b", "x/~7E", "x/~", "x/.", "x/..", "orders", "audit.orders", "a_b$1"]);
  let seed = 1;
  // A fixed-seed generator: the same topics on every run.
  const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  while (out.size < count) {
    const segments = Array.from({ length: 1 + Math.floor(random() * 3) }, () =>
      Array.from({ length: 1 + Math.floor(random() * 4) }, () => SEGMENT_CHARS[Math.floor(random() * SEGMENT_CHARS.length)]).join(""),
    );
    const topic = segments.length === 1 ? `t/${segments[0]}` : segments.join("/");
    if (!topicProblem(topic, 255)) out.add(topic);
  }
  return [...out];
}

describe("topics as NATS subjects", () => {
  const subjects = new Subjects("chorus");
  const topics = randomTopics(20_000);

  it("gives every topic its own subject (the mapping is injective)", () => {
    const mapped = new Map<string, string>();
    for (const topic of topics) {
      const subject = subjects.stored(topic);
      expect(mapped.get(subject) ?? topic).toBe(topic);
      mapped.set(subject, topic);
    }
    expect(mapped.size).toBe(topics.length);
  });

  it("never produces a wildcard, whitespace or an empty token, whatever the topic", () => {
    for (const topic of topics) {
      for (const subject of [subjects.stored(topic), subjects.live(topic)]) {
        expect(subject).toMatch(/^[A-Za-z0-9_~-]+(\.[A-Za-z0-9_~-]+)+$/);
      }
    }
    expect(subjects.user("*")).toBe("chorus.u.~2A");
    expect(subjects.user("a.>")).toBe("chorus.u.a~2E~3E");
    expect(subjects.user("")).toBe("chorus.u.~");
  });

  it("keeps readable topics readable", () => {
    expect(subjects.stored("chat/general")).toBe("chorus.m.chat.general");
    expect(subjects.live("rooms/42/cursors")).toBe("chorus.l.rooms.42.cursors");
    expect(subjects.stored("audit.orders")).toBe("chorus.m.audit~2Eorders");
  });

  it("refuses a prefix that would change the subject structure", () => {
    expect(() => new Subjects("a.b")).toThrow(/prefix/);
    expect(() => new Subjects("*")).toThrow(/prefix/);
  });
});

describe("NATS engine configuration", () => {
  it("reads NATS_URL and the engine's settings", () => {
    const config = configFromEnv({ CHORUS_ENGINE: "nats", NATS_URL: "nats://a:4222, nats://b:4222", CHORUS_NATS_REPLICAS: "3", NATS_TOKEN: "s3cret" });
    expect(config.engine).toBe("nats");
    expect(config.nats).toMatchObject({ servers: ["nats://a:4222", "nats://b:4222"], replicas: 3, token: "s3cret", prefix: "chorus" });
  });

  it("stops the start-up on settings it cannot honour, naming them", () => {
    expect(() => configFromEnv({ CHORUS_ENGINE: "redis" })).toThrow(/CHORUS_ENGINE=redis/);
    expect(() => configFromEnv({ CHORUS_ENGINE: "nats", CHORUS_NATS_REPLICAS: "7" })).toThrow(/CHORUS_NATS_REPLICAS=7/);
    expect(() => configFromEnv({ CHORUS_ENGINE: "nats", CHORUS_RETENTION: "chat/**=count:5;**=count:10" })).toThrow(/single rule/);
    expect(configFromEnv({ CHORUS_ENGINE: "nats", CHORUS_RETENTION: "**=count:5,age:1h" }).retention).toEqual([{ pattern: "**", maxMessages: 5, maxAgeMs: 3_600_000 }]);
  });
});
