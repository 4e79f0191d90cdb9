import type { Engine } from "./engine/engine.js";
import type { OutboundFrame } from "./frames.js";
import type { Session } from "./session.js";
import { isChangeFrame } from "./changes/view.js";

/**
 * A database change to a table's subscribers: each sees it through its
 * view (filter, row rule), judged once per distinct view, the resulting
 * frame encoded once and shared by every subscriber with that view.
 */
function deliverChange(set: Set<Session>, topic: string, frame: OutboundFrame): void {
  let seen: Map<string, OutboundFrame | undefined> | undefined;
  for (const session of set) {
    const view = session.views?.get(topic);
    if (!view) {
      session.outbox.push(frame);
      continue;
    }
    seen ??= new Map();
    let out = seen.get(view.key);
    if (out === undefined && !seen.has(view.key)) seen.set(view.key, (out = view.apply(frame)));
    if (out) session.outbox.push(out);
  }
}

interface RecoveryBuffer {
  frames: OutboundFrame[];
  overflowed: boolean;
}

/** What the hub tells the engine about this node's interest. */
export type Interest = Pick<Engine, "watch" | "unwatch" | "watchUser" | "unwatchUser">;

/**
 * This node's subscriptions: which local sessions receive which topic, and
 * which users have sessions here. Delivery appends one shared,
 * already-encoded frame to each subscriber's outbox; it never awaits and
 * never encodes per subscriber. The engine is told when a topic or user
 * gains its first local session and loses its last.
 */
export class Hub {
  private readonly subscribers = new Map<string, Set<Session>>();
  /** Sessions catching up on a topic: its live frames wait here (bounded) until their replay is out. */
  private readonly recovering = new Map<string, Map<Session, RecoveryBuffer>>();
  /** Every session of each user, for messages sent to a user rather than a topic. */
  private readonly users = new Map<string, Set<Session>>();

  constructor(
    private readonly interest: Interest,
    /** Live frames held for one recovering session before they are let go (and read back from history). */
    private readonly maxBuffered: number,
  ) {}

  /** Buffers the topic's live frames for the session until endRecovery. */
  beginRecovery(topic: string, session: Session): void {
    let waiting = this.recovering.get(topic);
    if (!waiting) {
      const watched = this.subscribers.has(topic);
      this.recovering.set(topic, (waiting = new Map()));
      if (!watched) this.interest.watch(topic);
    }
    waiting.set(session, { frames: [], overflowed: false });
  }

  /**
   * Whether live frames were let go since the last call (the buffer was
   * full): the replay must read on before it can join. Starts afresh.
   */
  recoveryOverflowed(topic: string, session: Session): boolean {
    const buffer = this.recovering.get(topic)?.get(session);
    if (!buffer?.overflowed) return false;
    buffer.overflowed = false;
    return true;
  }

  /**
   * Ends a session's recovery: with `join`, the session becomes a subscriber
   * in the same step, so the topic stays watched throughout. Returns the
   * live frames that arrived meanwhile, in order.
   */
  endRecovery(topic: string, session: Session, join: boolean): OutboundFrame[] {
    if (join) this.add(topic, session);
    const waiting = this.recovering.get(topic);
    const frames = waiting?.get(session)?.frames ?? [];
    waiting?.delete(session);
    if (waiting?.size === 0) {
      this.recovering.delete(topic);
      this.unwatchIfUnused(topic);
    }
    return frames;
  }

  addUser(session: Session): void {
    let set = this.users.get(session.userId);
    if (!set) {
      this.users.set(session.userId, (set = new Set()));
      this.interest.watchUser(session.userId);
    }
    set.add(session);
  }

  removeUser(session: Session): void {
    const set = this.users.get(session.userId);
    if (!set?.delete(session)) return;
    if (set.size === 0) {
      this.users.delete(session.userId);
      this.interest.unwatchUser(session.userId);
    }
  }

  deliverToUser(userId: string, frame: OutboundFrame): void {
    for (const session of this.users.get(userId) ?? []) session.outbox.push(frame);
  }

  private add(topic: string, session: Session): void {
    let set = this.subscribers.get(topic);
    if (!set) {
      const watched = this.recovering.has(topic);
      this.subscribers.set(topic, (set = new Set()));
      if (!watched) this.interest.watch(topic);
    }
    set.add(session);
  }

  remove(topic: string, session: Session): boolean {
    const set = this.subscribers.get(topic);
    if (!set?.delete(session)) return false;
    if (set.size === 0) {
      this.subscribers.delete(topic);
      this.unwatchIfUnused(topic);
    }
    return true;
  }

  deliver(topic: string, frame: OutboundFrame): void {
    const set = this.subscribers.get(topic);
    if (set) {
      if (isChangeFrame(frame)) deliverChange(set, topic, frame);
      else for (const session of set) session.outbox.push(frame);
    }
    const waiting = this.recovering.get(topic);
    if (waiting) {
      for (const buffer of waiting.values()) {
        if (buffer.frames.length < this.maxBuffered) buffer.frames.push(frame);
        else {
          // Persisted frames are read back from history; ephemeral ones were best effort.
          buffer.frames = [];
          buffer.overflowed = true;
        }
      }
    }
  }

  subscriberCount(topic: string): number {
    return this.subscribers.get(topic)?.size ?? 0;
  }

  /** Topics with subscribers on this node. */
  get topicCount(): number {
    return this.subscribers.size;
  }

  /** The `limit` topics with the most subscribers on this node, most first. */
  busiestTopics(limit: number): Array<{ topic: string; subscribers: number }> {
    const all = [...this.subscribers].map(([topic, sessions]) => ({ topic, subscribers: sessions.size }));
    return all.sort((a, b) => b.subscribers - a.subscribers || a.topic.localeCompare(b.topic)).slice(0, limit);
  }

  private unwatchIfUnused(topic: string): void {
    if (!this.subscribers.has(topic) && !this.recovering.has(topic)) this.interest.unwatch(topic);
  }
}
