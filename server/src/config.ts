import { randomBytes } from "node:crypto";
import { readKeyMaterial, type AuthConfig } from "./auth.js";
import { parseGrants, type Grants } from "./permissions.js";
import { parseRetention, type RetentionRule } from "./engine/retention.js";
import { natsConfigFromEnv, type NatsConfig } from "./engine/nats/connection.js";

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
  retention: parseRetention("**=count:10000,age:30d"),
  corsOrigins: ["*"],
  auth: { jwtPublicKeys: [], permissionsClaim: "chorus" },
  permissions: {},
  apiKeys: [],
  shutdownGraceMs: 5_000,
});

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
  config.maxSubscriptionsPerSession = int("CHORUS_MAX_SUBSCRIPTIONS", 1) ?? config.maxSubscriptionsPerSession;
  config.maxConnections = int("CHORUS_MAX_CONNECTIONS", 1) ?? config.maxConnections;
  config.maxPublishRate = int("CHORUS_MAX_PUBLISH_RATE", 0) ?? config.maxPublishRate;
  config.joinHookUrl = env.CHORUS_JOIN_HOOK_URL || undefined;
  config.joinHookTimeoutMs = int("CHORUS_JOIN_HOOK_TIMEOUT_MS", 1) ?? config.joinHookTimeoutMs;
  config.maxQueuedFrames = int("CHORUS_MAX_QUEUED_FRAMES", 16) ?? config.maxQueuedFrames;
  config.maxQueuedBytes = int("CHORUS_MAX_QUEUED_BYTES", 65536) ?? config.maxQueuedBytes;
  config.heartbeatIntervalMs = int("CHORUS_HEARTBEAT_MS", 100) ?? config.heartbeatIntervalMs;
  config.shutdownGraceMs = int("CHORUS_SHUTDOWN_GRACE_MS", 0) ?? config.shutdownGraceMs;
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
