import { ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { DescService } from "@bufbuild/protobuf";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * A node's Prometheus metrics (`/metrics`): `chorus_` names in base units,
 * histograms rather than summaries (percentiles aggregate across nodes),
 * and no label that carries user data or topic names: labels are bounded
 * sets (transport, session kind, RPC method, Connect code, outcome).
 *
 * The hot paths only add to plain numbers (`counts`) or observe a
 * histogram once per flush or per call; everything else is read from the
 * node when Prometheus scrapes.
 */
export class NodeMetrics {
  readonly registry = new Registry();
  /** Plain counters the hot paths add to; read at scrape time. */
  readonly counts = { published: 0 };
  readonly commandSeconds: Histogram<"method" | "code">;
  readonly enginePublishSeconds: Histogram;
  readonly flushSeconds: Histogram;
  readonly dbChangeLagSeconds: Histogram;
  readonly sessionsOpened: Counter<"kind">;
  readonly sessionsRefused: Counter<"reason">;
  readonly sessionsClosed: Counter<"kind" | "reason">;
  readonly recoveries: Counter<"outcome">;

  constructor(read: () => NodeSnapshot, slotLag: () => Promise<number | undefined> = async () => undefined) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const LATENCY = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    this.commandSeconds = new Histogram({
      name: "chorus_command_duration_seconds",
      help: "Time to answer a command (a unary RPC, or a command on a session stream), by method and Connect code.",
      labelNames: ["method", "code"],
      buckets: LATENCY,
      registers,
    });
    this.enginePublishSeconds = new Histogram({
      name: "chorus_engine_publish_duration_seconds",
      help: "Time from handing a message to the engine to its acknowledgement (stored, for a persisted one).",
      buckets: LATENCY,
      registers,
    });
    this.flushSeconds = new Histogram({
      name: "chorus_fanout_flush_duration_seconds",
      help: "Time one fan-out flush takes: every session's queued frames written, once per event-loop turn.",
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    });
    this.dbChangeLagSeconds = new Histogram({
      name: "chorus_db_change_lag_seconds",
      help: "Time from a transaction's commit in the database to its changes stored and delivered (PostgreSQL: its commit time; the embedded database: when it was read).",
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.sessionsOpened = new Counter({ name: "chorus_sessions_opened_total", help: "Sessions opened, by kind (connect: bidi stream, listen: browser, sse).", labelNames: ["kind"], registers });
    this.sessionsRefused = new Counter({ name: "chorus_sessions_refused_total", help: "Sessions refused, by reason.", labelNames: ["reason"], registers });
    this.sessionsClosed = new Counter({
      name: "chorus_sessions_closed_total",
      help: "Sessions ended, by kind and reason (client: its goodbye; lost: the connection went; otherwise the Connect code it ended with).",
      labelNames: ["kind", "reason"],
      registers,
    });
    this.recoveries = new Counter({
      name: "chorus_recoveries_total",
      help: "Subscriptions resumed from a position, by outcome (recovered: every message since was delivered; gap: some were no longer there).",
      labelNames: ["outcome"],
      registers,
    });

    // One reading of the node per scrape, shared by the gauges collected in it.
    let snapshot: NodeSnapshot | undefined;
    let readAt = 0;
    const now = () => {
      if (!snapshot || Date.now() - readAt > 100) {
        snapshot = read();
        readAt = Date.now();
      }
      return snapshot;
    };
    const gauge = (name: string, help: string, value: (s: NodeSnapshot) => number) =>
      new Gauge({ name, help, registers, collect: function (this: Gauge) { this.set(value(now())); } });
    const labelled = <L extends string>(name: string, help: string, label: L, values: (s: NodeSnapshot) => Record<string, number>) =>
      new Gauge({
        name,
        help,
        labelNames: [label],
        registers,
        collect: function (this: Gauge<L>) {
          for (const [key, v] of Object.entries(values(now()))) this.set({ [label]: key } as Record<L, string>, v);
        },
      });
    const total = (name: string, help: string, value: (s: NodeSnapshot) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect: function (this: Counter) {
          this.reset();
          this.inc(value(now()));
        },
      });
    labelled("chorus_connections", "Open client connections, by transport (h1: HTTP/1.1, h2: HTTP/2).", "transport", (s) => s.connections);
    labelled("chorus_sessions", "Sessions open, by kind.", "kind", (s) => s.sessions);
    gauge("chorus_subscriptions", "Subscriptions held by this node's sessions.", (s) => s.subscriptions);
    gauge("chorus_topics", "Topics with subscribers on this node.", (s) => s.topics);
    gauge("chorus_presence_members", "Presence members this node knows of, on the topics it watches.", (s) => s.presenceMembers);
    gauge("chorus_streams_active", "Token streams open on this node's producers.", (s) => s.activeStreams);
    gauge("chorus_outbox_bytes", "Bytes queued for clients and not yet written, all sessions together.", (s) => s.outboxBytes);
    gauge("chorus_engine_connected", "1 when the engine can take publishes (NATS: connected), else 0.", (s) => (s.engineConnected ? 1 : 0));
    gauge("chorus_ready", "1 when the node is ready for clients (see /readyz), else 0.", (s) => (s.ready ? 1 : 0));
    total("chorus_messages_published_total", "Messages published on this node (client publishes and back-end emits).", () => this.counts.published);
    total("chorus_frames_sent_total", "Frames handed to clients' streams (payloads, replies, heartbeats).", (s) => s.framesSent);
    total("chorus_messages_dropped_total", "Payloads dropped for subscribers too slow to take them (each then told system:lagged).", (s) => s.dropped);
    new Gauge({
      name: "chorus_db_slot_lag_bytes",
      help: "PostgreSQL: how far Chorus' replication slot trails the server's WAL (0 where there is no slot: the embedded database).",
      registers,
      async collect() {
        const lag = await slotLag().catch(() => undefined);
        if (lag === undefined) this.reset();
        else this.set(lag);
      },
    });
    total("chorus_db_changes_stored_total", "Database changes stored and delivered to table topics.", (s) => s.changesStored);
  }

  /** The metrics text and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /**
   * The service with each unary method timed into chorus_command_duration_seconds
   * (both the lean unary path and connect's serve these same functions).
   */
  timed<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>, refused?: (method: string, error: unknown) => void): Partial<ServiceImpl<S>> {
    const out: Record<string, unknown> = { ...impl };
    for (const method of service.methods) {
      const fn = (impl as Record<string, unknown>)[method.localName];
      if (method.methodKind !== "unary" || typeof fn !== "function") continue;
      const histogram = this.commandSeconds;
      out[method.localName] = async function (this: unknown, ...args: unknown[]) {
        const started = performance.now();
        let code = "ok";
        try {
          return await (fn as (...a: unknown[]) => Promise<unknown>).apply(this, args);
        } catch (error) {
          code = codeToString(ConnectError.from(error).code);
          refused?.(method.name, error);
          throw error;
        } finally {
          histogram.observe({ method: method.name, code }, (performance.now() - started) / 1000);
        }
      };
    }
    return out as Partial<ServiceImpl<S>>;
  }

  /** A command on a session stream, timed (method: the RPC it stands for, e.g. Subscribe). */
  command(method: string, started: number, error: unknown): void {
    const code = error === undefined ? "ok" : codeToString(ConnectError.from(error).code);
    this.commandSeconds.observe({ method, code }, (performance.now() - started) / 1000);
  }

  sessionClosed(kind: string, error: ConnectError | undefined, clean: boolean): void {
    this.sessionsClosed.inc({ kind, reason: clean ? "client" : error ? codeToString(error.code) : "lost" });
  }
}

/** What the scrape reads from the node. */
export interface NodeSnapshot {
  connections: Record<string, number>;
  sessions: Record<string, number>;
  subscriptions: number;
  topics: number;
  presenceMembers: number;
  activeStreams: number;
  outboxBytes: number;
  engineConnected: boolean;
  ready: boolean;
  changesStored: number;
  framesSent: number;
  dropped: number;
}
