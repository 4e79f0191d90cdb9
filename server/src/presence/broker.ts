import type { Change, Member } from "./member.js";

/** What a broker asks of its node. */
export interface BrokerSink {
  /** A change made on another node. */
  apply(change: Change): void;
  /** Another node is gone (stopped answering, or said goodbye). */
  nodeGone(node: string): void;
  /** This node's own members on a topic, for another node's snapshot. */
  ownMembers(topic: string): Member[];
  /** What else this node shares with a node that starts watching the topic (token streams under way), as JSON. */
  ownShared(topic: string): unknown;
  /** What another node shared about a topic this node starts watching. */
  received(topic: string, shared: unknown): void;
  /** The link to the other nodes was down: tell them again about every member of this node. */
  reannounce(): void;
}

/**
 * How presence travels between nodes: a small interface beside the
 * message engine, one implementation per backend. A node applies its own
 * changes locally and publishes them; the broker brings in the others'.
 */
export interface PresenceBroker {
  /** Whether other nodes hold members too (false on one node: watching a topic needs nothing then). */
  readonly shared: boolean;
  start(sink: BrokerSink): Promise<void>;
  /** Tells the other nodes about a change this node made. */
  publish(change: Change): void;
  /** Starts receiving the topic's changes, and resolves with the members other nodes hold on it. */
  watch(topic: string): Promise<Member[]>;
  unwatch(topic: string): void;
  /** The members other nodes hold on a topic, once, without watching it. */
  snapshot(topic: string): Promise<Member[]>;
  /** Whether this node calls the leave hook for a member owned by `owner` (itself, or a node that is gone). */
  callsHooksFor(owner: string): boolean;
  /** Says goodbye to the other nodes. */
  close(): Promise<void>;
  /** The other nodes known to be alive, and whether this node has been up long enough to know them all. */
  otherNodes(): { count: number; settled: boolean };
}

/** One node: nothing to share, every member is this node's. */
export class LocalBroker implements PresenceBroker {
  readonly shared = false;
  constructor(private readonly node: string) {}

  otherNodes(): { count: number; settled: boolean } {
    return { count: 0, settled: true };
  }

  async start(): Promise<void> {}
  publish(): void {}
  async watch(): Promise<Member[]> {
    return [];
  }
  unwatch(): void {}
  async snapshot(): Promise<Member[]> {
    return [];
  }
  callsHooksFor(owner: string): boolean {
    return owner === this.node;
  }
  async close(): Promise<void> {}
}
