import { fromBinary } from "@bufbuild/protobuf";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { RealtimePayloadSchema, type RealtimePayload } from "../../../../gen/chorus/v1/payload_pb.js";
import { storedFrame, systemNotice, topicFrame, type OutboundFrame } from "../../frames.js";
import type { ReadLimits, Recovery } from "../engine.js";

/** The most a node replays into its own gap at once; further behind, subscribers are told of a gap. */
const FILL_LIMIT = 10_000;
/** Bytes read at once while filling: bounded like a history page. */
const FILL_BYTES = 4 * 1024 * 1024;

export interface FeedSource {
  last(topic: string): Promise<{ seq: number; epoch: string } | undefined>;
  since(topic: string, seq: number, limits: ReadLimits): Promise<Recovery>;
}

/**
 * One topic's live traffic into this node, in order and without gaps.
 *
 * Core NATS delivers at most once: across a reconnect or a stream leader
 * change, republished messages can be lost. Positions are contiguous per
 * topic, so a gap shows as soon as the next message arrives (or when the
 * engine asks for a `resync`); the feed then reads the missing messages
 * from the stream, delivers them, and holds later live messages until they
 * are out. Duplicates (seq already delivered) are dropped.
 */
/** The first wait before a failed fill is tried again, and the longest. */
const FILL_RETRY_MS = 250;
const FILL_RETRY_MAX_MS = 5_000;

export class TopicFeed {
  private subscription: Subscription | undefined;
  private state: "starting" | "live" | "behind" = "starting";
  private filling = false;
  private lastSeq = 0;
  private epoch = "";
  /** Persisted messages that arrived while starting or filling. */
  private held: RealtimePayload[] = [];
  private started: Promise<void> | undefined;
  private stopped = false;
  /** A failed fill is tried again after this, doubling up to FILL_RETRY_MAX_MS; reset once a fill succeeds. */
  private retryMs = FILL_RETRY_MS;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly topic: string,
    private readonly subject: string,
    private readonly nc: NatsConnection,
    private readonly source: FeedSource,
    private readonly deliver: (frame: OutboundFrame) => void,
    private readonly observed: (payload: RealtimePayload, streamSeq: number) => void,
    private readonly logError: (message: string, error: unknown) => void,
  ) {}

  /** Settles once the feed is live (see Engine.live); a failed start is retried by the next call. */
  live(): Promise<void> {
    if (this.state !== "starting") return Promise.resolve();
    return (this.started ??= this.start().catch((error: unknown) => {
      this.started = undefined;
      throw error;
    }));
  }

  /** Looks for messages missed while the live path was down (after a reconnect or a leader change). */
  resync(): void {
    if (this.state !== "starting") this.catchUp();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.subscription?.unsubscribe();
  }

  private async start(): Promise<void> {
    this.subscription ??= this.nc.subscribe(this.subject, {
      callback: (error, msg) => {
        if (error) return this.logError(`live subscription of "${this.topic}" failed`, error);
        // The stream's republish says where the message is stored: a writer on this node can append after it without a lookup.
        this.receive(msg.data, Number(msg.headers?.get("Nats-Sequence") || 0));
      },
    });
    // Once the server has the interest, every message stored later reaches us.
    await this.nc.flush();
    const last = await this.source.last(this.topic);
    if (this.stopped || this.state !== "starting") return;
    this.lastSeq = last?.seq ?? 0;
    this.epoch = last?.epoch ?? "";
    this.state = "live";
    this.release();
  }

  private receive(bytes: Uint8Array, streamSeq: number): void {
    if (this.stopped) return;
    let payload: RealtimePayload;
    try {
      payload = fromBinary(RealtimePayloadSchema, bytes);
    } catch (error) {
      return this.logError(`undecodable message on "${this.subject}"`, error);
    }
    if (payload.seq === 0n) return this.deliver(topicFrame(payload)); // ephemeral: best effort, no order to keep
    if (streamSeq > 0) this.observed(payload, streamSeq);
    if (this.state !== "live") {
      this.held.push(payload);
      return;
    }
    this.accept(payload);
  }

  /** Delivers the next message in order, or starts filling the gap before it. */
  private accept(payload: RealtimePayload): void {
    const seq = Number(payload.seq);
    if (payload.epoch !== this.epoch) {
      // The topic was emptied by retention and started over.
      this.epoch = payload.epoch;
      this.lastSeq = 0;
    }
    if (seq <= this.lastSeq) return;
    if (seq === this.lastSeq + 1) {
      this.lastSeq = seq;
      this.deliver(topicFrame(payload));
      return;
    }
    this.held.push(payload);
    this.catchUp();
  }

  private catchUp(): void {
    this.state = "behind";
    if (!this.filling) void this.fill();
  }

  private async fill(): Promise<void> {
    this.filling = true;
    try {
      for (;;) {
        const recovery = await this.source.since(this.topic, this.lastSeq, { limit: FILL_LIMIT, maxBytes: FILL_BYTES });
        if (this.stopped) return;
        if (recovery.epoch !== "" && recovery.epoch !== this.epoch) {
          if (this.epoch !== "") this.deliver(systemNotice(this.topic, "system:history_gap", { reason: "history_reset", epoch: recovery.epoch }));
          this.epoch = recovery.epoch;
          this.lastSeq = 0;
          continue;
        }
        const gap = (missedTo: number) =>
          this.deliver(systemNotice(this.topic, "system:history_gap", { reason: "older_than_retained", missed_from: this.lastSeq + 1, missed_to: missedTo }));
        for (const m of recovery.messages) {
          if (m.seq <= this.lastSeq) continue;
          if (m.seq > this.lastSeq + 1) gap(m.seq - 1);
          this.lastSeq = m.seq;
          this.deliver(storedFrame(this.topic, recovery.epoch, m));
        }
        if (recovery.messages.length === 0 && recovery.firstSeq > this.lastSeq + 1 && recovery.lastSeq > this.lastSeq) {
          gap(recovery.firstSeq - 1);
          this.lastSeq = recovery.lastSeq;
        }
        if (recovery.messages.length === 0 || this.lastSeq >= recovery.lastSeq) break;
      }
      this.filling = false;
      this.retryMs = FILL_RETRY_MS;
      this.state = "live";
      this.release();
    } catch (error) {
      // The broker is away (the engine resyncs every feed when it is back), or connected but its
      // stream cannot answer yet (a leader being elected after a NATS server restart): tried again
      // after a while either way, since no reconnect may come and no later message may arrive to
      // ask again, and the messages held meanwhile would wait for ever.
      this.filling = false;
      this.logError(`could not fill a gap in "${this.topic}"; trying again in ${this.retryMs} ms`, error);
      clearTimeout(this.retry);
      this.retry = setTimeout(() => {
        this.retry = undefined;
        if (!this.stopped && this.state === "behind" && !this.filling) void this.fill();
      }, this.retryMs);
      this.retry.unref();
      this.retryMs = Math.min(this.retryMs * 2, FILL_RETRY_MAX_MS);
    }
  }

  /** Runs the messages held during start or fill through the ordering again. */
  private release(): void {
    const held = this.held;
    this.held = [];
    for (let i = 0; i < held.length; i++) {
      if (this.state !== "live") {
        this.held.push(...held.slice(i));
        return;
      }
      this.accept(held[i]!);
    }
  }
}
