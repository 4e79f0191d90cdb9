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
import { EmitResponseSchema, SendToUserResponseSchema, type EmitResponse, type SendToUserResponse } from "../../gen/chorus/v1/server_pb.js";
import { ApiKeys, createAuthenticator, type Authenticator, type Identity } from "./auth.js";
import { Permissions } from "./permissions.js";
import type { ChorusConfig } from "./config.js";
import type { Engine, PublishResult } from "./engine/engine.js";
import { createEngine } from "./engine/create.js";
import { encodeFrame, frameOf } from "./frames.js";
import { Hub } from "./hub.js";
import { IdGenerator, secretId } from "./ids.js";
import type { Logger } from "./log.js";
import { FlushScheduler, Outbox, type OutboxLimits } from "./outbox.js";
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
  readonly hub: Hub;
  readonly engine: Engine;
  readonly apiKeys: ApiKeys;
  readonly auth: Authenticator;
  readonly permissions: Permissions;
  private readonly ids = new IdGenerator();
  private readonly scheduler = new FlushScheduler();
  /** Shared by every outbox: one object, not one per connection. */
  private readonly outboxLimits: OutboxLimits;
  private readonly sessions = new Map<string, Session>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    readonly config: ChorusConfig,
    private readonly log: Logger,
  ) {
    this.engine = createEngine(config, this.ids, log, {
      toTopic: (topic, frame) => this.hub.deliver(topic, frame),
      toUser: (userId, frame) => this.hub.deliverToUser(userId, frame),
    });
    this.hub = new Hub(this.engine);
    this.auth = createAuthenticator(config.auth);
    this.apiKeys = new ApiKeys(config.apiKeys, this.auth.developmentMode);
    this.permissions = new Permissions(config.permissions, this.auth.developmentMode);
    this.outboxLimits = { maxFrames: config.maxQueuedFrames, maxBytes: config.maxQueuedBytes };
    this.heartbeat = setInterval(() => this.checkHeartbeats(), config.heartbeatIntervalMs).unref();
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** The caller of a RealtimeService call (UNAUTHENTICATED unless its token holds). */
  identify(header: Headers): Promise<Identity> {
    return this.auth.identify(header);
  }

  newOutbox(): Outbox {
    return new Outbox(this.outboxLimits, this.scheduler);
  }

  openSession(identity: Identity, kind: SessionKind): Session {
    if (this.sessions.size >= this.config.maxConnections) {
      throw new ConnectError(`this node is at its limit of ${this.config.maxConnections} connections; try again later or another node`, Code.ResourceExhausted);
    }
    const session = new Session(this, secretId(), `c${this.ids.next()}`, identity, kind);
    this.sessions.set(session.id, session);
    this.hub.addUser(session);
    session.watchExpiry();
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
    this.hub.removeUser(session);
  }

  /** A client publish: validated and authorised completely before anything happens. */
  publish(req: MessageRequest, from: { identity: Identity; session: Session | undefined }): Promise<PublishResponse> {
    // First, being the cheapest: a flood is refused before any parsing.
    if (from.session && !from.session.publishLimit.take()) {
      throw new ConnectError(`publishing faster than ${this.config.maxPublishRate} messages per second on this connection; slow down`, Code.ResourceExhausted);
    }
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
    this.permissions.check(from.identity, "publish", req.topic);
    return this.send(req, from.identity.userId, from.session?.connectionId ?? "").then((init) => create(PublishResponseSchema, init));
  }

  /** A back-end emit (ServerService): any topic, attributed to `userId` if given. */
  async emit(req: MessageRequest & { userId: string }): Promise<EmitResponse> {
    this.checkMessage(req);
    return create(EmitResponseSchema, await this.send(req, req.userId, ""));
  }

  /** A back end's message to every connection of one user (SendToUser): no subscription needed. */
  sendToUser(req: { userId: string; event: string; data: string }): SendToUserResponse {
    if (req.userId === "") throw new ConnectError("user_id is empty: name the user to send to", Code.InvalidArgument);
    checkEvent(req.event, this.config);
    const data = checkData(req.data, this.config);
    const id = this.ids.next();
    this.engine.sendToUser({ userId: req.userId, id, event: req.event, data, timestamp: Date.now() });
    return create(SendToUserResponseSchema, { id });
  }

  async history(req: GetHistoryRequest, identity: Identity): Promise<GetHistoryResponse> {
    checkTopic(req.topic, this.config.maxTopicLength);
    this.permissions.check(identity, "history", req.topic);
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

  async refreshToken(session: Session, req: RefreshTokenRequest): Promise<RefreshTokenResponse> {
    const identity = await this.auth.verify(req.token);
    if (identity.userId !== session.userId) {
      throw new ConnectError("the new token is for another user; open a new session to switch users", Code.PermissionDenied);
    }
    session.identity = identity;
    session.watchExpiry();
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
