import type { OutboundFrame } from "./frames.js";
import type { Session } from "./session.js";

/**
 * This node's subscriptions: which local sessions receive which topic.
 * Delivery appends one shared, already-encoded frame to each subscriber's
 * outbox; it never awaits and never encodes per subscriber.
 */
export class Hub {
  private readonly subscribers = new Map<string, Set<Session>>();
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
    if (!set) return;
    for (const session of set) session.outbox.push(frame);
  }

  subscriberCount(topic: string): number {
    return this.subscribers.get(topic)?.size ?? 0;
  }
}
