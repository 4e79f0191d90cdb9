import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ReplyErrorSchema,
  ReplySchema,
  SubscribeResponseSchema,
  UnsubscribeResponseSchema,
  type ConnectRequest,
  type Reply,
  type SubscribeRequest,
  type SubscribeResponse,
  type UnsubscribeRequest,
  type UnsubscribeResponse,
} from "../../gen/chorus/v1/realtime_pb.js";
import { StreamPositionSchema } from "../../gen/chorus/v1/payload_pb.js";
import type { Identity } from "./auth.js";
import { encodeFrame, frameOf, storedFrame, systemNotice, type OutboundFrame } from "./frames.js";
import type { ChorusNode } from "./node.js";
import { askJoinHook } from "./join-hook.js";
import { Outbox } from "./outbox.js";
import { RateLimit } from "./rate-limit.js";
import { checkTopic } from "./topic.js";
import type { Recovery } from "./engine/engine.js";

export type SessionKind = "connect" | "listen";

/** The most a re-subscribing client is replayed at once; further behind, it is told of a gap. */
const RECOVERY_LIMIT = 100_000;

/**
 * One client connection, whichever stream carries it. Both the bidi
 * `Connect` stream and the unary calls of a `Listen` session end up in the
 * same methods here, so the two kinds cannot drift apart.
 */
export class Session {
  readonly topics = new Set<string>();
  readonly outbox: Outbox;
  readonly connectedAt = Date.now();
  /** Last sign of life from the client (any frame or call). */
  lastSeen = Date.now();
  private closed = false;
  private expiry: NodeJS.Timeout | undefined;
  private limit: RateLimit | undefined;

  constructor(
    private readonly node: ChorusNode,
    readonly id: string,
    readonly connectionId: string,
    public identity: Identity,
    readonly kind: SessionKind,
  ) {
    this.outbox = node.newOutbox();
  }

  /** Made on the first publish: most connections only listen. */
  get publishLimit(): RateLimit {
    return (this.limit ??= new RateLimit(this.node.config.maxPublishRate));
  }

  get userId(): string {
    return this.identity.userId;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  send(frame: OutboundFrame): void {
    this.outbox.push(frame);
  }

  /** Ends the session with UNAUTHENTICATED when its token expires, unless refreshed first. */
  watchExpiry(): void {
    clearTimeout(this.expiry);
    const expiresAt = this.identity.expiresAt;
    if (expiresAt === undefined) return;
    // setTimeout holds at most ~24.8 days; re-arm past that.
    const wait = Math.min(expiresAt - Date.now(), 2 ** 31 - 1);
    this.expiry = setTimeout(() => {
      if (Date.now() >= expiresAt) this.close(new ConnectError("token expired; refresh it (setToken) before it does", Code.Unauthenticated));
      else this.watchExpiry();
    }, Math.max(0, wait));
    this.expiry.unref();
  }

  async subscribe(req: SubscribeRequest): Promise<SubscribeResponse> {
    checkTopic(req.topic, this.node.config.maxTopicLength);
    this.node.permissions.check(this.identity, "subscribe", req.topic);
    if (req.filter !== "") {
      throw new ConnectError("row filters are not supported by this server yet; subscribe without a filter", Code.Unimplemented);
    }
    if (!this.topics.has(req.topic) && this.topics.size >= this.node.config.maxSubscriptionsPerSession) {
      throw new ConnectError(
        `this connection already has ${this.topics.size} subscriptions, the limit; unsubscribe from one first`,
        Code.ResourceExhausted,
      );
    }
    const { joinHookUrl, joinHookTimeoutMs } = this.node.config;
    const join = joinHookUrl ? await askJoinHook(joinHookUrl, joinHookTimeoutMs, { userId: this.userId, topic: req.topic, connectionId: this.connectionId }) : undefined;
    return this.join(req.topic, req.since ? { seq: Number(req.since.seq), epoch: req.since.epoch } : undefined, join?.data ?? "");
  }

  /**
   * Joins a topic, from a position when the client has one: persisted
   * messages after it are replayed in order, then live traffic, with
   * nothing lost or repeated in between (live frames wait in the hub while
   * the replay is read). Without a position the client starts at the
   * topic's current position, found the same way so that nothing published
   * after it is missed. A position older than what is retained, or from
   * another epoch, is answered with a SYSTEM "system:history_gap" notice
   * before whatever is still there. Subscribing again re-synchronises an
   * existing subscription.
   */
  private async join(topic: string, since: { seq: number; epoch: string } | undefined, joinData: string): Promise<SubscribeResponse> {
    const { hub, engine } = this.node;
    hub.beginRecovery(topic, this);
    hub.remove(topic, this);
    let seq: number;
    let recovery: Recovery;
    try {
      await engine.live(topic);
      if (since) {
        seq = since.seq;
        recovery = await engine.since(topic, seq, RECOVERY_LIMIT);
        if (since.epoch !== "" && recovery.epoch !== "" && since.epoch !== recovery.epoch) {
          this.send(systemNotice(topic, "system:history_gap", { reason: "history_reset", epoch: recovery.epoch }));
          seq = 0;
          recovery = await engine.since(topic, 0, RECOVERY_LIMIT);
        }
      } else {
        const page = await engine.history(topic, { limit: 0, before: 0, beforeSeq: 0 });
        seq = page.lastSeq;
        recovery = { messages: [], epoch: page.epoch, firstSeq: page.lastSeq + 1, lastSeq: page.lastSeq };
      }
    } catch (error) {
      hub.endRecovery(topic, this, false);
      throw error;
    }
    if (this.closed) {
      hub.endRecovery(topic, this, false);
      throw new ConnectError("session has ended", Code.NotFound);
    }
    // The session joins the fan-out here, and everything below runs before
    // any later live frame can be delivered: nothing slips in between.
    const live = hub.endRecovery(topic, this, true);
    this.topics.add(topic);
    let recovered = true;
    let last = seq;
    // Whatever is missing before a message (trimmed by retention, even while
    // the replay was read) is announced, never skipped silently.
    const gap = (missedTo: number) => {
      recovered = false;
      this.send(systemNotice(topic, "system:history_gap", { reason: "older_than_retained", missed_from: last + 1, missed_to: missedTo }));
    };
    for (const m of recovery.messages) {
      if (m.seq > last + 1) gap(m.seq - 1);
      this.send(storedFrame(topic, recovery.epoch, m));
      last = m.seq;
    }
    if (recovery.messages.length === 0 && recovery.firstSeq > last + 1 && recovery.lastSeq > last) gap(recovery.firstSeq - 1);
    if (recovery.messages.length === RECOVERY_LIMIT && last < recovery.lastSeq) {
      recovered = false;
      this.send(systemNotice(topic, "system:history_gap", { reason: "too_far_behind", missed_from: last + 1, missed_to: recovery.lastSeq }));
    }
    for (const frame of live) {
      if (frame.seq === 0 || frame.seq > last) {
        this.send(frame);
        last = Math.max(last, frame.seq);
      }
    }
    return create(SubscribeResponseSchema, {
      topic,
      position: create(StreamPositionSchema, { seq: BigInt(Math.max(last, recovery.lastSeq)), epoch: recovery.epoch }),
      recovered,
      joinData,
    });
  }

  unsubscribe(req: UnsubscribeRequest): UnsubscribeResponse {
    checkTopic(req.topic, this.node.config.maxTopicLength);
    this.topics.delete(req.topic);
    this.node.hub.remove(req.topic, this);
    return create(UnsubscribeResponseSchema);
  }

  /**
   * Runs one frame of the bidi stream. Commands run one after another in
   * arrival order; a publish is accepted in order but its acknowledgement
   * (durability) is awaited in the background, so a persisting publisher
   * keeps its pipeline full.
   */
  async handleFrame(frame: ConnectRequest): Promise<void> {
    this.lastSeen = Date.now();
    const requestId = frame.requestId;
    const command = frame.command;
    try {
      switch (command.case) {
        case "subscribe":
          return this.reply(requestId, { case: "subscribe", value: await this.subscribe(command.value) });
        case "unsubscribe":
          return this.reply(requestId, { case: "unsubscribe", value: this.unsubscribe(command.value) });
        case "publish": {
          const ack = this.node.publish(command.value, { identity: this.identity, session: this });
          ack.then(
            (value) => this.reply(requestId, { case: "publish", value }),
            (error: unknown) => this.replyError(requestId, error),
          );
          return;
        }
        case "getHistory":
          return this.reply(requestId, { case: "getHistory", value: await this.node.history(command.value, this.identity) });
        case "ping":
          return this.reply(requestId, { case: "ping", value: this.node.pong() });
        case "refreshToken":
          return this.reply(requestId, { case: "refreshToken", value: await this.node.refreshToken(this, command.value) });
        case "track":
        case "untrack":
        case "getPresence":
          throw new ConnectError("presence is not available on this server yet", Code.Unimplemented);
        case undefined:
          throw new ConnectError("frame carries no command", Code.InvalidArgument);
      }
    } catch (error) {
      this.replyError(requestId, error);
    }
  }

  /** Ends the session: leaves every topic; the stream ends after what is queued. */
  close(error?: ConnectError): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.expiry);
    for (const topic of this.topics) this.node.hub.remove(topic, this);
    this.topics.clear();
    this.outbox.end(error);
    this.node.forget(this);
  }

  private reply(requestId: bigint, result: Reply["result"]): void {
    if (requestId === 0n) return;
    const reply = create(ReplySchema, { requestId, result });
    this.send(encodeFrame(frameOf({ kind: { case: "reply", value: reply } })));
  }

  private replyError(requestId: bigint, error: unknown): void {
    const e = ConnectError.from(error);
    if (e.code === Code.Internal || e.code === Code.Unknown) this.node.logError("command failed", error);
    this.reply(requestId, { case: "error", value: create(ReplyErrorSchema, { code: e.code, message: e.rawMessage }) });
  }
}
