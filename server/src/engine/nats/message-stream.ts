import { fromBinary } from "@bufbuild/protobuf";
import { AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager, type MsgRequest, type StreamConfig } from "@nats-io/jetstream";
import { randomBytes } from "node:crypto";
import { RealtimePayloadSchema, type RealtimePayload } from "../../../../gen/chorus/v1/payload_pb.js";
import { storedFields } from "../../frames.js";
import { messageBytes, type HistoryPage, type HistoryQuery, type ReadLimits, type Recovery, type StoredMessage } from "../engine.js";
import type { Retention } from "../retention.js";
import type { Subjects } from "./subjects.js";

/** The leading messages that fit in `maxBytes` (at least one; 0: all). */
function withinBytes(messages: StoredMessage[], maxBytes: number): StoredMessage[] {
  if (maxBytes <= 0) return messages;
  let bytes = 0;
  for (let i = 0; i < messages.length; i++) {
    bytes += messageBytes(messages[i]!);
    if (bytes > maxBytes && i > 0) return messages.slice(0, i);
  }
  return messages;
}

/** A stored message with where it sits in the stream. */
export interface Located {
  /** The stream-wide sequence (JetStream's). */
  streamSeq: number;
  /** The topic's own position (Chorus'): contiguous within the topic. */
  seq: number;
  epoch: string;
  createdAt: number;
  payload: RealtimePayload;
}

const NS_PER_MS = 1_000_000;
const DEDUP_WINDOW_MS = 2 * 60_000;
/** Lookups in flight at once when reading a range of messages by direct gets. */
const MAX_WALKERS = 64;
const MESSAGES_PER_WALKER = 1;
/** Ranges longer than this are read through a short-lived consumer: a few requests, not one per message. */
const CONSUMER_READ_MIN = 8;
/** How long a consumer read may take before the range is read by direct gets instead. */
const CONSUMER_READ_TIMEOUT_MS = 3000;

/**
 * The JetStream stream that holds every topic's persisted messages, one
 * subject per topic. Each message body is the RealtimePayload subscribers
 * receive, carrying its topic position (`seq`, contiguous per topic, and
 * `epoch`). Because positions are contiguous and the stream keeps a suffix
 * of each subject, the message at a position, or at a time, is found by
 * interpolation search over stream sequences: a few lookups even when the
 * topic holds 100 000 messages.
 *
 * Reads go to the stream leader (STREAM.MSG.GET), never to a replica that
 * may lag behind an acknowledged publish.
 */
export class MessageStream {
  constructor(
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly subjects: Subjects,
  ) {}

  /** Creates the stream or brings an existing one to this configuration. */
  async ensure(retention: Retention, replicas: number): Promise<"created" | "updated"> {
    const config: Partial<StreamConfig> & { name: string } = {
      name: this.subjects.stream,
      subjects: [this.subjects.allStored],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      max_msgs_per_subject: retention.maxMessages,
      max_age: retention.maxAgeMs * NS_PER_MS,
      duplicate_window: Math.min(DEDUP_WINDOW_MS, retention.maxAgeMs) * NS_PER_MS,
      num_replicas: replicas,
      republish: { src: this.subjects.allStored, dest: this.subjects.allLive },
    };
    const existing = await this.jsm.streams.info(this.subjects.stream).catch((error: { code?: number }) => {
      if (error.code === 404 || /not found/i.test(String(error))) return undefined;
      throw error;
    });
    if (!existing) {
      await this.jsm.streams.add(config);
      return "created";
    }
    await this.jsm.streams.update(this.subjects.stream, { ...existing.config, ...config });
    return "updated";
  }

  /** The topic's newest message. */
  last(topic: string): Promise<Located | undefined> {
    return this.get({ last_by_subj: this.subjects.stored(topic) });
  }

  /** The topic's first message at or after a stream sequence. */
  firstFrom(topic: string, streamSeq: number): Promise<Located | undefined> {
    // STREAM.MSG.GET takes next_by_subj since NATS 2.9; the client's type predates it.
    return this.get({ seq: Math.max(1, streamSeq), next_by_subj: this.subjects.stored(topic) } as unknown as MsgRequest);
  }

  async at(streamSeq: number): Promise<Located | undefined> {
    return this.get({ seq: streamSeq });
  }

  async history(topic: string, { limit, before, beforeSeq, maxBytes }: HistoryQuery): Promise<HistoryPage> {
    if (limit === 0) {
      const last = await this.last(topic);
      return { messages: [], epoch: last?.epoch ?? "", lastSeq: last?.seq ?? 0, hasMore: last !== undefined };
    }
    const [first, last] = await this.ends(topic);
    if (!first || !last) return { messages: [], epoch: "", lastSeq: 0, hasMore: false };
    const page: HistoryPage = { messages: [], epoch: last.epoch, lastSeq: last.seq, hasMore: false };
    let end = last.seq + 1; // exclusive
    if (beforeSeq > 0) end = Math.min(end, beforeSeq);
    if (before > 0 && last.createdAt >= before) {
      end = Math.min(end, first.createdAt >= before ? first.seq : (await this.search(topic, (m) => m.createdAt, before, first, last)).seq);
    }
    const start = Math.max(first.seq, end - limit);
    if (start >= end) return { ...page, hasMore: false };
    const messages = await this.newest(topic, first, last, start, end - 1, maxBytes);
    return { ...page, messages, hasMore: messages.at(-1)!.seq > first.seq };
  }

  /**
   * The newest messages of [from, to] within `maxBytes`, newest first.
   * Reads go forward, so the range to read is estimated from the size of
   * the newest message and read in one go (with a hard byte cap); when
   * sizes vary so much that the cap cuts the read short, the page is read
   * back from the newest end by lookups, which stop at maxBytes.
   */
  private async newest(topic: string, first: Located, last: Located, from: number, to: number, maxBytes: number): Promise<StoredMessage[]> {
    if (maxBytes <= 0) return (await this.read(topic, first, last, from, to, 0)).reverse();
    const newest = await this.locate(topic, to, first, last);
    const estimate = Math.max(1, messageBytes(storedFields(newest.payload)));
    const start = Math.max(from, to - Math.max(0, Math.floor(maxBytes / estimate) - 1));
    const read = await this.read(topic, first, last, start, to, maxBytes * 4);
    if (read.at(-1)?.seq === to) return withinBytes(read.reverse(), maxBytes);
    const out: StoredMessage[] = [];
    let bytes = 0;
    for (let seq = to; seq >= from; seq--) {
      const m = storedFields((seq === to ? newest : await this.locate(topic, seq, first, last)).payload);
      bytes += messageBytes(m);
      if (bytes > maxBytes && out.length > 0) break;
      out.push(m);
    }
    return out;
  }

  /** Messages after `seq`, oldest first, at most `limit`, with the retained range. */
  async since(topic: string, seq: number, { limit, maxBytes }: ReadLimits): Promise<Recovery> {
    const [first, last] = await this.ends(topic);
    if (!first || !last) return { messages: [], epoch: "", firstSeq: 1, lastSeq: 0 };
    const recovery: Recovery = { messages: [], epoch: last.epoch, firstSeq: first.seq, lastSeq: last.seq };
    const start = Math.max(seq + 1, first.seq);
    if (start > last.seq || limit === 0) return recovery;
    recovery.messages = withinBytes(await this.read(topic, first, last, start, Math.min(last.seq, start + limit - 1), maxBytes), maxBytes);
    return recovery;
  }

  /** The topic's oldest and newest retained messages. */
  private ends(topic: string): Promise<[Located | undefined, Located | undefined]> {
    return Promise.all([this.firstFrom(topic, 1), this.last(topic)]);
  }

  /** The topic's message at position `seq` (first.seq <= seq <= last.seq). */
  private async locate(topic: string, seq: number, first: Located, last: Located): Promise<Located> {
    if (seq === first.seq) return first;
    if (seq === last.seq) return last;
    return this.search(topic, (m) => m.seq, seq, first, last);
  }

  /**
   * The topic's first message whose key (seq or createdAt, both increasing
   * along the stream) is >= target, given messages below and at-or-above it.
   * Interpolates between the bounds, bisecting every other step so the
   * worst case stays logarithmic.
   */
  private async search(topic: string, key: (m: Located) => number, target: number, below: Located, above: Located): Promise<Located> {
    let lo = below;
    let hi = above;
    // No message of the topic lies in [limit, hi.streamSeq) that we have not seen.
    let limit = hi.streamSeq;
    for (let step = 0; limit - lo.streamSeq > 1; step++) {
      const span = limit - lo.streamSeq;
      const estimate =
        step % 2 === 0
          ? lo.streamSeq + Math.ceil(((target - key(lo)) / (key(hi) - key(lo))) * (hi.streamSeq - lo.streamSeq))
          : lo.streamSeq + Math.floor(span / 2);
      const probe = Math.min(limit - 1, Math.max(lo.streamSeq + 1, estimate));
      const m = await this.firstFrom(topic, probe);
      if (!m || m.streamSeq >= limit) limit = probe;
      else if (key(m) < target) lo = m;
      else {
        hi = m;
        limit = m.streamSeq;
      }
    }
    return hi;
  }

  /**
   * The topic's messages from position `from` to `to` (inclusive), oldest
   * first. A longer range is streamed by a short-lived consumer (about four
   * requests whatever its length); a short one, or one whose consumer does
   * not answer in time (on NATS 2.9 a consumer may be placed on a replica
   * that is down), is read by lookups on the stream leader, one per
   * message, in stretches walked side by side.
   */
  private async read(topic: string, first: Located, last: Located, from: number, to: number, maxBytes: number): Promise<StoredMessage[]> {
    const count = to - from + 1;
    if (count >= CONSUMER_READ_MIN) {
      const start = await this.locate(topic, from, first, last);
      // A pull asks for a count or for bytes, not both: bytes when the first message says the count could exceed them.
      const byBytes = maxBytes > 0 && count * messageBytes(storedFields(start.payload)) * 2 > maxBytes;
      const streamed = await this.readByConsumer(topic, start.streamSeq, count, byBytes ? maxBytes : 0).catch(() => undefined);
      if (streamed) return streamed.filter((m) => m.seq >= from && m.seq <= to);
    }
    return this.readByLookups(topic, first, last, from, to);
  }

  /** Up to `count` of the topic's messages (and about `maxBytes`, 0: no bound) from stream sequence `streamSeq`, through an ephemeral pull consumer. */
  private async readByConsumer(topic: string, streamSeq: number, count: number, maxBytes: number): Promise<StoredMessage[] | undefined> {
    const name = `chorus-read-${randomBytes(6).toString("hex")}`;
    const deadline = Date.now() + CONSUMER_READ_TIMEOUT_MS;
    const timeLeft = () => Math.max(1, deadline - Date.now());
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), CONSUMER_READ_TIMEOUT_MS)));
    const reading = (async () => {
      await this.jsm.consumers.add(this.subjects.stream, {
        name,
        filter_subject: this.subjects.stored(topic),
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: streamSeq,
        ack_policy: AckPolicy.None,
        mem_storage: true,
        num_replicas: 1,
        // Cleaned up by the server if this node goes away mid-read.
        inactive_threshold: 30_000 * NS_PER_MS,
      });
      try {
        const consumer = await this.js.consumers.get(this.subjects.stream, name);
        const out: StoredMessage[] = [];
        // By bytes, the server stops at max_bytes (and always sends at least one message).
        const messages = await consumer.fetch(maxBytes > 0 ? { max_bytes: maxBytes, expires: timeLeft() } : { max_messages: count, expires: timeLeft() });
        try {
          for await (const m of messages) {
            out.push(storedFields(fromBinary(RealtimePayloadSchema, m.data)));
            if (out.length >= count) break;
            // Decoding a long range is CPU: let other clients' requests in now and then.
            if (out.length % 128 === 0) await new Promise((resolve) => setImmediate(resolve));
          }
        } catch (error) {
          // A pull by bytes ends with this status once the next message would not fit: the read is complete.
          if ((error as { code?: number }).code !== 409 || out.length === 0) throw error;
        }
        return out;
      } finally {
        this.jsm.consumers.delete(this.subjects.stream, name).catch(() => undefined);
      }
    })();
    reading.catch(() => undefined);
    try {
      return await Promise.race([reading, expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The same range by direct gets on the stream leader, one per message. */
  private async readByLookups(topic: string, first: Located, last: Located, from: number, to: number): Promise<StoredMessage[]> {
    const [start, end] = await Promise.all([this.locate(topic, from, first, last), this.locate(topic, to, first, last)]);
    const count = to - from + 1;
    const walkers = Math.max(1, Math.min(MAX_WALKERS, Math.ceil(count / MESSAGES_PER_WALKER)));
    const span = end.streamSeq - start.streamSeq + 1;
    const bounds = Array.from({ length: walkers + 1 }, (_, i) => start.streamSeq + Math.floor((i * span) / walkers));
    const stretches = await Promise.all(bounds.slice(0, -1).map((at, i) => this.walk(topic, i === 0 ? start : undefined, at, bounds[i + 1]!)));
    return stretches.flat().map((m) => storedFields(m.payload));
  }

  /** The topic's messages in stream sequences [from, until), oldest first. */
  private async walk(topic: string, known: Located | undefined, from: number, until: number): Promise<Located[]> {
    const out: Located[] = [];
    for (let m = known ?? (await this.firstFrom(topic, from)); m && m.streamSeq < until; ) {
      out.push(m);
      // The stretch ends here: no lookup needed to know there is nothing more in it.
      if (m.streamSeq + 1 >= until) break;
      m = await this.firstFrom(topic, m.streamSeq + 1);
    }
    return out;
  }

  private async get(query: MsgRequest): Promise<Located | undefined> {
    const m = await this.jsm.streams.getMessage(this.subjects.stream, query);
    if (!m) return undefined;
    const payload = fromBinary(RealtimePayloadSchema, m.data);
    return { streamSeq: m.seq, seq: Number(payload.seq), epoch: payload.epoch, createdAt: Number(payload.timestamp), payload };
  }
}
