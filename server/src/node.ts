import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { HistoryMessageSchema, StreamPositionSchema, type StreamPosition } from "../../gen/chorus/v1/payload_pb.js";
import {
  GetHistoryResponseSchema,
  PingResponseSchema,
  PublishResponseSchema,
  RefreshTokenResponseSchema,
  type GetHistoryRequest,
  type GetHistoryResponse,
  type PingResponse,
  type PublishResponse,
  type RefreshTokenRequest,
  type RefreshTokenResponse,
} from "../../gen/chorus/v1/realtime_pb.js";
import { EmitResponseSchema, type EmitResponse } from "../../gen/chorus/v1/server_pb.js";
import { ApiKeys, developmentIdentity, type Identity } from "./auth.js";
import type { ChorusConfig } from "./config.js";
import type { Engine, PublishResult } from "./engine/engine.js";
import { MemoryEngine } from "./engine/memory.js";
import { encodeFrame, frameOf } from "./frames.js";
import { Hub } from "./hub.js";
import { IdGenerator, secretId } from "./ids.js";
import type { Logger } from "./log.js";
import { FlushScheduler, Outbox } from "./outbox.js";
import { Session, type SessionKind } from "./session.js";
import { checkTopic, topicKind } from "./topic.js";
import { checkData, checkEvent, checkHistoryLimit, checkMessageId } from "./validate.js";

/** The fields every way of sending a message shares (PublishRequest, EmitRequest). */
export interface MessageRequest {
  topic: string;
  event: string;
  data: string;
  persist: boolean;
  id: string;
}

const RESERVED_EVENT_PREFIXES = ["presence:", "system:"];

/**
 * One Chorus node: its sessions, its hub and its engine. The services are
 * thin adapters from Connect calls onto the methods here.
 */
export class ChorusNode {
  readonly hub = new Hub();
  readonly engine: Engine;
  readonly apiKeys: ApiKeys;
  private readonly ids = new IdGenerator();
  private readonly scheduler = new FlushScheduler();
  private readonly sessions = new Map<string, Session>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    readonly config: ChorusConfig,
    private readonly log: Logger,
  ) {
    this.engine = new MemoryEngine(config.dataDir, config.retention, this.ids, (topic, frame) => this.hub.deliver(topic, frame));
    this.apiKeys = new ApiKeys(config.apiKeys);
    this.heartbeat = setInterval(() => this.checkHeartbeats(), config.heartbeatIntervalMs).unref();
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  identify(header: Headers): Identity {
    return developmentIdentity(header);
  }

  newOutbox(): Outbox {
    return new Outbox({ maxFrames: this.config.maxQueuedFrames, maxBytes: this.config.maxQueuedBytes }, this.scheduler);
  }

  openSession(identity: Identity, kind: SessionKind): Session {
    const session = new Session(this, secretId(), `c${this.ids.next()}`, identity, kind);
    this.sessions.set(session.id, session);
    session.send(
      encodeFrame(
        frameOf({
          kind: {
            case: "welcome",
            value: {
              sessionId: session.id,
              connectionId: session.connectionId,
              userId: identity.userId,
              nodeId: this.config.nodeId,
              heartbeatIntervalMs: this.config.heartbeatIntervalMs,
              serverTime: BigInt(Date.now()),
              maxPayloadBytes: this.config.maxPayloadBytes,
            },
          },
        }),
      ),
    );
    return session;
  }

  /** The Listen session a unary call names, checked against the caller. */
  sessionFor(sessionId: string, caller: Identity | undefined): Session {
    if (sessionId === "") {
      throw new ConnectError("session_id is empty: open a session with Listen and pass the session_id of its Welcome", Code.InvalidArgument);
    }
    const session = this.sessions.get(sessionId);
    if (!session) {
      throw new ConnectError("unknown session: it ended or never existed; open a new one with Listen", Code.NotFound);
    }
    if (caller && caller.userId !== session.userId) {
      throw new ConnectError("this session belongs to another user", Code.PermissionDenied);
    }
    session.lastSeen = Date.now();
    return session;
  }

  forget(session: Session): void {
    this.sessions.delete(session.id);
  }

  /** A client publish: validated completely before anything happens. */
  publish(req: MessageRequest, from: { userId: string; connectionId: string }): Promise<PublishResponse> {
    this.checkMessage(req);
    if (topicKind(req.topic) === "table") {
      throw new ConnectError(
        `"${req.topic}" is a table topic: it carries database changes, which clients cannot publish; use a topic with a slash`,
        Code.PermissionDenied,
      );
    }
    if (RESERVED_EVENT_PREFIXES.some((prefix) => req.event.startsWith(prefix))) {
      throw new ConnectError(`event names starting with ${RESERVED_EVENT_PREFIXES.join(" or ")} are reserved for the server`, Code.InvalidArgument);
    }
    return this.send(req, from.userId, from.connectionId).then((init) => create(PublishResponseSchema, init));
  }

  /** A back-end emit (ServerService): any topic, attributed to `userId` if given. */
  async emit(req: MessageRequest & { userId: string }): Promise<EmitResponse> {
    this.checkMessage(req);
    return create(EmitResponseSchema, await this.send(req, req.userId, ""));
  }

  async history(req: GetHistoryRequest): Promise<GetHistoryResponse> {
    checkTopic(req.topic, this.config.maxTopicLength);
    const limit = checkHistoryLimit(req.limit);
    if (req.before < 0n) throw new ConnectError("before must be a time in milliseconds since the Unix epoch, or 0", Code.InvalidArgument);
    const page = await this.engine.history(req.topic, { limit, before: Number(req.before), beforeSeq: Number(req.beforeSeq) });
    return create(GetHistoryResponseSchema, {
      messages: page.messages.map((m) =>
        create(HistoryMessageSchema, {
          id: m.id,
          roomId: req.topic,
          userId: m.userId,
          event: m.event,
          data: m.data,
          createdAt: BigInt(m.createdAt),
          seq: BigInt(m.seq),
        }),
      ),
      position: create(StreamPositionSchema, { seq: BigInt(page.lastSeq), epoch: page.epoch }),
      hasMore: page.hasMore,
    });
  }

  pong(): PingResponse {
    return create(PingResponseSchema, { serverTime: BigInt(Date.now()) });
  }

  refreshToken(session: Session, req: RefreshTokenRequest): RefreshTokenResponse {
    const identity = this.identify(new Headers({ authorization: `Bearer ${req.token}` }));
    if (identity.userId !== session.userId) {
      throw new ConnectError("the new token is for another user; open a new session to switch users", Code.PermissionDenied);
    }
    session.identity = identity;
    return create(RefreshTokenResponseSchema, { userId: identity.userId, expiresAt: BigInt(identity.expiresAt ?? 0) });
  }

  logError(message: string, error: unknown): void {
    this.log.error(message, { error: String((error as Error)?.stack ?? error) });
  }

  /** Tells every client to reconnect elsewhere, ends every session, flushes history. */
  async close(reason = "server is shutting down"): Promise<void> {
    clearInterval(this.heartbeat);
    const goodbye = encodeFrame(frameOf({ kind: { case: "disconnect", value: { code: Code.Unavailable, reason, reconnect: true } } }));
    for (const session of [...this.sessions.values()]) {
      session.send(goodbye);
      session.close();
    }
    await this.engine.close();
  }

  private checkMessage(req: MessageRequest): void {
    checkTopic(req.topic, this.config.maxTopicLength);
    checkEvent(req.event, this.config);
    req.data = checkData(req.data, this.config);
    checkMessageId(req.id);
  }

  /** Publishes; resolves to the fields PublishResponse and EmitResponse share. */
  private async send(
    req: MessageRequest,
    userId: string,
    connectionId: string,
  ): Promise<{ id: string; position: StreamPosition | undefined; timestamp: bigint }> {
    const result: PublishResult = await this.engine.publish({
      topic: req.topic,
      event: req.event,
      data: req.data,
      persist: req.persist,
      id: req.id,
      userId,
      connectionId,
    });
    return {
      id: result.id,
      position: result.seq > 0 ? create(StreamPositionSchema, { seq: BigInt(result.seq), epoch: result.epoch }) : undefined,
      timestamp: BigInt(result.timestamp),
    };
  }

  /** Sends each session a heartbeat; drops those silent for two intervals. */
  private checkHeartbeats(): void {
    const now = Date.now();
    const interval = this.config.heartbeatIntervalMs;
    const beat = encodeFrame(frameOf({ kind: { case: "heartbeat", value: { serverTime: BigInt(now) } } }));
    for (const session of [...this.sessions.values()]) {
      if (now - session.lastSeen > 2 * interval) {
        session.close(new ConnectError(`no ping from the client for ${Math.round((now - session.lastSeen) / 1000)} s`, Code.DeadlineExceeded));
      } else {
        session.send(beat);
      }
    }
  }
}
