import { Code, ConnectError } from "@connectrpc/connect";
import type { OutboundFrame } from "../frames.js";
import type { LeaveHook } from "../leave-hook.js";
import type { Logger } from "../log.js";
import type { PresenceBroker } from "./broker.js";
import { memberData, type Change, type LeaveReason, type Member } from "./member.js";
import { PresenceRegistry } from "./registry.js";

export interface PresenceOptions {
  nodeId: string;
  /** A connection whose session ends without a goodbye keeps its members this long, for a restore. */
  graceMs: number;
  /** Members one topic may hold. */
  maxMembersPerTopic: number;
  /** Rooms up to this size greet a new subscriber with a join per member; larger ones with the sync alone. */
  maxSnapshotJoins: number;
}

/** What presence needs of a session: who it is, and where it tracks. */
export interface PresenceHolder {
  readonly connectionId: string;
  readonly userId: string;
  readonly isClosed: boolean;
  /** Topic → the presence id this session holds there. */
  readonly tracked: Map<string, string>;
}

/**
 * Presence on this node: its sessions' members, and everyone else's on
 * the topics its subscribers watch. Changes are applied here first and
 * handed to the broker for the other nodes; changes from other nodes
 * arrive through it. See PresenceRegistry for what subscribers see.
 */
export class Presence {
  private readonly registry: PresenceRegistry;

  /** The other nodes known to be alive (what the admin API asks). */
  otherNodes(): { count: number; settled: boolean } {
    return this.broker.otherNodes();
  }

  /** Members on the topics this node knows of (for the metrics). */
  get memberCount(): number {
    return this.registry.memberCount;
  }
  /** This node's members, by topic and presence id, with the session holding each (none while in its grace period). */
  private readonly own = new Map<string, PresenceHolder | undefined>();
  /** Topics this node's subscribers watch: resolved once the other nodes' members are known. */
  private readonly watched = new Map<string, Promise<void>>();
  private clock = 0;
  private readonly goneListeners: Array<(node: string) => void> = [];
  /**
   * What other features share through presence's topic snapshots (a node
   * that starts watching a topic asks the others for its members, and gets
   * this with them): token streams under way.
   */
  sharing: { own(topic: string): unknown; received(topic: string, shared: unknown): void } | undefined;

  constructor(
    private readonly options: PresenceOptions,
    private readonly broker: PresenceBroker,
    deliver: (topic: string, frame: OutboundFrame) => void,
    private readonly hook: LeaveHook | undefined,
    private readonly log: Logger,
  ) {
    this.registry = new PresenceRegistry({ deliver, left: (topic, member, reason) => this.left(topic, member, reason) });
  }

  start(): Promise<void> {
    return this.broker.start({
      apply: (change) => this.applyRemote(change),
      nodeGone: (node) => {
        this.log.info(`presence: node ${node} is gone; its members leave unless they come back within ${this.options.graceMs} ms`);
        this.registry.orphan(node, this.options.graceMs);
        for (const listener of this.goneListeners) listener(node);
      },
      ownMembers: (topic) => this.registry.members(topic).filter((m) => m.owner === this.options.nodeId),
      ownShared: (topic) => this.sharing?.own(topic),
      received: (topic, shared) => this.sharing?.received(topic, shared),
      reannounce: () => {
        // The others may have taken this node for gone meanwhile: newer versions bring its members back.
        for (const [topic, member] of [...this.registry.all()]) {
          if (member.owner === this.options.nodeId) this.change({ kind: "set", topic, member: { ...member, version: this.nextVersion(member.version) } });
        }
      },
    });
  }

  /** Hears of every other node found gone (silent past the node timeout, or said goodbye). */
  onNodeGone(listener: (node: string) => void): void {
    this.goneListeners.push(listener);
  }

  /** Subscribers on this node started watching the topic: learn its members from the other nodes. */
  watch(topic: string): void {
    // On one node every member is known here already: nothing to ask, nothing to hold per topic.
    if (!this.broker.shared || this.watched.has(topic)) return;
    const known = this.broker.watch(topic).then(
      (members) => {
        for (const member of members) this.registry.apply({ kind: "set", topic, member });
      },
      (error: unknown) => {
        this.watched.delete(topic);
        throw new ConnectError(`presence of "${topic}" is not available right now (${(error as Error).message}); retry`, Code.Unavailable);
      },
    );
    known.catch(() => {});
    this.watched.set(topic, known);
  }

  unwatch(topic: string): void {
    if (!this.watched.delete(topic)) return;
    this.broker.unwatch(topic);
    this.registry.forget(topic, (m) => m.owner === this.options.nodeId);
  }

  /** Resolves once the topic's members are known here (at once on one node). */
  ready(topic: string): Promise<void> {
    return this.watched.get(topic) ?? Promise.resolve();
  }

  /** A new subscriber's first presence frames (see PresenceRegistry.snapshotFrames). */
  snapshotFrames(topic: string, emptySync: boolean): OutboundFrame[] {
    return this.registry.snapshotFrames(topic, this.options.maxSnapshotJoins, emptySync);
  }

  /** The topic's members, from everywhere: what this node knows when it watches the topic, else asked of the others. */
  async members(topic: string): Promise<Member[]> {
    if (!this.broker.shared) return this.registry.members(topic);
    if (this.watched.has(topic)) {
      await this.ready(topic);
      return this.registry.members(topic);
    }
    const mine = this.registry.members(topic);
    const others = await this.broker.snapshot(topic);
    const seen = new Set(mine.map((m) => m.id));
    return [...mine, ...others.filter((m) => !seen.has(m.id))];
  }

  async stats(topic: string): Promise<{ connections: number; users: number }> {
    if (!this.broker.shared || this.watched.has(topic)) {
      await this.ready(topic);
      return this.registry.stats(topic);
    }
    const members = await this.members(topic);
    return { connections: members.length, users: new Set(members.map((m) => m.userId)).size };
  }

  /**
   * Announces or updates the session's member on the topic (state already
   * checked). With `restore`, a member this user held before (on a
   * connection that is gone) is taken over under its id, so nobody sees
   * it leave and join again.
   */
  track(session: PresenceHolder, topic: string, state: string, restore: string): Member {
    const now = Date.now();
    let existing: Member | undefined;
    const held = session.tracked.get(topic);
    if (held) existing = this.registry.get(topic, held);
    if (!existing && restore) {
      const candidate = this.registry.get(topic, restore);
      if (candidate && candidate.userId === session.userId && !this.heldElsewhere(topic, candidate, session)) existing = candidate;
    }
    if (!existing && this.registry.count(topic) >= this.options.maxMembersPerTopic) {
      throw new ConnectError(`"${topic}" already has ${this.options.maxMembersPerTopic} members, the limit`, Code.ResourceExhausted);
    }
    const data = memberData(state, session.userId);
    const member: Member = existing
      ? { ...existing, state, data, updatedAt: now, version: this.nextVersion(existing.version), owner: this.options.nodeId, leavingAt: undefined }
      : { id: session.connectionId, userId: session.userId, state, data, joinedAt: now, updatedAt: now, version: this.nextVersion(0), owner: this.options.nodeId };
    this.change({ kind: "set", topic, member });
    this.own.set(ownKey(topic, member.id), session);
    session.tracked.set(topic, member.id);
    return member;
  }

  /** The session leaves the topic now. */
  untrack(session: PresenceHolder, topic: string): void {
    const id = session.tracked.get(topic);
    session.tracked.delete(topic);
    const member = id ? this.registry.get(topic, id) : undefined;
    if (member && member.owner === this.options.nodeId) this.change({ kind: "leave", topic, id: member.id, version: member.version, owner: member.owner, reason: "untrack" });
  }

  /**
   * The session ended. Cleanly (the client closed it): its members leave
   * now. Otherwise (a dropped connection, a missed heartbeat, a drain) they
   * wait out the grace period for the client to come back and restore them.
   */
  sessionEnded(session: PresenceHolder, clean: boolean): void {
    for (const [topic, id] of session.tracked) {
      const member = this.registry.get(topic, id);
      if (!member || member.owner !== this.options.nodeId) continue;
      if (clean) {
        this.change({ kind: "leave", topic, id, version: member.version, owner: member.owner, reason: "disconnect" });
      } else {
        this.own.set(ownKey(topic, id), undefined);
        this.change({ kind: "set", topic, member: { ...member, version: this.nextVersion(member.version), leavingAt: Date.now() + this.options.graceMs } });
      }
    }
    session.tracked.clear();
  }

  async close(): Promise<void> {
    this.registry.close();
    await this.broker.close();
  }

  /** A change by this node: applied here, then told to the others. */
  private change(change: Change): void {
    this.registry.apply(change);
    this.broker.publish(change);
  }

  private applyRemote(change: Change): void {
    if (!this.registry.apply(change) || change.kind !== "set") return;
    // Another node took over one of ours (its client came back there): ours no longer holds it.
    const key = ownKey(change.topic, change.member.id);
    if (change.member.owner !== this.options.nodeId && this.own.has(key)) {
      const holder = this.own.get(key);
      if (holder?.tracked.get(change.topic) === change.member.id) holder.tracked.delete(change.topic);
      this.own.delete(key);
    }
  }

  /** Whether a member is held by another live session of this node (so not free to be restored). */
  private heldElsewhere(topic: string, member: Member, session: PresenceHolder): boolean {
    if (member.owner !== this.options.nodeId) return false;
    const holder = this.own.get(ownKey(topic, member.id));
    return holder !== undefined && holder !== session && !holder.isClosed;
  }

  /** Versions order a member's changes across nodes: later than both the last one and the clock. */
  private nextVersion(previous: number): number {
    this.clock = Math.max(this.clock + 1, previous + 1, Date.now() * 1000);
    return this.clock;
  }

  private left(topic: string, member: Member, reason: LeaveReason): void {
    if (member.owner === this.options.nodeId) {
      const key = ownKey(topic, member.id);
      if (this.own.has(key)) {
        const holder = this.own.get(key);
        if (holder?.tracked.get(topic) === member.id) holder.tracked.delete(topic);
        this.own.delete(key);
        // Its grace period ran out here: the other nodes hear it from its owner.
        if (reason === "timeout" || reason === "node_gone") this.broker.publish({ kind: "leave", topic, id: member.id, version: member.version, owner: member.owner, reason });
      }
    }
    if (this.hook && this.broker.callsHooksFor(member.owner)) {
      this.hook.send({
        event: "presence_leave",
        topic,
        user_id: member.userId,
        connection_id: member.id,
        node_id: member.owner,
        reason,
        at: Date.now(),
        idempotency_key: `presence_leave:${topic}:${member.id}:${member.version}`,
      });
    }
  }
}

const ownKey = (topic: string, id: string) => `${topic}\u0000${id}`;
