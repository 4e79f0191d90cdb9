import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "../log.js";
import { escapeToken } from "../engine/nats/subjects.js";
import type { BrokerSink, PresenceBroker } from "./broker.js";
import type { Change, Member } from "./member.js";

/** How often a node says it is alive. */
const HEARTBEAT_MS = 1000;
/** How long a snapshot waits for the other nodes' answers. */
const SNAPSHOT_WAIT_MS = 400;

/**
 * Presence between nodes over core NATS (what NATS 2.9 offers; no KV
 * expiry, which 2.9 does not announce):
 *
 * - each node owns its sessions' members and publishes their changes on
 *   `<prefix>.p.<topic>`, which the nodes watching the topic subscribe to;
 * - a node that starts watching a topic (a late node, or its first
 *   subscriber there) asks `<prefix>.pq.<topic>`, and every node answers
 *   with the members it owns: the current set, merged with the changes
 *   arriving meanwhile by version;
 * - every node says it is alive on `<prefix>.ph` once a second, and
 *   goodbye when it stops; a node silent for the node timeout is gone, and
 *   each other node lets its members leave after the grace period (the
 *   surviving node with the smallest id calls the leave hook for them).
 */
export class NatsPresenceBroker implements PresenceBroker {
  readonly shared = true;
  private sink: BrokerSink | undefined;
  private readonly lastSeen = new Map<string, number>();
  private readonly gone = new Set<string>();
  private readonly topics = new Map<string, Subscription>();
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private closed = false;

  constructor(
    private readonly connection: () => NatsConnection | undefined,
    private readonly prefix: () => string,
    private readonly node: string,
    private readonly nodeTimeoutMs: number,
    private readonly log: Logger,
  ) {}

  async start(sink: BrokerSink): Promise<void> {
    this.sink = sink;
    const nc = this.nc();
    nc.subscribe(`${this.prefix()}.ph`, {
      callback: (error, msg) => {
        if (error) return;
        const beat = safeJson<{ node?: string; bye?: boolean }>(msg.data);
        if (!beat?.node || beat.node === this.node) return;
        if (beat.bye) return this.goneNow(beat.node);
        this.alive(beat.node);
      },
    });
    nc.subscribe(`${this.prefix()}.pq.>`, {
      callback: (error, msg) => {
        if (error || !msg.reply) return;
        const query = safeJson<{ topic?: string; from?: string }>(msg.data);
        if (!query?.topic || query.from === this.node) return;
        msg.respond(JSON.stringify({ node: this.node, members: this.sink!.ownMembers(query.topic), shared: this.sink!.ownShared(query.topic) }));
      },
    });
    await nc.flush();
    this.startedAt = Date.now();
    this.beat();
    this.timer = setInterval(() => this.beat(), HEARTBEAT_MS).unref();
    void this.followStatus(nc);
  }

  publish(change: Change): void {
    const nc = this.connection();
    if (!nc || nc.isClosed() || this.closed) return;
    try {
      nc.publish(this.changes(change.topic), JSON.stringify({ from: this.node, change }));
    } catch (error) {
      this.log.warn(`presence: a change on "${change.topic}" could not be sent to the other nodes (${(error as Error).message})`);
    }
  }

  async watch(topic: string): Promise<Member[]> {
    const nc = this.nc();
    if (!this.topics.has(topic)) {
      this.topics.set(
        topic,
        nc.subscribe(this.changes(topic), {
          callback: (error, msg) => {
            if (error) return;
            const envelope = safeJson<{ from?: string; change?: Change }>(msg.data);
            if (!envelope?.change || !envelope.from || envelope.from === this.node) return;
            this.alive(envelope.from);
            this.sink?.apply(envelope.change);
          },
        }),
      );
      // Changes are flowing before the snapshot is asked for: nothing falls between them.
      await nc.flush();
    }
    return this.snapshot(topic);
  }

  unwatch(topic: string): void {
    this.topics.get(topic)?.unsubscribe();
    this.topics.delete(topic);
  }

  async snapshot(topic: string): Promise<Member[]> {
    const nc = this.nc();
    const others = [...this.lastSeen.keys()].filter((n) => !this.gone.has(n)).length;
    // A node that just started may not have heard from every other node yet: it waits the whole time.
    const settled = Date.now() - this.startedAt > 2 * HEARTBEAT_MS;
    if (settled && others === 0) return [];
    const replies = await nc.requestMany(this.queries(topic), JSON.stringify({ topic, from: this.node }), settled ? { strategy: "count", maxMessages: others, maxWait: SNAPSHOT_WAIT_MS } : { strategy: "timer", maxWait: SNAPSHOT_WAIT_MS });
    const members: Member[] = [];
    for await (const reply of replies) {
      const answer = safeJson<{ node?: string; members?: Member[]; shared?: unknown }>(reply.data);
      if (!answer?.node || !Array.isArray(answer.members)) continue;
      if (answer.shared !== undefined && answer.shared !== null) this.sink?.received(topic, answer.shared);
      // A node first heard of here (before its heartbeat) is watched from now on, or its members would never leave.
      this.alive(answer.node);
      members.push(...answer.members);
    }
    return members;
  }

  otherNodes(): { count: number; settled: boolean } {
    return { count: [...this.lastSeen.keys()].filter((n) => !this.gone.has(n)).length, settled: Date.now() - this.startedAt > 2 * HEARTBEAT_MS };
  }

  callsHooksFor(owner: string): boolean {
    if (owner === this.node) return true;
    if (!this.gone.has(owner)) return false;
    // For a node that is gone, one survivor calls: the one with the smallest id.
    const alive = [this.node, ...[...this.lastSeen.keys()].filter((n) => !this.gone.has(n))];
    return alive.sort()[0] === this.node;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    const nc = this.connection();
    if (!nc || nc.isClosed()) return;
    try {
      nc.publish(`${this.prefix()}.ph`, JSON.stringify({ node: this.node, bye: true }));
      await nc.flush();
    } catch {
      // NATS is away: the others notice by the silence
    }
  }

  private beat(): void {
    const nc = this.connection();
    if (nc && !nc.isClosed()) {
      try {
        nc.publish(`${this.prefix()}.ph`, JSON.stringify({ node: this.node }));
      } catch {
        // NATS is away: the heartbeat resumes when it is back
      }
    }
    const now = Date.now();
    for (const [node, seen] of this.lastSeen) if (now - seen > this.nodeTimeoutMs && !this.gone.has(node)) this.goneNow(node);
  }

  /** Heard from `node`: it is alive (again). */
  private alive(node: string): void {
    this.lastSeen.set(node, Date.now());
    this.gone.delete(node);
  }

  private goneNow(node: string): void {
    if (this.gone.has(node)) return;
    this.gone.add(node);
    this.lastSeen.set(node, 0);
    this.sink?.nodeGone(node);
  }

  private async followStatus(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === "reconnect") this.sink?.reannounce();
    }
  }

  private nc(): NatsConnection {
    const nc = this.connection();
    if (!nc) throw new Error("NATS is not connected");
    return nc;
  }

  private changes(topic: string): string {
    return `${this.prefix()}.p.${escapeToken(topic, true)}`;
  }

  private queries(topic: string): string {
    return `${this.prefix()}.pq.${escapeToken(topic, true)}`;
  }
}

function safeJson<T>(data: Uint8Array): T | undefined {
  try {
    return JSON.parse(new TextDecoder().decode(data)) as T;
  } catch {
    return undefined;
  }
}
