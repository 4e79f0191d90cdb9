import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { readKeyMaterial, type AuthConfig } from "./auth.js";
import { parseGrants, type Grants } from "./permissions.js";
import { parseRetention, type RetentionRule } from "./engine/retention.js";
import { natsConfigFromEnv, type NatsConfig } from "./engine/nats/connection.js";
import { LOG_LEVELS, type LogLevel } from "./log.js";
import { DEFAULT_H2_LIMITS, type H2Limits } from "./transport/h2/connection.js";

/** Everything a Chorus node can be told; every field has an embedded default. */
export interface ChorusConfig {
  /** TCP port; 0 picks a free one (the log line says which). */
  port: number;
  host: string;
  engine: "memory" | "nats";
  /** How the nats engine reaches NATS (ignored by the memory engine). */
  nats: NatsConfig;
  /** Where the memory engine keeps persisted history. */
  dataDir: string;
  nodeId: string;
  /** Largest accepted `data` (JSON text) of a publish, in bytes. */
  maxPayloadBytes: number;
  maxTopicLength: number;
  maxEventLength: number;
  maxSubscriptionsPerSession: number;
  /** Sessions this node accepts at once; the next one gets RESOURCE_EXHAUSTED. */
  maxConnections: number;
  /** Publishes per second per connection (burst of the same size); 0 turns the limit off. */
  maxPublishRate: number;
  /** A back end asked to allow each subscription (POST JSON), or undefined. */
  joinHookUrl: string | undefined;
  joinHookTimeoutMs: number;
  /** Frames (or bytes) waiting for one slow subscriber before it is cut off the hot path. */
  maxQueuedFrames: number;
  maxQueuedBytes: number;
  heartbeatIntervalMs: number;
  /** The `retry:` an SSE stream gives browsers: how long they wait before reconnecting. */
  sseRetryMs: number;
  /** Per-topic history retention, first matching rule wins. */
  retention: RetentionRule[];
  /** Origins whose pages may call Chorus from a browser; `*` for any. */
  corsOrigins: string[];
  /** How user tokens are verified; nothing configured means development mode. */
  auth: AuthConfig;
  /** What users may do; ignored in development mode (everything is allowed). */
  permissions: Grants;
  /** API keys accepted by ServerService; empty means development mode. */
  apiKeys: string[];
  /** How long a stopping node waits for streams to end before closing them. */
  shutdownGraceMs: number;
  /** Which HTTP/2 implementation serves h2c: Chorus' own, or Node's `http2` (the escape hatch). */
  http2: "chorus" | "node";
  /** What one HTTP/2 connection may make us hold (see server/src/transport/h2/README.md). */
  h2: H2Limits;
  /** Sockets held at once; more are closed as they are accepted. */
  maxSockets: number;
  /** Connections the kernel queues before we accept them (capped by net.core.somaxconn). */
  listenBacklog: number;
  /** A connection must send its first request within this time. */
  handshakeTimeoutMs: number;
  /** A connection with nothing in progress (no request, no session) is closed after this time. */
  idleTimeoutMs: number;
  /** How much the node logs (CHORUS_LOG_LEVEL): debug adds every session's start and end and every refused command. */
  logLevel: LogLevel;
  /** When set, /metrics and /readyz are served on this port only (an operator's network), not on the public one. */
  internalPort: number | undefined;
  /** Commands a session has read and not yet answered; past it, its stream is not read. */
  maxInFlightCommands: number;
  /** Events one EmitMany call may carry. */
  maxEmitBatch: number;
  /** Emits per second per API key (burst of the same size); 0 turns the limit off. */
  maxEmitRate: number;
  /** The most bytes of messages one history page (or one replay chunk) carries. */
  maxHistoryPageBytes: number;
  /** History reads in progress at once on this node, and per user. */
  maxHistoryReads: number;
  maxHistoryReadsPerUser: number;
  /** A user without the history permission is replayed only messages younger than this. */
  recoveryWindowMs: number;
  /** Embedded engine: "always" fsyncs every write before it is acknowledged (survives power loss); "never" leaves it to the OS (survives a process crash). */
  fsync: "never" | "always";
  /** Embedded engine: history files open at once (two per topic in use). */
  maxOpenFiles: number;
  /** Embedded engine: topics whose positions and recent ids stay in memory. */
  maxTopicsInMemory: number;
  /** Embedded engine: memory for recent messages cached for fast history and replay. */
  historyCacheBytes: number;
  /** A connection gone without a goodbye keeps its presence this long, for the client to come back and restore it. */
  presenceGraceMs: number;
  /** Largest presence state (JSON text). */
  maxPresenceStateBytes: number;
  /** A token stream whose producer sends nothing this long is ended with an error. */
  streamIdleMs: number;
  /** Largest chunk of a token stream, and largest response. */
  maxStreamChunkBytes: number;
  maxStreamBytes: number;
  /** Token streams open at once on one topic, and by one producer. */
  maxStreamsPerTopic: number;
  maxStreamsPerProducer: number;
  /** Presence updates per second per connection (burst of the same size). */
  presenceRate: number;
  /** Members one topic may hold. */
  maxPresenceMembers: number;
  /** NATS: a node silent this long is taken for gone, and its members leave (after the grace period). */
  presenceNodeTimeoutMs: number;
  /** A back end told of every presence leave and every connection end (POST JSON), or undefined. */
  leaveHookUrl: string | undefined;
  leaveHookTimeoutMs: number;
  /** A PostgreSQL whose changes are tracked; undefined: the embedded PGlite in the data directory. */
  databaseUrl: string | undefined;
  /** Tracked tables: `schema.table` patterns, `*` for any name. */
  trackedTables: string[];
  /** Per table topic: a filter every subscriber's rows must also pass, `{sub}` standing for the user id. */
  rowRules: Record<string, string>;
  /** PostgreSQL: the replication slot and publication Chorus owns. */
  replicationSlot: string;
  /** Largest SQL text and parameter list a back end may send. */
  maxSqlBytes: number;
  /** Largest query result (JSON bytes) a back end receives. */
  maxQueryResultBytes: number;
}

export const defaultConfig = (): ChorusConfig => ({
  port: 8080,
  host: "0.0.0.0",
  engine: "memory",
  nats: natsConfigFromEnv({}),
  dataDir: "./.chorus",
  nodeId: randomBytes(4).toString("hex"),
  maxPayloadBytes: 64 * 1024,
  maxTopicLength: 255,
  maxEventLength: 255,
  maxSubscriptionsPerSession: 1000,
  maxConnections: 10_000,
  maxPublishRate: 100,
  joinHookUrl: undefined,
  joinHookTimeoutMs: 2_000,
  maxQueuedFrames: 4096,
  maxQueuedBytes: 8 * 1024 * 1024,
  heartbeatIntervalMs: 30_000,
  sseRetryMs: 2000,
  retention: parseRetention("**=count:10000,age:30d"),
  corsOrigins: ["*"],
  auth: { jwtPublicKeys: [], permissionsClaim: "chorus" },
  permissions: {},
  apiKeys: [],
  shutdownGraceMs: 5_000,
  http2: "chorus",
  h2: { ...DEFAULT_H2_LIMITS },
  maxSockets: defaultMaxSockets(),
  listenBacklog: 4096,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 120_000,
  internalPort: undefined,
  logLevel: "info",
  maxInFlightCommands: 64,
  maxEmitRate: 50_000,
  maxEmitBatch: 1000,
  maxHistoryPageBytes: 1024 * 1024,
  maxHistoryReads: 8,
  maxHistoryReadsPerUser: 4,
  recoveryWindowMs: 120_000,
  fsync: "never",
  maxOpenFiles: defaultMaxOpenFiles(),
  maxTopicsInMemory: 10_000,
  historyCacheBytes: 64 * 1024 * 1024,
  presenceGraceMs: 2_000,
  maxPresenceStateBytes: 4096,
  presenceRate: 20,
  streamIdleMs: 30_000,
  maxStreamChunkBytes: 16 * 1024,
  // The finished response is one message: on NATS it must fit the server's max_payload (1 MB by default).
  maxStreamBytes: 512 * 1024,
  maxStreamsPerTopic: 32,
  maxStreamsPerProducer: 1000,
  maxPresenceMembers: 10_000,
  presenceNodeTimeoutMs: 5_000,
  leaveHookUrl: undefined,
  leaveHookTimeoutMs: 2_000,
  databaseUrl: undefined,
  trackedTables: ["public.*"],
  rowRules: {},
  replicationSlot: "chorus",
  maxSqlBytes: 1024 * 1024,
  maxQueryResultBytes: 16 * 1024 * 1024,
});

/** History files kept open: 256, or a quarter of the descriptor limit when that is smaller. */
function defaultMaxOpenFiles(): number {
  const limit = fileDescriptorLimit();
  return Math.max(8, Math.min(256, limit === undefined ? 256 : Math.floor(limit / 4)));
}

/** File descriptors this process may open (its soft limit), when the platform says. */
export function fileDescriptorLimit(): number | undefined {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Descriptors kept back from sockets: history files, the NATS connection,
 * logs and what Node itself opens. A node at its socket cap still serves
 * the clients it has.
 */
export const FD_HEADROOM = 320;

function defaultMaxSockets(): number {
  const limit = fileDescriptorLimit();
  return limit === undefined ? 20_000 : Math.max(16, limit - Math.min(FD_HEADROOM, Math.floor(limit / 2)));
}

/**
 * Reads the environment. Unknown or malformed values stop the start-up with
 * a message naming the variable: a typo must never silently fall back.
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ChorusConfig {
  const config = defaultConfig();
  const int = (name: string, min: number): number | undefined => {
    const raw = env[name];
    if (raw === undefined || raw === "") return undefined;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min) {
      throw new Error(`${name}=${raw} is not an integer >= ${min}`);
    }
    return value;
  };
  config.port = int("PORT", 0) ?? config.port;
  config.host = env.HOST || config.host;
  const engine = env.CHORUS_ENGINE || "memory";
  if (engine !== "memory" && engine !== "nats") {
    throw new Error(`CHORUS_ENGINE=${engine} is not supported; use "memory" (embedded) or "nats" (with NATS_URL)`);
  }
  config.engine = engine;
  config.nats = natsConfigFromEnv(env);
  config.dataDir = env.CHORUS_DATA_DIR || config.dataDir;
  config.nodeId = env.CHORUS_NODE_ID || config.nodeId;
  config.maxPayloadBytes = int("CHORUS_MAX_PAYLOAD_BYTES", 1) ?? config.maxPayloadBytes;
  config.maxTopicLength = int("CHORUS_MAX_TOPIC_LENGTH", 1) ?? config.maxTopicLength;
  // Topics become file names' sources and NATS subjects (escaped, up to 3 bytes a character): keep them well under NATS' 4 KiB control line.
  if (config.maxTopicLength > 1024) throw new Error(`CHORUS_MAX_TOPIC_LENGTH=${config.maxTopicLength} is above the most Chorus supports, 1024`);
  config.maxSubscriptionsPerSession = int("CHORUS_MAX_SUBSCRIPTIONS", 1) ?? config.maxSubscriptionsPerSession;
  config.maxConnections = int("CHORUS_MAX_CONNECTIONS", 1) ?? config.maxConnections;
  config.maxPublishRate = int("CHORUS_MAX_PUBLISH_RATE", 0) ?? config.maxPublishRate;
  config.joinHookUrl = env.CHORUS_JOIN_HOOK_URL || undefined;
  config.joinHookTimeoutMs = int("CHORUS_JOIN_HOOK_TIMEOUT_MS", 1) ?? config.joinHookTimeoutMs;
  config.maxQueuedFrames = int("CHORUS_MAX_QUEUED_FRAMES", 16) ?? config.maxQueuedFrames;
  config.maxQueuedBytes = int("CHORUS_MAX_QUEUED_BYTES", 65536) ?? config.maxQueuedBytes;
  config.heartbeatIntervalMs = int("CHORUS_HEARTBEAT_MS", 100) ?? config.heartbeatIntervalMs;
  config.sseRetryMs = int("CHORUS_SSE_RETRY_MS", 0) ?? config.sseRetryMs;
  config.shutdownGraceMs = int("CHORUS_SHUTDOWN_GRACE_MS", 0) ?? config.shutdownGraceMs;
  const http2 = env.CHORUS_HTTP2 || "chorus";
  if (http2 !== "chorus" && http2 !== "node") throw new Error(`CHORUS_HTTP2=${http2} is not supported; use "chorus" (Chorus' own HTTP/2) or "node" (Node's http2 module)`);
  config.http2 = http2;
  const h2 = config.h2;
  h2.maxConcurrentStreams = int("CHORUS_H2_MAX_STREAMS", 1) ?? h2.maxConcurrentStreams;
  h2.maxHeaderListSize = int("CHORUS_H2_MAX_HEADER_LIST_BYTES", 1024) ?? h2.maxHeaderListSize;
  h2.maxSettingsPerFrame = int("CHORUS_H2_MAX_SETTINGS", 6) ?? h2.maxSettingsPerFrame;
  h2.maxContinuations = int("CHORUS_H2_MAX_CONTINUATIONS", 1) ?? h2.maxContinuations;
  h2.resetBurst = int("CHORUS_H2_RESET_BURST", 1) ?? h2.resetBurst;
  h2.resetsPerSecond = int("CHORUS_H2_RESETS_PER_SECOND", 1) ?? h2.resetsPerSecond;
  h2.emptyFrameBurst = int("CHORUS_H2_EMPTY_FRAME_BURST", 1) ?? h2.emptyFrameBurst;
  h2.emptyFramesPerSecond = int("CHORUS_H2_EMPTY_FRAMES_PER_SECOND", 1) ?? h2.emptyFramesPerSecond;
  h2.maxUnreadControlBytes = int("CHORUS_H2_MAX_UNREAD_CONTROL_BYTES", 16_384) ?? h2.maxUnreadControlBytes;
  const fdLimit = fileDescriptorLimit();
  const sockets = int("CHORUS_MAX_SOCKETS", 1);
  if (sockets !== undefined) {
    if (fdLimit !== undefined && sockets > fdLimit - 64) {
      throw new Error(`CHORUS_MAX_SOCKETS=${sockets} leaves no room under this process's file descriptor limit of ${fdLimit}; use at most ${fdLimit - 64} or raise ulimit -n`);
    }
    config.maxSockets = sockets;
  }
  config.listenBacklog = int("CHORUS_LISTEN_BACKLOG", 1) ?? config.listenBacklog;
  config.handshakeTimeoutMs = int("CHORUS_HANDSHAKE_TIMEOUT_MS", 100) ?? config.handshakeTimeoutMs;
  config.idleTimeoutMs = int("CHORUS_IDLE_TIMEOUT_MS", 1000) ?? config.idleTimeoutMs;
  config.internalPort = int("CHORUS_INTERNAL_PORT", 0) ?? config.internalPort;
  const level = env.CHORUS_LOG_LEVEL || config.logLevel;
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new Error(`CHORUS_LOG_LEVEL=${level} is not a level; use one of ${LOG_LEVELS.join(", ")}`);
  config.logLevel = level as LogLevel;
  config.maxInFlightCommands = int("CHORUS_MAX_INFLIGHT_COMMANDS", 1) ?? config.maxInFlightCommands;
  config.maxEmitRate = int("CHORUS_MAX_EMIT_RATE", 0) ?? config.maxEmitRate;
  // At least what the SDK sends in one call.
  config.maxEmitBatch = int("CHORUS_MAX_EMIT_BATCH", 100) ?? config.maxEmitBatch;
  config.maxHistoryPageBytes = int("CHORUS_MAX_HISTORY_PAGE_BYTES", 65_536) ?? config.maxHistoryPageBytes;
  config.maxHistoryReads = int("CHORUS_MAX_HISTORY_READS", 1) ?? config.maxHistoryReads;
  config.maxHistoryReadsPerUser = int("CHORUS_MAX_HISTORY_READS_PER_USER", 1) ?? config.maxHistoryReadsPerUser;
  config.recoveryWindowMs = int("CHORUS_RECOVERY_WINDOW_MS", 0) ?? config.recoveryWindowMs;
  const fsync = env.CHORUS_FSYNC || "never";
  if (fsync !== "never" && fsync !== "always") throw new Error(`CHORUS_FSYNC=${fsync} is not supported; use "never" (written before acknowledged: survives a crash of the process) or "always" (also fsynced: survives power loss)`);
  config.fsync = fsync;
  config.maxOpenFiles = int("CHORUS_MAX_OPEN_FILES", 8) ?? config.maxOpenFiles;
  config.maxTopicsInMemory = int("CHORUS_HISTORY_TOPICS_IN_MEMORY", 16) ?? config.maxTopicsInMemory;
  config.historyCacheBytes = int("CHORUS_HISTORY_CACHE_BYTES", 0) ?? config.historyCacheBytes;
  config.presenceGraceMs = int("CHORUS_PRESENCE_GRACE_MS", 0) ?? config.presenceGraceMs;
  config.maxPresenceStateBytes = int("CHORUS_MAX_PRESENCE_STATE_BYTES", 16) ?? config.maxPresenceStateBytes;
  config.presenceRate = int("CHORUS_PRESENCE_RATE", 1) ?? config.presenceRate;
  config.streamIdleMs = int("CHORUS_STREAM_IDLE_MS", 100) ?? config.streamIdleMs;
  config.maxStreamChunkBytes = int("CHORUS_MAX_STREAM_CHUNK_BYTES", 16) ?? config.maxStreamChunkBytes;
  config.maxStreamBytes = int("CHORUS_MAX_STREAM_BYTES", 1024) ?? config.maxStreamBytes;
  config.maxStreamsPerTopic = int("CHORUS_MAX_STREAMS_PER_TOPIC", 1) ?? config.maxStreamsPerTopic;
  config.maxStreamsPerProducer = int("CHORUS_MAX_STREAMS_PER_PRODUCER", 1) ?? config.maxStreamsPerProducer;
  config.maxPresenceMembers = int("CHORUS_MAX_PRESENCE_MEMBERS", 1) ?? config.maxPresenceMembers;
  config.presenceNodeTimeoutMs = int("CHORUS_PRESENCE_NODE_TIMEOUT_MS", 1000) ?? config.presenceNodeTimeoutMs;
  config.leaveHookUrl = env.CHORUS_LEAVE_HOOK_URL || undefined;
  config.leaveHookTimeoutMs = int("CHORUS_LEAVE_HOOK_TIMEOUT_MS", 1) ?? config.leaveHookTimeoutMs;
  config.databaseUrl = env.DATABASE_URL || undefined;
  if (env.CHORUS_DB_TABLES) config.trackedTables = env.CHORUS_DB_TABLES.split(",").map((t) => t.trim()).filter(Boolean);
  if (env.CHORUS_ROW_RULES) {
    const text = env.CHORUS_ROW_RULES.trimStart().startsWith("{") ? env.CHORUS_ROW_RULES : readKeyMaterial(env.CHORUS_ROW_RULES);
    config.rowRules = JSON.parse(text) as Record<string, string>;
  }
  if (env.CHORUS_DB_SLOT) {
    if (!/^[a-z0-9_]{1,63}$/.test(env.CHORUS_DB_SLOT)) throw new Error("CHORUS_DB_SLOT must be 1-63 of a-z, 0-9 and _ (a replication slot name)");
    config.replicationSlot = env.CHORUS_DB_SLOT;
  }
  config.maxSqlBytes = int("CHORUS_MAX_SQL_BYTES", 16) ?? config.maxSqlBytes;
  config.maxQueryResultBytes = int("CHORUS_MAX_QUERY_RESULT_BYTES", 1024) ?? config.maxQueryResultBytes;
  if (env.CHORUS_RETENTION) config.retention = parseRetention(env.CHORUS_RETENTION);
  if (engine === "nats" && (config.retention.length !== 1 || config.retention[0]!.pattern !== "**")) {
    // One JetStream stream holds every topic, and its limits apply to each subject alike.
    throw new Error(`CHORUS_RETENTION=${env.CHORUS_RETENTION}: the nats engine keeps one retention for every topic; give a single rule such as **=count:10000,age:30d`);
  }
  if (env.CHORUS_CORS_ORIGINS) {
    config.corsOrigins = env.CHORUS_CORS_ORIGINS.split(",").map((o) => o.trim()).filter(Boolean);
  }
  const jwks = env.CHORUS_JWKS_FILE ? readKeyMaterial(env.CHORUS_JWKS_FILE) : undefined;
  config.auth = {
    jwtSecret: env.CHORUS_JWT_SECRET || undefined,
    jwtPublicKeys: env.CHORUS_JWT_PUBLIC_KEY ? [readKeyMaterial(env.CHORUS_JWT_PUBLIC_KEY)] : [],
    jwks: jwks ? (JSON.parse(jwks) as { keys: object[] }) : undefined,
    audience: env.CHORUS_JWT_AUDIENCE || undefined,
    issuer: env.CHORUS_JWT_ISSUER || undefined,
    permissionsClaim: env.CHORUS_PERMISSIONS_CLAIM ?? "chorus",
  };
  if (env.CHORUS_PERMISSIONS) {
    const text = env.CHORUS_PERMISSIONS.trimStart().startsWith("{") ? env.CHORUS_PERMISSIONS : readKeyMaterial(env.CHORUS_PERMISSIONS);
    config.permissions = parseGrants(JSON.parse(text), "CHORUS_PERMISSIONS");
  }
  if (env.CHORUS_API_KEYS) {
    config.apiKeys = env.CHORUS_API_KEYS.split(",").map((k) => k.trim()).filter(Boolean);
  }
  return config;
}

/**
 * `CHORUS_*` and `NATS_*` variables set in `env` that no setting reads
 * (a typo must not pass in silence), each with the known name it most
 * likely meant. The known names are the ones configFromEnv reads, so
 * this list cannot drift from it.
 */
export function unknownVariables(env: NodeJS.ProcessEnv = process.env): Array<{ name: string; suggestion: string | undefined }> {
  const read = new Set<string>();
  const recording = (values: NodeJS.ProcessEnv) =>
    new Proxy(values, {
      get(target, name) {
        if (typeof name === "string") read.add(name);
        return target[name as string];
      },
    });
  // Twice: with nothing set (every setting read, none refused), then as set (what some values lead it to read).
  for (const values of [{}, env]) {
    try {
      configFromEnv(recording(values));
    } catch {
      // A bad value is configFromEnv's to report; the names were read all the same.
    }
  }
  const known = [...read].filter((name) => /^(CHORUS|NATS)_/.test(name));
  return Object.keys(env)
    .filter((name) => /^(CHORUS|NATS)_/.test(name) && !read.has(name))
    .sort()
    .map((name) => ({ name, suggestion: closest(name, known) }));
}

/** The known name nearest to `name` by edit distance, if near enough to be a typo. */
function closest(name: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(3, Math.floor(name.length / 5)) + 1;
  for (const candidate of known) {
    const d = editDistance(name, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = row;
  }
  return previous[b.length]!;
}
