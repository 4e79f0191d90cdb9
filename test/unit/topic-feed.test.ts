import { toBinary } from "@bufbuild/protobuf";
import type { NatsConnection } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { PayloadType, RealtimePayloadSchema, type RealtimePayload } from "../../gen/chorus/v1/payload_pb.js";
import type { Recovery, StoredMessage } from "../../server/src/engine/engine.js";
import { TopicFeed, type FeedSource } from "../../server/src/engine/nats/topic-feed.js";
import { storedPayload, type OutboundFrame } from "../../server/src/frames.js";

const TOPIC = "chat/feed";

const message = (seq: number): StoredMessage => ({ seq, id: `id${seq}`, event: "m", data: String(seq), userId: "", connectionId: "", createdAt: 1000 + seq });

/** A stream holding `stored`, and a connection whose subscription the test drives. */
function harness(stored: StoredMessage[], epoch = "e1") {
  let push: ((bytes: Uint8Array) => void) | undefined;
  const nc = {
    subscribe: (_subject: string, opts: { callback: (err: Error | null, msg: { data: Uint8Array }) => void }) => {
      push = (data) => opts.callback(null, { data });
      return { unsubscribe() {} };
    },
    flush: async () => {},
  } as unknown as NatsConnection;
  let reads = 0;
  const source: FeedSource = {
    last: async () => (stored.length ? { seq: stored[stored.length - 1]!.seq, epoch } : undefined),
    since: async (_topic, seq, { limit }): Promise<Recovery> => {
      reads++;
      const messages = stored.filter((m) => m.seq > seq).slice(0, limit);
      return { messages, epoch, firstSeq: stored[0]?.seq ?? 1, lastSeq: stored[stored.length - 1]?.seq ?? 0 };
    },
  };
  const delivered: RealtimePayload[] = [];
  const feed = new TopicFeed(
    TOPIC,
    "x.l.chat.feed",
    nc,
    source,
    (frame: OutboundFrame) => delivered.push(frame.frame.kind.value as RealtimePayload),
    () => {},
    (m, e) => {
      throw new Error(`${m}: ${String(e)}`);
    },
  );
  const live = (seq: number, e = epoch) => {
    stored.push(message(seq));
    push!(toBinary(RealtimePayloadSchema, storedPayload(TOPIC, e, message(seq))));
  };
  const liveOnly = (seq: number, e = epoch) => push!(toBinary(RealtimePayloadSchema, storedPayload(TOPIC, e, message(seq))));
  const seqs = () => delivered.map((p) => (p.type === PayloadType.SYSTEM ? p.event : Number(p.seq)));
  return { feed, live, liveOnly, stored, seqs, delivered, reads: () => reads };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe("a topic's live feed", () => {
  it("starts after what is already stored and delivers what follows in order", async () => {
    const h = harness([message(1), message(2)]);
    await h.feed.live();
    h.live(3);
    h.live(4);
    expect(h.seqs()).toEqual([3, 4]);
  });

  it("fills a gap in the live path from the stream before going on", async () => {
    const h = harness([]);
    await h.feed.live();
    h.live(1);
    // 2 and 3 are stored but their live copies are lost (a reconnect).
    h.stored.push(message(2), message(3));
    h.live(4);
    h.live(5); // arrives while the gap is being filled
    await settle();
    expect(h.seqs()).toEqual([1, 2, 3, 4, 5]);
    expect(h.reads()).toBe(1);
  });

  it("drops what it already delivered (a live copy after the fill)", async () => {
    const h = harness([]);
    await h.feed.live();
    h.live(1);
    h.stored.push(message(2));
    h.live(3);
    await settle();
    h.liveOnly(2);
    h.liveOnly(3);
    h.live(4);
    expect(h.seqs()).toEqual([1, 2, 3, 4]);
  });

  it("finds messages lost at the end of the live path when resynced (after a reconnect)", async () => {
    const h = harness([]);
    await h.feed.live();
    h.live(1);
    h.stored.push(message(2), message(3));
    h.feed.resync();
    await settle();
    expect(h.seqs()).toEqual([1, 2, 3]);
  });

  it("tells subscribers when what it missed is no longer retained", async () => {
    const h = harness([]);
    await h.feed.live();
    h.live(1);
    // Retention dropped 2..4 before the feed could read them.
    h.stored.splice(0, h.stored.length, message(5), message(6));
    h.liveOnly(6);
    await settle();
    expect(h.seqs()).toEqual([1, "system:history_gap", 5, 6]);
    expect(JSON.parse(h.delivered[1]!.data)).toEqual({ reason: "older_than_retained", missed_from: 2, missed_to: 4 });
  });
});

describe("a topic's live feed whose stream cannot answer for a while", () => {
  it("tries a failed fill again by itself: held messages go out with no reconnect and no later message to ask", async () => {
    const stored = [message(1)];
    let push: ((bytes: Uint8Array) => void) | undefined;
    const nc = {
      subscribe: (_s: string, opts: { callback: (err: Error | null, msg: { data: Uint8Array }) => void }) => {
        push = (data) => opts.callback(null, { data });
        return { unsubscribe() {} };
      },
      flush: async () => {},
    } as unknown as NatsConnection;
    let failures = 2; // a stream leader being elected: the first reads time out
    const source: FeedSource = {
      last: async () => ({ seq: 1, epoch: "e1" }),
      since: async (_t, seq, { limit }) => {
        if (failures-- > 0) throw new Error("JetStream: no responders (leader election)");
        return { messages: stored.filter((m) => m.seq > seq).slice(0, limit), epoch: "e1", firstSeq: 1, lastSeq: stored.at(-1)!.seq };
      },
    };
    const delivered: number[] = [];
    const logged: string[] = [];
    const feed = new TopicFeed(TOPIC, "x.l.chat.feed", nc, source, (f) => delivered.push(Number((f.frame.kind.value as RealtimePayload).seq)), () => {}, (m) => logged.push(m));
    await feed.live();
    // 2 was lost on the live path; 3 arrives and shows the gap, the last message for a while.
    stored.push(message(2), message(3));
    push!(toBinary(RealtimePayloadSchema, storedPayload(TOPIC, "e1", message(3))));
    await settle();
    expect(delivered).toEqual([]);
    const deadline = Date.now() + 3000;
    while (delivered.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(delivered).toEqual([2, 3]);
    expect(logged).toHaveLength(2);
    expect(logged[0]).toMatch(/trying again in 250 ms/);
    expect(logged[1]).toMatch(/trying again in 500 ms/);
    feed.stop();
  });
});
