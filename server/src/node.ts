import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { HistoryMessageSchema, PresenceMemberSchema, StreamPositionSchema, type PresenceMember, type StreamPosition } from "../../gen/chorus/v1/payload_pb.js";
import {
  GetHistoryResponseSchema,
  GetPresenceResponseSchema,
  GetPresenceStatsResponseSchema,
  PresenceUserSchema,
  PingResponseSchema,
  TrackResponseSchema,
  UntrackResponseSchema,
  type GetPresenceRequest,
  type GetPresenceResponse,
  type GetPresenceStatsRequest,
  type GetPresenceStatsResponse,
  type TrackRequest,
  type TrackResponse,
  type UntrackRequest,
  type UntrackResponse,
  PublishResponseSchema,
  RefreshTokenResponseSchema,
  type GetHistoryRequest,
  type GetHistoryResponse,
  type PingResponse,
  type PublishResponse,
  type RefreshTokenRequest,
  type RefreshTokenResponse,
  type StreamWriteRequest,
  type StreamWriteResponse,
} from "../../gen/chorus/v1/realtime_pb.js";
import {
  ConnectionInfoSchema,
  DisconnectUserResponseSchema,
  ListConnectionsResponseSchema,
  type DisconnectUserResponse,
  type ListConnectionsResponse,
  EmitManyResponseSchema,
  EmitResponseSchema,
  EmitResultSchema,
  ExecResponseSchema,
  ListPresenceResponseSchema,
  QueryResponseSchema,
  SendToUserResponseSchema,
  type EmitManyResponse,
  type EmitResponse,
  type EmitStreamRequest,
  type EmitStreamResponse,
  type ExecResponse,
  type ListPresenceResponse,
  type QueryResponse,
  type SendToUserResponse,
} from "../../gen/chorus/v1/server_pb.js";
import { ApiKeys, createAuthenticator, type Authenticator, type Identity } from "./auth.js";
import { Permissions } from "./permissions.js";
import type { ChorusConfig } from "./config.js";
import type { Engine, PublishResult } from "./engine/engine.js";
import { createEngine } from "./engine/create.js";
import { encodeFrame, frameOf, ROW_OPERATIONS, storedPayload } from "./frames.js";
import { Hub } from "./hub.js";
import { IdGenerator, secretId } from "./ids.js";
import { EveryFewSeconds, type Logger } from "./log.js";
import { FlushScheduler, Outbox, type OutboxLimits } from "./outbox.js";
import { NodeMetrics, type NodeSnapshot } from "./metrics/metrics.js";
import { createClusterAdmin } from "./admin/create.js";
import type { ClusterAdmin } from "./admin/cluster.js";
import { Session, type SessionKind } from "./session.js";
import { checkTopic, topicKind } from "./topic.js";
import { checkData, checkEvent, checkHistoryLimit, checkLength, checkMessageId, checkUserId, FIELD_LIMITS } from "./validate.js";
import { Gate } from "./gate.js";
import { LeaveHook } from "./leave-hook.js";
import { createPresenceBroker } from "./presence/create.js";
import { createChangeSource } from "./changes/create.js";
import { parseFilter, type Condition } from "./changes/filter.js";
import { ChangeTracker } from "./changes/tracker.js";
import { serveEmitStream } from "./streams/emit-stream.js";
import { serveStreamWrite } from "./streams/stream-write.js";
import { StreamRegistry } from "./streams/registry.js";
import { RowView, viewFor } from "./changes/view.js";
import type { Member } from "./presence/member.js";
import { Presence } from "./presence/presence.js";
import { RateLimit } from "./rate-limit.js";

/** The fields every way of sending a message shares (PublishRequest, EmitRequest). */
export interface MessageRequest {
  topic: string;
  event: string;
  data: string;
  persist: boolean;
  id: string;
}

const RESERVED_EVENT_PREFIXES = ["presence:", "system:", "stream:"];

function checkNotReserved(event: string): void {
  if (RESERVED_EVENT_PREFIXES.some((prefix) => event.startsWith(prefix))) {
    throw new ConnectError(`event names starting with ${RESERVED_EVENT_PREFIXES.join(" or ")} are reserved for the server`, Code.InvalidArgument);
  }
}

/**
 * One Chorus node: its sessions, its hub and its engine. The services are
 * thin adapters from Connect calls onto the methods here.
 */
export class ChorusNode {
  readonly hub: Hub;
  readonly engine: Engine;
  readonly presence: Presence;
  readonly leaveHook: LeaveHook | undefined;
  /** Database changes and back ends' SQL (the database opens on first use). */
  readonly changes: ChangeTracker;
  /** Token streams this node's producers have open. */
  readonly streams: StreamRegistry;
  /** Per table topic: the conditions on rows every subscriber is held to ({sub}: the user id). */
  private readonly rowRules: Map<string, Condition[]>;
  readonly apiKeys: ApiKeys;
  readonly auth: Authenticator;
  readonly permissions: Permissions;
  private readonly ids = new IdGenerator();
  private readonly scheduler = new FlushScheduler();
  /** Shared by every outbox: one object, not one per connection. */
  private readonly outboxLimits: OutboxLimits;
  private readonly sessions = new Map<string, Session>();
  private readonly heartbeat: NodeJS.Timeout;
  /** Publish budgets by publisher ("user:<id>" or "key:<n>"), forgotten once full again. */
  private readonly publishBudgets = new Map<string, RateLimit>();
  /** History reads: a node-wide gate, and one per user; replays wait their turn under another. */
  private readonly historyGate: Gate;
  private readonly replayGate: Gate;
  private readonly userHistoryGates = new Map<string, Gate>();
  private readonly budgetSweep: NodeJS.Timeout;

  constructor(
    readonly config: ChorusConfig,
    private readonly log: Logger,
  ) {
    this.engine = createEngine(config, this.ids, log, {
      toTopic: (topic, frame) => {
        this.streams.observe(topic, frame);
        this.hub.deliver(topic, frame);
      },
      toUser: (userId, frame) => this.hub.deliverToUser(userId, frame),
    });
    this.leaveHook = config.leaveHookUrl ? new LeaveHook(config.leaveHookUrl, config.leaveHookTimeoutMs, log) : undefined;
    this.presence = new Presence(
      { nodeId: config.nodeId, graceMs: config.presenceGraceMs, maxMembersPerTopic: config.maxPresenceMembers, maxSnapshotJoins: Math.min(1000, Math.floor(config.maxQueuedFrames / 4)) },
      createPresenceBroker(config, this.engine, log),
      (topic, frame) => this.hub.deliver(topic, frame),
      this.leaveHook,
      log,
    );
    // The hub tells both the engine and presence which topics this node's subscribers watch.
    const { engine, presence } = this;
    this.hub = new Hub(
      {
        watch: (topic) => (engine.watch(topic), presence.watch(topic)),
        unwatch: (topic) => (engine.unwatch(topic), presence.unwatch(topic), this.streams.unwatch(topic)),
        watchUser: (userId) => engine.watchUser(userId),
        unwatchUser: (userId) => engine.unwatchUser(userId),
      },
      config.maxQueuedFrames,
    );
    this.changes = new ChangeTracker(() => createChangeSource(config, log), this.engine, log);
    this.streams = new StreamRegistry(
      this.engine,
      { idleMs: config.streamIdleMs, maxChunkBytes: config.maxStreamChunkBytes, maxStreamBytes: config.maxStreamBytes, maxPerTopic: config.maxStreamsPerTopic, maxPerProducer: config.maxStreamsPerProducer },
      config.nodeId,
      log,
    );
    this.presence.onNodeGone((node) => this.streams.nodeGone(node));
    // A node that starts watching a topic learns the streams under way there with its members.
    this.presence.sharing = { own: (topic) => this.streams.ownShared(topic), received: (topic, shared) => this.streams.received(topic, shared) };
    this.rowRules = new Map(
      Object.entries(config.rowRules).map(([table, rule]) => {
        try {
          return [table, parseFilter(rule)];
        } catch (error) {
          throw new Error(`CHORUS_ROW_RULES for "${table}": ${(error as Error).message}`);
        }
      }),
    );
    this.auth = createAuthenticator(config.auth);
    this.apiKeys = new ApiKeys(config.apiKeys, this.auth.developmentMode);
    this.permissions = new Permissions(config.permissions, this.auth.developmentMode);
    this.outboxLimits = { maxFrames: config.maxQueuedFrames, maxBytes: config.maxQueuedBytes };
    this.heartbeat = setInterval(() => this.checkHeartbeats(), config.heartbeatIntervalMs).unref();
    this.historyGate = new Gate(config.maxHistoryReads, 1024, "history reads on this node");
    // Replays are never refused (a reconnecting client must recover); each session runs one at a time.
    this.replayGate = new Gate(config.maxHistoryReads, Number.POSITIVE_INFINITY, "replays");
    this.budgetSweep = setInterval(() => this.forgetIdleBudgets(), 5_000).unref();
    this.metrics = new NodeMetrics(
      () => this.snapshot(),
      () => this.changes.slotLagBytes(),
    );
    this.admin = createClusterAdmin(this.engine, config.nodeId, () => this.presence.otherNodes(), log);
    this.scheduler.onFlushed = (seconds) => this.metrics.flushSeconds.observe(seconds);
    this.changes.onStored = (lag) => this.metrics.dbChangeLagSeconds.observe(lag);
  }

  /** What the metrics read when scraped. */
  private snapshot(): NodeSnapshot {
    const sessions: Record<string, number> = { connect: 0, listen: 0, sse: 0 };
    let subscriptions = 0;
    let outboxBytes = 0;
    for (const session of this.sessions.values()) {
      sessions[session.kind] = (sessions[session.kind] ?? 0) + 1;
      subscriptions += session.topics.size;
      outboxBytes += session.outbox.bytesQueued;
    }
    return {
      connections: this.connectionCounts(),
      sessions,
      subscriptions,
      topics: this.hub.topicCount,
      presenceMembers: this.presence.memberCount,
      activeStreams: this.streams.activeCount,
      outboxBytes,
      engineConnected: this.engine.ready,
      ready: this.readiness().ready,
      changesStored: this.changes.stored,
      framesSent: this.scheduler.counts.framesSent,
      dropped: this.scheduler.counts.dropped,
    };
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  readonly startedAt = Date.now();
  /** Refusals at the connection limit come in floods: one line per few seconds says how many. */
  /** The admin API's questions to the other nodes. */
  private readonly admin: ClusterAdmin;
  private readonly refusedAtLimit = new EveryFewSeconds((message, fields) => this.log.info(message, fields));

  /** A command refused with an error the client caused (debug: the operator's view of what clients get wrong). */
  commandRefused(method: string, error: unknown, session?: Session): void {
    const e = ConnectError.from(error);
    if (e.code === Code.Internal || e.code === Code.Unknown) return; // logged as errors where they happen
    // The code, not the message: a message may quote what the client sent.
    this.log.debug("command refused", { method, code: Code[e.code], ...(session ? { connection: session.connectionId } : {}) });
  }
  /** The Prometheus metrics (/metrics). */
  readonly metrics: NodeMetrics;
  /** Open connections by transport, from the listener (set by whoever serves the node). */
  connectionCounts: () => Record<string, number> = () => ({});

  /** Set when the node starts to stop: it takes no new clients (a load balancer reading /readyz moves on). */
  draining = false;

  /**
   * Whether this node should be sent clients: its engine can take
   * publishes, a PostgreSQL's change tracking is not stuck on a failure,
   * and it is not draining.
   */
  readiness(): { ready: boolean; checks: { engine: boolean; database: boolean; draining: boolean } } {
    const checks = { engine: this.engine.ready, database: this.changes.healthy, draining: this.draining };
    return { ready: checks.engine && checks.database && !checks.draining, checks };
  }

  /** What the built-in page's inspector shows: this node's sessions, topics, traffic, engine and database. */
  stats(): NodeStats {
    const byKind: Record<string, number> = { connect: 0, listen: 0, sse: 0 };
    for (const session of this.sessions.values()) byKind[session.kind] = (byKind[session.kind] ?? 0) + 1;
    return {
      nodeId: this.config.nodeId,
      uptimeMs: Date.now() - this.startedAt,
      sessions: { total: this.sessions.size, ...byKind },
      topics: this.hub.topicCount,
      busiestTopics: this.hub.busiestTopics(20),
      published: this.metrics.counts.published,
      engine: this.config.engine,
      database: { kind: this.config.databaseUrl ? "postgresql" : "pglite", open: this.changes.started, changesStored: this.changes.stored },
      developmentMode: this.auth.developmentMode,
    };
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
      this.metrics.sessionsRefused.inc({ reason: "connection_limit" });
      this.refusedAtLimit.note(`refusing sessions: this node is at its limit of ${this.config.maxConnections} connections (CHORUS_MAX_CONNECTIONS)`);
      throw new ConnectError(`this node is at its limit of ${this.config.maxConnections} connections; try again later or another node`, Code.ResourceExhausted);
    }
    const session = new Session(this, secretId(), `c${this.ids.next()}`, identity, kind);
    this.metrics.sessionsOpened.inc({ kind });
    this.log.debug("session opened", { connection: session.connectionId, kind, user: identity.userId });
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
    checkLength(sessionId, FIELD_LIMITS.sessionId, "session_id");
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

  /** A session ended: it is forgotten, and the leave hook (if any) told why. */
  forget(session: Session, reason: string): void {
    this.sessions.delete(session.id);
    this.log.debug("session closed", { connection: session.connectionId, kind: session.kind, reason, seconds: Math.round((Date.now() - session.connectedAt) / 1000) });
    this.hub.removeUser(session);
    this.leaveHook?.send({
      event: "disconnect",
      user_id: session.userId,
      connection_id: session.connectionId,
      node_id: this.config.nodeId,
      reason,
      at: Date.now(),
      idempotency_key: `disconnect:${session.connectionId}`,
    });
  }

  /** A client publish: validated and authorised completely before anything happens. */
  publish(req: MessageRequest, from: { identity: Identity; session: Session | undefined }): Promise<PublishResponse> {
    // First, being the cheapest: a flood is refused before any parsing, whichever RPC carries it.
    const scope = `user:${from.identity.userId}`;
    const budget = this.budget(scope, this.config.maxPublishRate);
    if (!budget.take()) {
      throw budget.refusal(() => new ConnectError(`publishing faster than ${this.config.maxPublishRate} messages per second as user "${from.identity.userId}"; slow down`, Code.ResourceExhausted));
    }
    this.checkMessage(req);
    if (topicKind(req.topic) === "table") {
      throw new ConnectError(
        `"${req.topic}" is a table topic: it carries database changes, which clients cannot publish; use a topic with a slash`,
        Code.PermissionDenied,
      );
    }
    checkNotReserved(req.event);
    this.permissions.check(from.identity, "publish", req.topic);
    return this.send(req, from.identity.userId, from.session?.connectionId ?? "", scope).then((init) => create(PublishResponseSchema, init));
  }

  /** A back-end emit (ServerService) by the API key `scope`: any topic, attributed to `userId` if given. */
  async emit(req: MessageRequest & { userId: string }, scope: string): Promise<EmitResponse> {
    this.checkBackendRate(scope);
    this.checkMessage(req);
    if (req.userId !== "") checkUserId(req.userId);
    // The server's own notices would be taken for real ones by every SDK (a `system:lagged` makes it resubscribe).
    checkNotReserved(req.event);
    if (topicKind(req.topic) === "table" && ROW_OPERATIONS[req.event]) {
      throw new ConnectError(`on a table topic, ${req.event} events are the database's own: emit another event name (for example "${req.topic.toLowerCase()}:updated")`, Code.InvalidArgument);
    }
    return create(EmitResponseSchema, await this.send(req, req.userId, "", scope));
  }

  /**
   * Many back-end emits in one call (EmitMany): each as Emit would take it,
   * issued in order, each answered with its result or its own error.
   */
  async emitMany(req: { events: Array<MessageRequest & { userId: string }> }, scope: string): Promise<EmitManyResponse> {
    if (req.events.length > this.config.maxEmitBatch) {
      throw new ConnectError(`${req.events.length} events in one call; the limit is ${this.config.maxEmitBatch}: split them`, Code.ResourceExhausted);
    }
    // Each emit is issued (and so positioned) before the next starts: the order holds.
    const results = req.events.map((event) =>
      this.emit(event, scope).then(
        (emitted) => create(EmitResultSchema, { result: { case: "emitted", value: emitted } }),
        (error: unknown) => {
          const e = ConnectError.from(error);
          if (e.code === Code.Internal || e.code === Code.Unknown) this.logError("an emit of a batch failed", error);
          return create(EmitResultSchema, { result: { case: "error", value: { code: e.code, message: e.rawMessage } } });
        },
      ),
    );
    return create(EmitManyResponseSchema, { results: await Promise.all(results) });
  }

  /**
   * One batch of an EmitSession stream: EmitMany's results, and a batch
   * refused whole (too many events) answered with that error for each of
   * its events, so every batch gets its answer in its place and the stream
   * goes on.
   */
  async emitBatch(req: { events: Array<MessageRequest & { userId: string }> }, scope: string): Promise<EmitManyResponse["results"]> {
    try {
      return (await this.emitMany(req, scope)).results;
    } catch (error) {
      const e = ConnectError.from(error);
      return req.events.map(() => create(EmitResultSchema, { result: { case: "error", value: { code: e.code, message: e.rawMessage } } }));
    }
  }

  /** A back end's token stream into a topic (EmitStream) by the API key `scope`. */
  emitStream(requests: AsyncIterable<EmitStreamRequest>, scope: string): Promise<EmitStreamResponse> {
    this.checkBackendRate(scope);
    return serveEmitStream(requests, {
      streams: this.streams,
      limits: this.config,
      producer: scope,
      checkTarget: (topic, event) => {
        checkNotReserved(event);
        if (topicKind(topic) === "table") throw new ConnectError(`"${topic}" is a table topic: it carries database changes; stream into a topic with a slash`, Code.InvalidArgument);
      },
    });
  }

  /** A user's token stream, one write at a time (StreamWrite, on its session). */
  streamWrite(session: Session, req: StreamWriteRequest): Promise<StreamWriteResponse> {
    const { identity } = session;
    const budget = () => this.budget(`user:${identity.userId}`, this.config.maxPublishRate);
    return serveStreamWrite({ producing: session.producing, takePublish: () => budget().take() }, req, {
      streams: this.streams,
      limits: this.config,
      producer: `conn:${session.connectionId}`,
      checkTarget: (topic, event) => {
        checkNotReserved(event);
        if (topicKind(topic) === "table") throw new ConnectError(`"${topic}" is a table topic: it carries database changes, which clients cannot publish; use a topic with a slash`, Code.PermissionDenied);
        this.permissions.check(identity, "publish", topic);
      },
    });
  }

  /** A back end's message to every connection of one user (SendToUser): no subscription needed. */
  sendToUser(req: { userId: string; event: string; data: string }, scope: string): SendToUserResponse {
    this.checkBackendRate(scope);
    if (req.userId === "") throw new ConnectError("user_id is empty: name the user to send to", Code.InvalidArgument);
    checkUserId(req.userId);
    checkEvent(req.event, this.config);
    const data = checkData(req.data, this.config);
    const id = this.ids.next();
    this.engine.sendToUser({ userId: req.userId, id, event: req.event, data, timestamp: Date.now() });
    return create(SendToUserResponseSchema, { id });
  }

  /**
   * A page of history. Reads are bounded three ways: a page carries at most
   * maxHistoryPageBytes of messages (hasMore tells the rest is there), and
   * reads wait their turn under a per-user and a node-wide concurrency limit.
   */
  async history(req: GetHistoryRequest, identity: Identity): Promise<GetHistoryResponse> {
    checkTopic(req.topic, this.config.maxTopicLength);
    this.permissions.check(identity, "history", req.topic);
    const limit = checkHistoryLimit(req.limit);
    if (req.before < 0n) throw new ConnectError("before must be a time in milliseconds since the Unix epoch, or 0", Code.InvalidArgument);
    const query = { limit, before: Number(req.before), beforeSeq: Number(req.beforeSeq), maxBytes: this.config.maxHistoryPageBytes };
    const page = await this.readHistory(identity.userId, () => this.engine.history(req.topic, query));
    // A table's row rule holds for its history too: a user reads only the changes of rows it may see.
    // A row leaving the user's view reads as the DELETE of the row as it was, as it arrived live.
    const rule = topicKind(req.topic) === "table" ? this.ruleView(req.topic, identity.userId) : undefined;
    const visible = page.messages.flatMap((m) => {
      if (!rule || !ROW_OPERATIONS[m.event]) return [{ event: m.event, data: m.data, old: m.old ?? "", m }];
      const seen = rule.see(storedPayload(req.topic, page.epoch, m));
      return seen ? [{ ...seen, m }] : [];
    });
    return create(GetHistoryResponseSchema, {
      messages: visible.map(({ event, data, old, m }) =>
        create(HistoryMessageSchema, {
          id: m.id,
          roomId: req.topic,
          userId: m.userId,
          event,
          data,
          createdAt: BigInt(m.createdAt),
          seq: BigInt(m.seq),
          old,
        }),
      ),
      position: create(StreamPositionSchema, { seq: BigInt(page.lastSeq), epoch: page.epoch }),
      hasMore: page.hasMore,
    });
  }

  /** Announces or updates the session's presence on a topic: `presence` permission, a JSON state within its size, a bounded rate. */
  track(session: Session, req: TrackRequest): TrackResponse {
    checkTopic(req.topic, this.config.maxTopicLength);
    this.permissions.check(session.identity, "presence", req.topic);
    if (topicKind(req.topic) === "table") throw new ConnectError(`"${req.topic}" is a table topic; presence lives on topics with a slash`, Code.FailedPrecondition);
    checkLength(req.restore, FIELD_LIMITS.sessionId, "restore");
    if (!session.presenceLimit.take()) {
      throw new ConnectError(`presence updated faster than ${this.config.presenceRate} times per second on this connection; slow down`, Code.ResourceExhausted);
    }
    const state = checkData(req.state, { maxPayloadBytes: this.config.maxPresenceStateBytes, maxEventLength: this.config.maxEventLength }, "state");
    if (!session.tracked.has(req.topic) && session.tracked.size >= this.config.maxSubscriptionsPerSession) {
      throw new ConnectError(`this connection already tracks presence on ${session.tracked.size} topics, the limit`, Code.ResourceExhausted);
    }
    return create(TrackResponseSchema, { member: memberMessage(this.presence.track(session, req.topic, state, req.restore)) });
  }

  untrack(session: Session, req: UntrackRequest): UntrackResponse {
    checkTopic(req.topic, this.config.maxTopicLength);
    this.presence.untrack(session, req.topic);
    return create(UntrackResponseSchema);
  }

  /** Who is present on a topic (for anyone who may subscribe to it), optionally grouped by user. */
  async getPresence(req: GetPresenceRequest, identity: Identity): Promise<GetPresenceResponse> {
    checkTopic(req.topic, this.config.maxTopicLength);
    this.permissions.check(identity, "subscribe", req.topic);
    const members = await this.presence.members(req.topic);
    const response = create(GetPresenceResponseSchema, { members: members.map(memberMessage) });
    if (req.groupByUser) {
      const byUser = new Map<string, PresenceMember[]>();
      for (const m of response.members) byUser.set(m.userId, [...(byUser.get(m.userId) ?? []), m]);
      response.users = [...byUser].map(([userId, list]) => create(PresenceUserSchema, { userId, members: list }));
    }
    return response;
  }

  async getPresenceStats(req: GetPresenceStatsRequest, identity: Identity): Promise<GetPresenceStatsResponse> {
    checkTopic(req.topic, this.config.maxTopicLength);
    this.permissions.check(identity, "subscribe", req.topic);
    return create(GetPresenceStatsResponseSchema, await this.presence.stats(req.topic));
  }

  /** ServerService.ListPresence: a back end's view of a topic's members. */
  /** Starts answering the other nodes' admin questions about this node's sessions. */
  startAdmin(): Promise<void> {
    return this.admin.start((kind, body) => {
      const request = (body ?? {}) as { userId?: string; reason?: string; reconnect?: boolean };
      if (kind === "connections") return this.ownConnections(typeof request.userId === "string" ? request.userId : "");
      if (kind === "disconnect" && typeof request.userId === "string") return this.disconnectOwn(request.userId, String(request.reason ?? ""), request.reconnect === true);
      return undefined;
    });
  }

  /**
   * Every connection of every node (one user's, with user_id), ordered by
   * when it connected, a page at a time: the page token is where the last
   * page ended, so a page is never repeated or skipped because connections
   * came or went meanwhile.
   */
  async listConnections(req: { userId: string; pageSize: number; pageToken: string }): Promise<ListConnectionsResponse> {
    if (req.userId !== "") checkUserId(req.userId);
    const size = req.pageSize === 0 ? 100 : req.pageSize;
    if (size > 1000) throw new ConnectError(`page_size ${req.pageSize} is out of range: use 1 to 1000 (0 means 100)`, Code.InvalidArgument);
    const after = req.pageToken === "" ? undefined : pageCursor(req.pageToken);
    const others = (await this.admin.askOthers("connections", { userId: req.userId })).flatMap((answer) => (Array.isArray(answer) ? (answer as ConnectionSummary[]) : []));
    const all = [...this.ownConnections(req.userId), ...others].sort(byConnectedAt);
    const rest = after ? all.filter((c) => byConnectedAt(c, after) > 0) : all;
    const page = rest.slice(0, size);
    const last = page.at(-1);
    return create(ListConnectionsResponseSchema, {
      connections: page.map((c) => create(ConnectionInfoSchema, { connectionId: c.connectionId, userId: c.userId, nodeId: c.nodeId, connectedAt: BigInt(c.connectedAt), topics: c.topics, kind: c.kind })),
      nextPageToken: rest.length > size && last ? Buffer.from(JSON.stringify({ t: last.connectedAt, c: last.connectionId })).toString("base64url") : "",
    });
  }

  /** Ends every session of a user on every node; with reconnect false, their clients stop trying. */
  async disconnectUser(req: { userId: string; reason: string; reconnect: boolean }): Promise<DisconnectUserResponse> {
    checkUserId(req.userId);
    checkLength(req.reason, 256, "reason");
    const own = this.disconnectOwn(req.userId, req.reason, req.reconnect);
    const others = await this.admin.askOthers("disconnect", { userId: req.userId, reason: req.reason, reconnect: req.reconnect });
    return create(DisconnectUserResponseSchema, { disconnected: own + others.reduce<number>((n, a) => n + (typeof a === "number" ? a : 0), 0) });
  }

  private ownConnections(userId: string): ConnectionSummary[] {
    const out: ConnectionSummary[] = [];
    for (const s of this.sessions.values()) {
      if (userId !== "" && s.userId !== userId) continue;
      out.push({ connectionId: s.connectionId, userId: s.userId, nodeId: this.config.nodeId, connectedAt: s.connectedAt, topics: [...s.topics], kind: s.kind });
    }
    return out;
  }

  private disconnectOwn(userId: string, reason: string, reconnect: boolean): number {
    const why = reason === "" ? "disconnected by the server" : `disconnected by the server: ${reason}`;
    let count = 0;
    for (const session of [...this.sessions.values()]) {
      if (session.userId !== userId) continue;
      // Told first (the SDK stops reconnecting when it may not), then ended.
      session.send(encodeFrame(frameOf({ kind: { case: "disconnect", value: { code: reconnect ? Code.Unavailable : Code.PermissionDenied, reason: why, reconnect } } })));
      session.close(new ConnectError(why, reconnect ? Code.Unavailable : Code.PermissionDenied));
      count++;
    }
    if (count > 0) this.log.info(`disconnected ${count} connection(s) of a user`, { user: userId, reconnect });
    return count;
  }

  async listPresence(topic: string): Promise<ListPresenceResponse> {
    checkTopic(topic, this.config.maxTopicLength);
    const members = await this.presence.members(topic);
    return create(ListPresenceResponseSchema, { members: members.map(memberMessage), users: new Set(members.map((m) => m.userId)).size });
  }

  /**
   * What a subscription to a table topic sees: NOT_FOUND for a table that
   * is not tracked, INVALID_ARGUMENT for a bad filter; its filter and the
   * table's row rule for the user as one view (none: every row).
   */
  async tableView(topic: string, filter: string, userId: string): Promise<RowView | undefined> {
    const table = await this.changes.table(topic);
    return viewFor(topic, filter, this.rowRules.get(topic), userId, table);
  }

  /** The row rule's view for a user on a table topic (for history), or none. */
  ruleView(topic: string, userId: string): RowView | undefined {
    const rule = this.rowRules.get(topic);
    return rule ? new RowView(rule.map((c) => ({ ...c, values: c.values.map((v) => v.split("{sub}").join(userId)) }))) : undefined;
  }

  /** ServerService.Query: parameters as a JSON array; rows back as JSON. */
  async query(req: { sql: string; params: string }): Promise<QueryResponse> {
    this.checkSql(req.sql, req.params);
    let params: unknown;
    try {
      params = req.params === "" ? [] : JSON.parse(req.params);
    } catch (error) {
      throw new ConnectError(`params is not JSON text (${(error as Error).message})`, Code.InvalidArgument);
    }
    if (!Array.isArray(params)) throw new ConnectError("params must be a JSON array of values for ? or $1, $2 …", Code.InvalidArgument);
    const result = await this.changes.query(req.sql, params);
    const rows = JSON.stringify(result.rows);
    if (rows.length > this.config.maxQueryResultBytes) {
      throw new ConnectError(`the result is ${rows.length} bytes of JSON; the limit is ${this.config.maxQueryResultBytes} (CHORUS_MAX_QUERY_RESULT_BYTES): select fewer rows`, Code.ResourceExhausted);
    }
    return create(QueryResponseSchema, { rows, fields: result.fields, rowCount: BigInt(result.rowCount) });
  }

  /** ServerService.Exec: statements without parameters (DDL, scripts). */
  async exec(req: { sql: string }): Promise<ExecResponse> {
    this.checkSql(req.sql, "");
    await this.changes.exec(req.sql);
    return create(ExecResponseSchema);
  }

  private checkSql(sql: string, params: string): void {
    if (sql.trim() === "") throw new ConnectError("sql is empty", Code.InvalidArgument);
    if (sql.length + params.length > this.config.maxSqlBytes) {
      throw new ConnectError(`sql and params are ${sql.length + params.length} characters; the limit is ${this.config.maxSqlBytes} (CHORUS_MAX_SQL_BYTES)`, Code.ResourceExhausted);
    }
  }

  pong(): PingResponse {
    return create(PingResponseSchema, { serverTime: BigInt(Date.now()) });
  }

  /** Runs a history read (a page, or a replay chunk) under the per-user and node-wide limits. */
  readHistory<T>(userId: string, read: () => Promise<T>): Promise<T> {
    let gate = this.userHistoryGates.get(userId);
    if (!gate) this.userHistoryGates.set(userId, (gate = new Gate(this.config.maxHistoryReadsPerUser, 64, `history reads by user "${userId}"`)));
    return gate.run(() => this.historyGate.run(read));
  }

  /** Runs one replay read under the node-wide limit. */
  readReplay<T>(read: () => Promise<T>): Promise<T> {
    return this.replayGate.run(read);
  }

  async refreshToken(session: Session, req: RefreshTokenRequest): Promise<RefreshTokenResponse> {
    checkLength(req.token, FIELD_LIMITS.token, "token");
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
    this.draining = true;
    clearInterval(this.heartbeat);
    clearInterval(this.budgetSweep);
    const goodbye = encodeFrame(frameOf({ kind: { case: "disconnect", value: { code: Code.Unavailable, reason, reconnect: true } } }));
    // Clients move to another node: their presence waits there for them (the grace period), handed over on restore.
    for (const session of [...this.sessions.values()]) {
      session.send(goodbye);
      session.close();
    }
    await this.streams.close();
    await this.presence.close();
    this.leaveHook?.close();
    await this.changes.close();
    await this.engine.close();
  }

  private budget(scope: string, rate: number): RateLimit {
    let budget = this.publishBudgets.get(scope);
    if (!budget) this.publishBudgets.set(scope, (budget = new RateLimit(rate)));
    return budget;
  }

  private checkBackendRate(scope: string): void {
    const budget = this.budget(scope, this.config.maxEmitRate);
    if (!budget.take()) {
      throw budget.refusal(() => new ConnectError(`sending faster than ${this.config.maxEmitRate} messages per second with this API key; slow down`, Code.ResourceExhausted));
    }
  }

  /** Budgets that are full again and gates nobody uses cost nothing to forget. */
  private forgetIdleBudgets(): void {
    for (const [scope, budget] of this.publishBudgets) if (budget.full) this.publishBudgets.delete(scope);
    for (const [userId, gate] of this.userHistoryGates) if (gate.idle) this.userHistoryGates.delete(userId);
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
    publisher: string,
  ): Promise<{ id: string; position: StreamPosition | undefined; timestamp: bigint }> {
    const started = performance.now();
    const result: PublishResult = await this.engine.publish({
      topic: req.topic,
      event: req.event,
      data: req.data,
      persist: req.persist,
      id: req.id,
      publisher,
      userId,
      connectionId,
    });
    this.metrics.counts.published++;
    this.metrics.enginePublishSeconds.observe((performance.now() - started) / 1000);
    return {
      id: result.id,
      position: result.seq > 0 ? create(StreamPositionSchema, { seq: BigInt(result.seq), epoch: result.epoch }) : undefined,
      timestamp: BigInt(result.timestamp),
    };
  }

  /**
   * Sends each session a heartbeat; drops those silent for two intervals.
   * An SSE client cannot ping (EventSource only reads): its sign of life is
   * taking what it is sent (its stream marks it so), and one that stopped
   * reading for two intervals is dropped the same way.
   */
  private checkHeartbeats(): void {
    const now = Date.now();
    const interval = this.config.heartbeatIntervalMs;
    const beat = encodeFrame(frameOf({ kind: { case: "heartbeat", value: { serverTime: BigInt(now) } } }));
    for (const session of [...this.sessions.values()]) {
      if (now - session.lastSeen > 2 * interval) {
        const silent = Math.round((now - session.lastSeen) / 1000);
        session.close(new ConnectError(session.kind === "sse" ? `the client has read nothing for ${silent} s` : `no ping from the client for ${silent} s`, Code.DeadlineExceeded));
      } else {
        session.send(beat);
      }
    }
  }
}

/** A member as the protocol carries it. */
function memberMessage(m: Member): PresenceMember {
  return create(PresenceMemberSchema, { userId: m.userId, connectionId: m.id, state: m.state, joinedAt: BigInt(m.joinedAt), updatedAt: BigInt(m.updatedAt) });
}

export interface NodeStats {
  nodeId: string;
  uptimeMs: number;
  sessions: { total: number } & Record<string, number>;
  topics: number;
  busiestTopics: Array<{ topic: string; subscribers: number }>;
  published: number;
  engine: string;
  database: { kind: "postgresql" | "pglite"; open: boolean; changesStored: number };
  developmentMode: boolean;
}

/** A connection as the admin API lists it, and as nodes tell each other. */
interface ConnectionSummary {
  connectionId: string;
  userId: string;
  nodeId: string;
  connectedAt: number;
  topics: string[];
  kind: string;
}

const byConnectedAt = (a: { connectedAt: number; connectionId: string }, b: { connectedAt: number; connectionId: string }): number =>
  a.connectedAt - b.connectedAt || (a.connectionId < b.connectionId ? -1 : a.connectionId > b.connectionId ? 1 : 0);

/** Where a ListConnections page token says the last page ended. */
function pageCursor(token: string): { connectedAt: number; connectionId: string } {
  try {
    const { t, c } = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { t?: unknown; c?: unknown };
    if (typeof t === "number" && typeof c === "string") return { connectedAt: t, connectionId: c };
  } catch {
    // fall through
  }
  throw new ConnectError("page_token is not one this server gave: pass next_page_token as it was", Code.InvalidArgument);
}
