import { DEFAULT_H2_LIMITS as H2 } from "./transport/h2/connection.js";

/**
 * Every setting a node reads from its environment, with its default and
 * meaning: what `chorus config` prints and what the README's settings
 * reference is generated from (`npm run docs:settings`; a test checks both
 * that the README matches and that this list names exactly the variables
 * configFromEnv reads).
 */
export interface Setting {
  variable: string;
  /** The default, as a person reads it. */
  default: string;
  meaning: string;
  group: SettingGroup;
  /** Never printed: only whether it is set. */
  secret?: boolean;
}

export type SettingGroup = "server" | "auth" | "engine" | "nats" | "database" | "presence" | "streams" | "limits" | "http2" | "operations";

export const GROUPS: Record<SettingGroup, string> = {
  server: "Server",
  auth: "Auth and permissions",
  engine: "Embedded engine and history",
  nats: "NATS engine",
  database: "Database changes",
  presence: "Presence",
  streams: "AI token streams",
  limits: "Limits",
  http2: "HTTP/2 (see server/src/transport/h2/README.md)",
  operations: "Operations",
};

const s = (group: SettingGroup, variable: string, defaultText: string, meaning: string, secret = false): Setting => ({ variable, default: defaultText, meaning, group, ...(secret ? { secret } : {}) });

export const SETTINGS: Setting[] = [
  s("server", "PORT", "8080", "the port to listen on (0 picks a free one)"),
  s("server", "HOST", "0.0.0.0", "the address to listen on"),
  s("server", "CHORUS_NODE_ID", "random", "this node's name in logs, Welcome frames, metrics and the admin API"),
  s("server", "CHORUS_CORS_ORIGINS", "*", "origins whose pages may call Chorus from a browser, comma-separated"),
  s("server", "CHORUS_HTTP2", "chorus", "`node` serves cleartext HTTP/2 with Node's http2 module instead of Chorus' own (same routes)"),
  s("server", "CHORUS_SSE_RETRY_MS", "2000", "the `retry:` of Server-Sent Events streams: how long a browser waits before it reconnects"),
  s("server", "CHORUS_JOIN_HOOK_URL", "none", "a back end asked (POST JSON) to allow each subscription"),
  s("server", "CHORUS_JOIN_HOOK_TIMEOUT_MS", "2000", "how long the join hook may take before the subscription is refused UNAVAILABLE"),
  s("server", "CHORUS_LEAVE_HOOK_URL", "none", "a back end told of every presence leave and connection end"),
  s("server", "CHORUS_LEAVE_HOOK_TIMEOUT_MS", "2000", "how long one call to the leave hook may take"),
  s("auth", "CHORUS_JWT_SECRET", "none", "HS256 secret user tokens are verified with (none of the three: development mode)", true),
  s("auth", "CHORUS_JWT_PUBLIC_KEY", "none", "a PEM public key (RS256 or ES256) user tokens are verified with: inline, or a file"),
  s("auth", "CHORUS_JWKS_FILE", "none", "a JWKS document (keys picked by kid): inline, or a file"),
  s("auth", "CHORUS_JWT_AUDIENCE", "none", "the `aud` a token must carry"),
  s("auth", "CHORUS_JWT_ISSUER", "none", "the `iss` a token must carry"),
  s("auth", "CHORUS_PERMISSIONS", "none (development mode: everything)", "what users may do: JSON `{\"subscribe\": [\"chat/*\"], …}` (subscribe, publish, presence, history; `{sub}` is the user id), inline or a file"),
  s("auth", "CHORUS_PERMISSIONS_CLAIM", "chorus", "the token claim that may carry more grants (empty: ignore claims)"),
  s("auth", "CHORUS_API_KEYS", "none (development mode)", "comma-separated keys for ServerService (back ends)", true),
  s("engine", "CHORUS_ENGINE", "memory", "`memory` (embedded: fan-out in this process, history on local disk) or `nats`"),
  s("engine", "CHORUS_DATA_DIR", "./.chorus", "where the embedded engine keeps history (and the embedded database its files)"),
  s("engine", "CHORUS_RETENTION", "**=count:10000,age:30d", "per-topic history retention: `pattern=count:N,age:D;…`, first match wins (with NATS, one rule for every topic)"),
  s("engine", "CHORUS_FSYNC", "never", "embedded engine: `always` fsyncs every write before it is acknowledged"),
  s("engine", "CHORUS_MAX_OPEN_FILES", "256 (or a quarter of the descriptor limit)", "embedded engine: history files open at once, least recently used closed first"),
  s("engine", "CHORUS_HISTORY_TOPICS_IN_MEMORY", "10000", "embedded engine: topics whose positions and recent ids stay in memory"),
  s("engine", "CHORUS_HISTORY_CACHE_BYTES", "64 MiB", "embedded engine: recent messages cached for history and replay, all topics together"),
  s("engine", "CHORUS_RECOVERY_WINDOW_MS", "120000", "what a re-subscribing user without the history permission is replayed: messages younger than this"),
  s("nats", "NATS_URL", "nats://127.0.0.1:4222", "NATS servers, comma-separated"),
  s("nats", "NATS_TOKEN", "none", "a token for NATS", true),
  s("nats", "NATS_USER", "none", "a user name for NATS"),
  s("nats", "NATS_PASSWORD", "none", "that user's password", true),
  s("nats", "NATS_CREDS", "none", "a NATS `.creds` file"),
  s("nats", "NATS_TLS_CA", "none", "the CA file for TLS to NATS"),
  s("nats", "NATS_TLS_CERT", "none", "a client certificate file for TLS to NATS"),
  s("nats", "NATS_TLS_KEY", "none", "its key file"),
  s("nats", "CHORUS_NATS_PREFIX", "chorus", "subjects start with it; the stream is `<prefix>-messages`"),
  s("nats", "CHORUS_NATS_REPLICAS", "1", "JetStream replicas of the stream (3 on a 3-node cluster)"),
  s("nats", "CHORUS_NATS_PUBLISH_TIMEOUT_MS", "3000", "how long a persisted publish waits for JetStream before UNAVAILABLE"),
  s("database", "DATABASE_URL", "none (the embedded PGlite)", "a PostgreSQL whose changes are tracked and whose SQL back ends run", true),
  s("database", "CHORUS_DB_TABLES", "public.*", "tracked tables: `schema.table` patterns, `*` for any name"),
  s("database", "CHORUS_DB_SLOT", "chorus", "PostgreSQL: the replication slot and the publication Chorus owns"),
  s("database", "CHORUS_ROW_RULES", "none", "per table, a filter every subscriber's rows must pass, `{sub}` for the user id (JSON, or a file)"),
  s("presence", "CHORUS_PRESENCE_GRACE_MS", "2000", "how long a connection lost without a goodbye keeps its presence"),
  s("presence", "CHORUS_PRESENCE_NODE_TIMEOUT_MS", "5000", "NATS: a node silent this long is gone, and its members leave after the grace period"),
  s("presence", "CHORUS_MAX_PRESENCE_STATE_BYTES", "4096", "the largest presence state"),
  s("presence", "CHORUS_PRESENCE_RATE", "20", "presence tracks and updates per second per connection"),
  s("presence", "CHORUS_MAX_PRESENCE_MEMBERS", "10000", "members per topic"),
  s("streams", "CHORUS_STREAM_IDLE_MS", "30000", "a token stream whose producer sends nothing this long ends with an error"),
  s("streams", "CHORUS_MAX_STREAM_CHUNK_BYTES", "16384", "one chunk of a token stream"),
  s("streams", "CHORUS_MAX_STREAM_BYTES", "524288", "one token stream's whole response"),
  s("streams", "CHORUS_MAX_STREAMS_PER_TOPIC", "32", "token streams open at once on a topic"),
  s("streams", "CHORUS_MAX_STREAMS_PER_PRODUCER", "1000", "token streams open at once by one API key"),
  s("limits", "CHORUS_MAX_CONNECTIONS", "10000", "sessions per node"),
  s("limits", "CHORUS_MAX_SOCKETS", "file descriptor limit − 320 (or half of it)", "open sockets, checked when accepted"),
  s("limits", "CHORUS_LISTEN_BACKLOG", "4096", "connections completed by the kernel and not yet accepted"),
  s("limits", "CHORUS_HANDSHAKE_TIMEOUT_MS", "10000", "time to a connection's first request"),
  s("limits", "CHORUS_IDLE_TIMEOUT_MS", "120000", "a connection with nothing in progress is closed after this"),
  s("limits", "CHORUS_HEARTBEAT_MS", "30000", "heartbeat interval; a client silent for two is dropped"),
  s("limits", "CHORUS_MAX_PAYLOAD_BYTES", "65536", "`data` of a publish or emit"),
  s("limits", "CHORUS_MAX_TOPIC_LENGTH", "255 (at most 1024)", "a topic"),
  s("limits", "CHORUS_MAX_SUBSCRIPTIONS", "1000", "subscriptions per session"),
  s("limits", "CHORUS_MAX_PUBLISH_RATE", "100", "publishes per second per user (burst of as many); 0 is unlimited"),
  s("limits", "CHORUS_MAX_EMIT_RATE", "50000", "emits and sends per second per API key"),
  s("limits", "CHORUS_MAX_EMIT_BATCH", "1000 (at least 100)", "events in one EmitMany call or EmitSession batch"),
  s("limits", "CHORUS_MAX_INFLIGHT_COMMANDS", "64", "commands a session has read and not yet answered"),
  s("limits", "CHORUS_MAX_QUEUED_FRAMES", "4096", "frames queued for one session"),
  s("limits", "CHORUS_MAX_QUEUED_BYTES", "8 MiB", "bytes queued for one session"),
  s("limits", "CHORUS_MAX_HISTORY_PAGE_BYTES", "1 MiB", "messages in one history page or replay chunk"),
  s("limits", "CHORUS_MAX_HISTORY_READS", "8", "history reads running at once per node"),
  s("limits", "CHORUS_MAX_HISTORY_READS_PER_USER", "4", "history reads running at once per user"),
  s("limits", "CHORUS_MAX_SQL_BYTES", "1 MiB", "SQL text and parameters of one Query or Exec"),
  s("limits", "CHORUS_MAX_QUERY_RESULT_BYTES", "16 MiB", "the JSON of one Query's rows"),
  s("http2", "CHORUS_H2_MAX_STREAMS", String(H2.maxConcurrentStreams), "streams open at once per HTTP/2 connection"),
  s("http2", "CHORUS_H2_MAX_HEADER_LIST_BYTES", String(H2.maxHeaderListSize), "one request's header list"),
  s("http2", "CHORUS_H2_MAX_SETTINGS", String(H2.maxSettingsPerFrame), "settings in one SETTINGS frame"),
  s("http2", "CHORUS_H2_MAX_CONTINUATIONS", String(H2.maxContinuations), "CONTINUATION frames after one HEADERS"),
  s("http2", "CHORUS_H2_RESET_BURST", String(H2.resetBurst), "stream resets a connection may cause at once"),
  s("http2", "CHORUS_H2_RESETS_PER_SECOND", String(H2.resetsPerSecond), "and per second after the burst"),
  s("http2", "CHORUS_H2_EMPTY_FRAME_BURST", String(H2.emptyFrameBurst), "empty frames a connection may send at once"),
  s("http2", "CHORUS_H2_EMPTY_FRAMES_PER_SECOND", String(H2.emptyFramesPerSecond), "and per second after the burst"),
  s("http2", "CHORUS_H2_MAX_UNREAD_CONTROL_BYTES", String(H2.maxUnreadControlBytes), "control frames (PING, SETTINGS acknowledgements) queued for a peer that does not read"),
  s("operations", "CHORUS_LOG_LEVEL", "info", "`trace`, `debug`, `info`, `warn`, `error`, `fatal` or `silent`"),
  s("operations", "CHORUS_INTERNAL_PORT", "none", "a second port serving /metrics, /readyz, /healthz and the admin RPCs (ListConnections, DisconnectUser, ListPresence), which the public port then no longer serves"),
  s("operations", "CHORUS_SHUTDOWN_GRACE_MS", "5000", "on SIGTERM, how long to wait for clients to leave before closing their connections"),
];

/** The README's settings reference: one table per group. */
export function settingsMarkdown(): string {
  const out: string[] = [];
  for (const [group, title] of Object.entries(GROUPS) as Array<[SettingGroup, string]>) {
    const rows = SETTINGS.filter((x) => x.group === group);
    out.push(`**${title}**`, "", "| variable | default | meaning |", "|---|---|---|");
    for (const x of rows) out.push(`| \`${x.variable}\` | ${shownDefault(x.default)} | ${x.meaning.replace(/\|/g, "\\|")} |`);
    out.push("");
  }
  return out.join("\n");
}

/** What `chorus config` prints: each setting with its default, the value in `env` (a secret only as set) and its meaning. */
export function settingsReport(env: NodeJS.ProcessEnv): string {
  const out: string[] = [];
  for (const [group, title] of Object.entries(GROUPS) as Array<[SettingGroup, string]>) {
    out.push(`${title}`);
    for (const x of SETTINGS.filter((y) => y.group === group)) {
      const raw = env[x.variable];
      const current = raw === undefined || raw === "" ? "(default)" : x.secret ? "(set, not shown)" : raw;
      out.push(`  ${x.variable}`, `      default: ${x.default}`, `      current: ${current}`, `      ${x.meaning}`);
    }
    out.push("");
  }
  return out.join("\n");
}

/** A literal default in code type; a description (with spaces, or none/random) as text. */
function shownDefault(text: string): string {
  return /\s/.test(text) || text === "none" || text === "random" ? text.replace(/\|/g, "\\|") : `\`${text}\``;
}
