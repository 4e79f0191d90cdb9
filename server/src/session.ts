import { create } from "@bufbuild/protobuf";
import type { ActiveStream } from "./streams/active-stream.js";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  EndSessionResponseSchema,
  ReplyErrorSchema,
  ReplySchema,
  SubscribeResponseSchema,
  UnsubscribeResponseSchema,
  type ConnectRequest,
  type EndSessionResponse,
  type PublishRequest,
  type PublishResponse,
  type Reply,
  type SubscribeRequest,
  type SubscribeResponse,
  type UnsubscribeRequest,
  type UnsubscribeResponse,
} from "../../gen/chorus/v1/realtime_pb.js";
import { StreamPositionSchema } from "../../gen/chorus/v1/payload_pb.js";
import type { Identity } from "./auth.js";
import { encodeFrame, frameOf, preEncodedFrame, type OutboundFrame } from "./frames.js";
import { errorReplyField, publishReplyField } from "./payload-wire.js";
import type { ChorusNode } from "./node.js";
import { askJoinHook } from "./join-hook.js";
import { Outbox } from "./outbox.js";
import { RateLimit } from "./rate-limit.js";
import type { RowView } from "./changes/view.js";
import { joinTopic } from "./replay.js";
import { checkTopic, topicKind } from "./topic.js";
import { checkLength, FIELD_LIMITS } from "./validate.js";

/** What carries a session: the bidi stream, Listen (plus unary commands), or Server-Sent Events (no commands, no pings). */
export type SessionKind = "connect" | "listen" | "sse";

const noop = (): void => {};

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
  /** Topics whose subscription is being set up (a replay may take a while). */
  private joining: Set<string> | undefined;
  /** Topic → the presence id this session holds there. */
  readonly tracked = new Map<string, string>();
  /** Token streams this session produces, by the client's stream id. */
  readonly producing = new Map<string, ActiveStream>();
  /** Table topic → what this session's subscription sees (its filter, its row rule); none: every row. */
  views: Map<string, RowView> | undefined;
  private presenceBudget: RateLimit | undefined;

  constructor(
    private readonly node: ChorusNode,
    readonly id: string,
    readonly connectionId: string,
    public identity: Identity,
    readonly kind: SessionKind,
  ) {
    this.outbox = node.newOutbox();
  }

  get userId(): string {
    return this.identity.userId;
  }

  /** Made on the first track: most connections never announce presence. */
  get presenceLimit(): RateLimit {
    return (this.presenceBudget ??= new RateLimit(this.node.config.presenceRate));
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
    if (req.since) checkLength(req.since.epoch, FIELD_LIMITS.epoch, "since.epoch");
    checkLength(req.filter, FIELD_LIMITS.filter, "filter");
    this.node.permissions.check(this.identity, "subscribe", req.topic);
    const table = topicKind(req.topic) === "table";
    if (!table && req.filter !== "") throw new ConnectError("filter: row filters apply to table topics (a table name, no slash)", Code.InvalidArgument);
    // A table must exist and be tracked; the filter and the table's row rule become what this subscription sees.
    const view = table ? await this.node.tableView(req.topic, req.filter, this.userId) : undefined;
    if (this.topics.has(req.topic) && (this.views?.get(req.topic)?.key ?? "") !== (view?.key ?? "")) {
      throw new ConnectError(`already subscribed to "${req.topic}" with another filter; unsubscribe first`, Code.FailedPrecondition);
    }
    if (!this.topics.has(req.topic) && this.topics.size + (this.joining?.size ?? 0) >= this.node.config.maxSubscriptionsPerSession) {
      throw new ConnectError(
        `this connection already has ${this.topics.size} subscriptions, the limit; unsubscribe from one first`,
        Code.ResourceExhausted,
      );
    }
    if (this.joining?.has(req.topic)) throw new ConnectError(`a subscription to "${req.topic}" is already being set up on this session`, Code.Aborted);
    const { joinHookUrl, joinHookTimeoutMs } = this.node.config;
    const join = joinHookUrl ? await askJoinHook(joinHookUrl, joinHookTimeoutMs, { userId: this.userId, topic: req.topic, connectionId: this.connectionId }) : undefined;
    (this.joining ??= new Set()).add(req.topic);
    if (view) (this.views ??= new Map()).set(req.topic, view);
    else this.views?.delete(req.topic);
    try {
      const since = req.since ? { seq: Number(req.since.seq), epoch: req.since.epoch } : undefined;
      const joined = await joinTopic(this.node, this, req.topic, since, req.presenceSync);
      if (since) this.node.metrics.recoveries.inc({ outcome: joined.recovered ? "recovered" : "gap" });
      return create(SubscribeResponseSchema, {
        topic: req.topic,
        position: create(StreamPositionSchema, { seq: BigInt(joined.position.seq), epoch: joined.position.epoch }),
        recovered: joined.recovered,
        joinData: join?.data ?? "",
      });
    } finally {
      this.joining.delete(req.topic);
      if (!this.topics.has(req.topic)) this.views?.delete(req.topic);
    }
  }

  unsubscribe(req: UnsubscribeRequest): UnsubscribeResponse {
    checkTopic(req.topic, this.node.config.maxTopicLength);
    this.topics.delete(req.topic);
    this.views?.delete(req.topic);
    this.node.hub.remove(req.topic, this);
    return create(UnsubscribeResponseSchema);
  }

  /**
   * Runs one frame of the bidi stream. Commands run one after another in
   * arrival order (the caller awaits the returned promise before the
   * next); a publish is accepted in order but its acknowledgement
   * (durability) is awaited in the background, so a persisting publisher
   * keeps its pipeline full. `settled` is called once the command is
   * completely done (answered; for a publish, acknowledged).
   */
  async handleFrame(frame: ConnectRequest, settled: () => void = noop): Promise<void> {
    this.lastSeen = Date.now();
    const requestId = frame.requestId;
    const command = frame.command;
    const started = performance.now();
    let failure: unknown;
    try {
      switch (command.case) {
        case "publish":
          return this.publish(requestId, command.value, settled);
        case "subscribe":
          this.reply(requestId, { case: "subscribe", value: await this.subscribe(command.value) });
          break;
        case "unsubscribe":
          this.reply(requestId, { case: "unsubscribe", value: this.unsubscribe(command.value) });
          break;
        case "getHistory":
          this.reply(requestId, { case: "getHistory", value: await this.node.history(command.value, this.identity) });
          break;
        case "ping":
          this.reply(requestId, { case: "ping", value: this.node.pong() });
          break;
        case "refreshToken":
          this.reply(requestId, { case: "refreshToken", value: await this.node.refreshToken(this, command.value) });
          break;
        case "track":
          this.reply(requestId, { case: "track", value: this.node.track(this, command.value) });
          break;
        case "untrack":
          this.reply(requestId, { case: "untrack", value: this.node.untrack(this, command.value) });
          break;
        case "getPresence":
          this.reply(requestId, { case: "getPresence", value: await this.node.getPresence(command.value, this.identity) });
          break;
        case "getPresenceStats":
          this.reply(requestId, { case: "getPresenceStats", value: await this.node.getPresenceStats(command.value, this.identity) });
          break;
        case "streamWrite":
          this.reply(requestId, { case: "streamWrite", value: await this.node.streamWrite(this, command.value) });
          break;
        case "endSession":
          // The reply is queued ahead of the end of the stream.
          this.reply(requestId, { case: "endSession", value: create(EndSessionResponseSchema) });
          this.end();
          break;
        case undefined:
          throw new ConnectError("frame carries no command", Code.InvalidArgument);
      }
    } catch (error) {
      failure = error;
      if (command.case) this.node.commandRefused(rpcName(command.case), error, this);
      this.replyError(requestId, error);
    }
    if (command.case) this.node.metrics.command(rpcName(command.case), started, failure);
    settled();
  }

  /**
   * A publish command: accepted (positioned) now, answered when it is
   * acknowledged, without holding up the commands after it. Synchronous,
   * so a stream can run it without a promise of its own.
   */
  publish(requestId: bigint, req: PublishRequest, settled: () => void = noop): void {
    this.lastSeen = Date.now();
    const started = performance.now();
    const metrics = this.node.metrics;
    let ack: Promise<PublishResponse>;
    try {
      ack = this.node.publish(req, { identity: this.identity, session: this });
    } catch (error) {
      metrics.command("Publish", started, error);
      this.node.commandRefused("Publish", error, this);
      this.replyError(requestId, error);
      return settled();
    }
    ack.then(
      (value) => (metrics.command("Publish", started, undefined), this.settle(settled, () => this.reply(requestId, { case: "publish", value }))),
      (error: unknown) => (metrics.command("Publish", started, error), this.node.commandRefused("Publish", error, this), this.settle(settled, () => this.replyError(requestId, error))),
    );
  }

  /** Answers a command and settles it, whatever answering does. */
  private settle(settled: () => void, answer: () => void): void {
    try {
      answer();
    } catch (error) {
      this.node.logError("a reply failed", error);
    }
    settled();
  }

  /** The client's goodbye: the session ends cleanly (its presence leaves at once). */
  end(): EndSessionResponse {
    this.close(undefined, true);
    return create(EndSessionResponseSchema);
  }

  /** Answers a command that could not even be read (too large) with `error`. */
  refuse(requestId: bigint, error: ConnectError): void {
    this.replyError(requestId, error);
  }

  /**
   * Ends the session: leaves every topic; the stream ends after what is
   * queued. `clean` when the client ended it itself: its presence leaves at
   * once; otherwise it waits out the grace period for the client to return.
   */
  close(error?: ConnectError, clean = false): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.expiry);
    for (const topic of this.topics) this.node.hub.remove(topic, this);
    this.topics.clear();
    // Its token streams end with it: viewers are never left with an open stream.
    for (const stream of this.producing.values()) void this.node.streams.end(stream, "error", "the producer went away before ending the stream");
    this.producing.clear();
    this.node.presence.sessionEnded(this, clean);
    this.outbox.end(error);
    this.node.metrics.sessionClosed(this.kind, error, clean);
    this.node.forget(this, clean ? "closed by the client" : (error?.rawMessage ?? "connection lost"));
  }

  private reply(requestId: bigint, result: Reply["result"]): void {
    if (requestId === 0n) return;
    // A publish's reply (the one every publish gets) is written by hand; the others by protobuf-es.
    const field = result.case === "publish" ? publishReplyField(requestId, result.value) : undefined;
    if (field) return this.send(preEncodedFrame(field));
    const reply = create(ReplySchema, { requestId, result });
    this.send(encodeFrame(frameOf({ kind: { case: "reply", value: reply } })));
  }

  private replyError(requestId: bigint, error: unknown): void {
    const e = ConnectError.from(error);
    if (e.code === Code.Internal || e.code === Code.Unknown) this.node.logError("command failed", error);
    if (requestId === 0n) return;
    const field = errorReplyField(requestId, e.code, e.rawMessage);
    if (field) return this.send(preEncodedFrame(field));
    this.reply(requestId, { case: "error", value: create(ReplyErrorSchema, { code: e.code, message: e.rawMessage }) });
  }
}

/** A session command's RPC name (subscribe → Subscribe), the method label its timing goes under. */
function rpcName(command: string): string {
  return command.charAt(0).toUpperCase() + command.slice(1);
}
