import type { OutboundFrame } from "./frames.js";
import type { Session } from "./session.js";

/**
 * This node's subscriptions: which local sessions receive which topic.
 * Delivery appends one shared, already-encoded frame to each subscriber's
 * outbox; it never awaits and never encodes per subscriber.
 */
export class Hub {
  private readonly subscribers = new Map<string, Set<Session>>();
  /** Sessions catching up on a topic: its live frames wait here until their replay is out. */
  private readonly recovering = new Map<string, Map<Session, OutboundFrame[]>>();

  beginRecovery(topic: string, session: Session): void {
    let waiting = this.recovering.get(topic);
    if (!waiting) this.recovering.set(topic, (waiting = new Map()));
    waiting.set(session, []);
  }

  /** The live frames that arrived meanwhile, in order. */
  endRecovery(topic: string, session: Session): OutboundFrame[] {
    const waiting = this.recovering.get(topic);
    const frames = waiting?.get(session) ?? [];
    waiting?.delete(session);
    if (waiting?.size === 0) this.recovering.delete(topic);
    return frames;
  }

  /** Every session of each user, for messages sent to a user rather than a topic. */
  private readonly users = new Map<string, Set<Session>>();

  addUser(session: Session): void {
    let set = this.users.get(session.userId);
    if (!set) this.users.set(session.userId, (set = new Set()));
    set.add(session);
  }

  removeUser(session: Session): void {
    const set = this.users.get(session.userId);
    if (!set?.delete(session)) return;
    if (set.size === 0) this.users.delete(session.userId);
  }

  deliverToUser(userId: string, frame: OutboundFrame): void {
    for (const session of this.users.get(userId) ?? []) session.outbox.push(frame);
  }

  add(topic: string, session: Session): boolean {
    let set = this.subscribers.get(topic);
    if (!set) this.subscribers.set(topic, (set = new Set()));
    if (set.has(session)) return false;
    set.add(session);
    return true;
  }

  remove(topic: string, session: Session): boolean {
    const set = this.subscribers.get(topic);
    if (!set?.delete(session)) return false;
    if (set.size === 0) this.subscribers.delete(topic);
    return true;
  }

  deliver(topic: string, frame: OutboundFrame): void {
    const set = this.subscribers.get(topic);
    if (set) for (const session of set) session.outbox.push(frame);
    const waiting = this.recovering.get(topic);
    if (waiting) for (const frames of waiting.values()) frames.push(frame);
  }

  subscriberCount(topic: string): number {
    return this.subscribers.get(topic)?.size ?? 0;
  }
}
