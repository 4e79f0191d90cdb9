import { create } from "@bufbuild/protobuf";
import { PayloadType, RealtimePayloadSchema } from "../../../gen/chorus/v1/payload_pb.js";
import { encodeFrame, frameOf, type OutboundFrame } from "../frames.js";
import type { Change, LeaveReason, Member } from "./member.js";

/** How long a leave is remembered, so a late copy of the member (a stale snapshot) cannot bring it back. */
const TOMBSTONE_MS = 30_000;
/** States a new subscriber is sent at most in its snapshot; a room holding more gets ids only (GetPresence has the rest). */
const SNAPSHOT_BYTES = 1024 * 1024;

interface Entry {
  member: Member;
  /** The member as a `presence:join` frame, built once and reused for every new subscriber. */
  joinFrame: OutboundFrame | undefined;
}

interface TopicMembers {
  members: Map<string, Entry>;
  /** The topic's `presence:sync` frame, built once per change of the set. */
  syncFrame: OutboundFrame | undefined;
}

export interface RegistryHooks {
  /** A presence frame for the topic's subscribers on this node. */
  deliver(topic: string, frame: OutboundFrame): void;
  /** A member left (any reason): for the leave hook. */
  left(topic: string, member: Member, reason: LeaveReason): void;
}

/**
 * A node's view of presence: every member of the topics it watches, and
 * its own members everywhere. Changes come from this node's sessions or,
 * on NATS, from the nodes that own the members; each is applied once, by
 * version, so copies arriving late or twice change nothing. What
 * subscribers see follows from the change: a new member is a
 * `presence:join`, a new state of a known one a `presence:update` (never a
 * leave and a join), a removal a `presence:leave`. A member whose
 * connection is gone waits out its grace period here (a restore within it
 * is invisible to the others) and leaves when it ends.
 */
export class PresenceRegistry {
  private readonly topics = new Map<string, TopicMembers>();
  private readonly tombstones = new Map<string, { version: number; until: number }>();
  /** Nodes found gone: their members' leaves say so. */
  private readonly gone = new Set<string>();
  private readonly sweeper: NodeJS.Timeout;

  /** Members on every topic known here. */
  get memberCount(): number {
    let n = 0;
    for (const t of this.topics.values()) n += t.members.size;
    return n;
  }

  constructor(private readonly hooks: RegistryHooks) {
    this.sweeper = setInterval(() => this.sweep(Date.now()), 250).unref();
  }

  get(topic: string, id: string): Member | undefined {
    return this.topics.get(topic)?.members.get(id)?.member;
  }

  members(topic: string): Member[] {
    return [...(this.topics.get(topic)?.members.values() ?? [])].map((e) => e.member);
  }

  stats(topic: string): { connections: number; users: number } {
    const members = this.topics.get(topic)?.members;
    if (!members) return { connections: 0, users: 0 };
    const users = new Set<string>();
    for (const e of members.values()) users.add(e.member.userId);
    return { connections: members.size, users: users.size };
  }

  count(topic: string): number {
    return this.topics.get(topic)?.members.size ?? 0;
  }

  /** Every member, with its topic: what this node holds (for a node that is gone, a snapshot, a drain). */
  *all(): Iterable<[string, Member]> {
    for (const [topic, t] of this.topics) for (const e of t.members.values()) yield [topic, e.member];
  }

  /** Applies a change; returns whether it changed anything. */
  apply(change: Change): boolean {
    return change.kind === "set" ? this.set(change.topic, change.member) : this.remove(change.topic, change.id, change.version, change.reason);
  }

  /**
   * What a new subscriber receives first: every member as a
   * `presence:join`, then one `presence:sync` with the whole set (when
   * nobody is present, nothing, or with `emptySync` an empty sync). In a room of more than `maxJoins` members the
   * joins are left out and the sync alone carries the set (one frame, not
   * thousands in a subscriber's queue).
   */
  snapshotFrames(topic: string, maxJoins: number, emptySync: boolean): OutboundFrame[] {
    const t = this.topics.get(topic);
    // Most topics have no presence: their subscribers hear nothing of it, unless they ask
    // (a client coming back after a drop learns that the members it knew are gone).
    if (!t) return emptySync ? [this.syncFrame(topic, undefined)] : [];
    const frames: OutboundFrame[] = [];
    if (t.members.size <= maxJoins && this.dataBytes(t) <= SNAPSHOT_BYTES) {
      for (const e of t.members.values()) frames.push((e.joinFrame ??= presenceFrame(topic, "presence:join", e.member)));
    }
    frames.push(this.syncFrame(topic, t));
    return frames;
  }

  private dataBytes(t: TopicMembers): number {
    let bytes = 0;
    for (const e of t.members.values()) bytes += e.member.data.length;
    return bytes;
  }

  /** Forgets the topic's members that `keep` does not hold on to (a node no longer watching it keeps its own). */
  forget(topic: string, keep: (member: Member) => boolean): void {
    const t = this.topics.get(topic);
    if (!t) return;
    for (const [id, e] of t.members) if (!keep(e.member)) t.members.delete(id);
    t.syncFrame = undefined;
    if (t.members.size === 0) this.topics.delete(topic);
  }

  /** Members owned by `node` start their grace period now (their node is gone), unless already in one. */
  orphan(node: string, graceMs: number): void {
    this.gone.add(node);
    const at = Date.now() + graceMs;
    for (const t of this.topics.values()) for (const e of t.members.values()) if (e.member.owner === node && e.member.leavingAt === undefined) e.member.leavingAt = at;
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private set(topic: string, member: Member): boolean {
    const tomb = this.tombstones.get(tombKey(topic, member.id));
    if (tomb && tomb.version >= member.version) return false;
    let t = this.topics.get(topic);
    if (!t) this.topics.set(topic, (t = { members: new Map(), syncFrame: undefined }));
    const existing = t.members.get(member.id);
    if (existing && existing.member.version >= member.version) return false;
    t.members.set(member.id, { member, joinFrame: existing && existing.member.data === member.data ? existing.joinFrame : undefined });
    if (!existing) {
      t.syncFrame = undefined;
      this.hooks.deliver(topic, presenceFrame(topic, "presence:join", member));
    } else if (existing.member.data !== member.data) {
      t.syncFrame = undefined;
      this.hooks.deliver(topic, presenceFrame(topic, "presence:update", member));
    }
    return true;
  }

  private remove(topic: string, id: string, version: number, reason: LeaveReason): boolean {
    this.tombstones.set(tombKey(topic, id), { version, until: Date.now() + TOMBSTONE_MS });
    const t = this.topics.get(topic);
    const entry = t?.members.get(id);
    if (!t || !entry || entry.member.version > version) return false;
    t.members.delete(id);
    t.syncFrame = undefined;
    this.hooks.deliver(topic, presenceFrame(topic, "presence:leave", entry.member));
    // Code keyed by user (a Map by data.userId, fed by joins and leaves) would now forget a user
    // still here in another tab: that tab's member is announced again, as a join.
    let sameUser: Entry | undefined;
    for (const e of t.members.values()) if (e.member.userId === entry.member.userId && (!sameUser || e.member.updatedAt > sameUser.member.updatedAt)) sameUser = e;
    if (sameUser) this.hooks.deliver(topic, (sameUser.joinFrame ??= presenceFrame(topic, "presence:join", sameUser.member)));
    if (t.members.size === 0) this.topics.delete(topic);
    this.hooks.left(topic, entry.member, reason);
    return true;
  }

  /** Members whose grace period is over leave; old tombstones go. */
  private sweep(now: number): void {
    for (const [topic, t] of this.topics) {
      for (const e of [...t.members.values()]) {
        const m = e.member;
        if (m.leavingAt !== undefined && m.leavingAt <= now) this.remove(topic, m.id, m.version, this.gone.has(m.owner) ? "node_gone" : "timeout");
      }
    }
    for (const [key, tomb] of this.tombstones) if (tomb.until <= now) this.tombstones.delete(key);
  }

  private syncFrame(topic: string, t: TopicMembers | undefined): OutboundFrame {
    if (t?.syncFrame) return t.syncFrame;
    // The members' data is JSON text already: spliced in, not parsed and written again. A set whose
    // states would make the frame too large for a subscriber's queue goes without them ("partial").
    const withData = !t || this.dataBytes(t) <= SNAPSHOT_BYTES;
    const members = [...(t?.members.values() ?? [])].map(
      (e) => `{"userId":${JSON.stringify(e.member.userId)},"connectionId":${JSON.stringify(e.member.id)}${withData ? `,"data":${e.member.data}` : ""}}`,
    );
    const data = `{"members":[${members.join(",")}]${withData ? "" : ',"partial":true'}}`;
    const frame = encodeFrame(
      frameOf({ kind: { case: "payload", value: create(RealtimePayloadSchema, { type: PayloadType.PRESENCE, topic, event: "presence:sync", data, timestamp: BigInt(Date.now()) }) } }),
      true,
      topic,
    );
    if (t) t.syncFrame = frame;
    return frame;
  }
}

const tombKey = (topic: string, id: string) => `${topic}\u0000${id}`;

/** A presence event as subscribers receive it: the member's data, user and presence id (as connectionId). */
export function presenceFrame(topic: string, event: string, m: Member): OutboundFrame {
  const payload = create(RealtimePayloadSchema, {
    type: PayloadType.PRESENCE,
    topic,
    event,
    data: m.data,
    userId: m.userId,
    connectionId: m.id,
    timestamp: BigInt(event === "presence:join" ? m.joinedAt : m.updatedAt),
  });
  return encodeFrame(frameOf({ kind: { case: "payload", value: payload } }), true, topic);
}

/** Whether an outbound frame is a presence event (which a subscriber's snapshot already accounts for). */
export function isPresenceFrame(frame: OutboundFrame): boolean {
  const kind = frame.frame.kind;
  return kind.case === "payload" && kind.value.type === PayloadType.PRESENCE;
}
