import { Code, ConnectError } from "@connectrpc/connect";
import type { Recovery, StoredMessage } from "./engine/engine.js";
import { replayFrame, systemNotice, type OutboundFrame } from "./frames.js";
import type { ChorusNode } from "./node.js";
import { isPresenceFrame } from "./presence/registry.js";
import { isChangeFrame } from "./changes/view.js";
import type { Session } from "./session.js";

/** Messages one replay step reads at most; bytes are bounded by the node's page size too. */
const CHUNK_MESSAGES = 512;

export interface Position {
  seq: number;
  epoch: string;
}

export interface Joined {
  /** The topic's newest position the session has been brought to. */
  position: Position;
  /** True when `since` was given and every message after it was delivered. */
  recovered: boolean;
}

/**
 * Joins a session to a topic, from a position when the client has one.
 *
 * Persisted messages after the position are replayed in order, paced by
 * the session's own outbox: a chunk is read only once the previous one has
 * mostly left, so a subscriber any distance behind catches up without
 * being counted as lagging and without the node holding the backlog.
 * Meanwhile the topic's live frames wait in the hub (bounded; if they
 * overflow, the replay simply reads on, since what was stored is in
 * history). When a read finds nothing newer, the session joins the live
 * fan-out in the same step: nothing lost or repeated in between.
 *
 * Whatever cannot be replayed is announced, never skipped silently:
 * messages trimmed by retention (`older_than_retained`), a history reset
 * (`history_reset`), and, for a user without the history permission on
 * the topic, messages older than the recovery window (`not_permitted`).
 */
export async function joinTopic(node: ChorusNode, session: Session, topic: string, since: Position | undefined, presenceSync = false): Promise<Joined> {
  const { hub, engine } = node;
  hub.beginRecovery(topic, session);
  hub.remove(topic, session);
  let joined = false;
  try {
    await engine.live(topic);
    await node.presence.ready(topic);
    if (!since) {
      // Where the subscription starts, read the same way, so nothing published after it is missed.
      const page = await engine.history(topic, { limit: 0, before: 0, beforeSeq: 0, maxBytes: 0 });
      ensureOpen(session);
      joined = true;
      return { position: { seq: finish(node, session, topic, page.lastSeq, presenceSync), epoch: page.epoch }, recovered: true };
    }
    const replay = new Replay(node, session, topic, since);
    await replay.run();
    ensureOpen(session);
    joined = true;
    const last = finish(node, session, topic, replay.cursor, presenceSync);
    return { position: { seq: Math.max(last, replay.lastSeq), epoch: replay.epoch }, recovered: replay.recovered };
  } finally {
    if (!joined) hub.endRecovery(topic, session, false);
  }
}

function ensureOpen(session: Session): void {
  if (session.isClosed) throw new ConnectError("session has ended", Code.NotFound);
}

/**
 * Joins the live fan-out and hands over the frames that arrived during
 * the replay: those after `cursor` (and every ephemeral one), in order.
 * Runs synchronously after the last read, so no later frame can slip past.
 * The topic's presence goes first, as it is now (every member a
 * `presence:join`, then one `presence:sync`; an empty sync only when the
 * client asked for it): presence changes held during the replay are
 * already in it.
 */
function finish(node: ChorusNode, session: Session, topic: string, cursor: number, presenceSync: boolean): number {
  const live = node.hub.endRecovery(topic, session, true);
  session.topics.add(topic);
  session.outbox.pushAll(node.presence.snapshotFrames(topic, presenceSync));
  // Token streams under way: each one's start and its text so far; what follows arrives live (and the client drops what it has by index).
  session.outbox.pushAll(node.streams.snapshotFrames(topic));
  let last = cursor;
  const view = session.views?.get(topic);
  for (const frame of live) {
    if (isPresenceFrame(frame)) continue;
    if (frame.seq === 0 || frame.seq > last) {
      const seen = view && isChangeFrame(frame) ? view.apply(frame) : frame;
      if (seen) session.send(seen);
      last = Math.max(last, frame.seq);
    }
  }
  return last;
}

class Replay {
  cursor: number;
  epoch: string;
  lastSeq = 0;
  recovered = true;
  private readonly cutoff: number;
  /** Messages withheld from a user without the history permission, not yet announced. */
  private hidden: { from: number; to: number } | undefined;

  constructor(
    private readonly node: ChorusNode,
    private readonly session: Session,
    private readonly topic: string,
    since: Position,
  ) {
    this.cursor = since.seq;
    this.epoch = since.epoch;
    const permitted = node.permissions.allows(session.identity, "history", topic);
    this.cutoff = permitted ? 0 : Date.now() - node.config.recoveryWindowMs;
  }

  async run(): Promise<void> {
    for (;;) {
      const chunk = await this.read();
      ensureOpen(this.session);
      if (chunk.epoch !== "" && this.epoch !== "" && chunk.epoch !== this.epoch) {
        // Every older position is void: start the topic over.
        this.session.send(systemNotice(this.topic, "system:history_gap", { reason: "history_reset", epoch: chunk.epoch }));
        this.recovered = false;
        this.cursor = 0;
        this.epoch = chunk.epoch;
        continue;
      }
      if (chunk.epoch !== "") this.epoch = chunk.epoch;
      this.lastSeq = chunk.lastSeq;
      this.session.outbox.pushAll(this.frames(chunk));
      if (this.cursor >= chunk.lastSeq && !this.node.hub.recoveryOverflowed(this.topic, this.session)) {
        this.announceHidden();
        return;
      }
      await this.session.outbox.whenRoom();
      ensureOpen(this.session);
    }
  }

  private read(): Promise<Recovery> {
    const { engine, config } = this.node;
    const maxBytes = Math.min(config.maxHistoryPageBytes, config.maxQueuedBytes / 4);
    return this.node.readReplay(() => engine.since(this.topic, this.cursor, { limit: CHUNK_MESSAGES, maxBytes }));
  }

  private frames(chunk: Recovery): OutboundFrame[] {
    const frames: OutboundFrame[] = [];
    for (const m of chunk.messages) {
      if (m.seq <= this.cursor) continue;
      if (m.seq > this.cursor + 1) this.gap(frames, m.seq - 1);
      this.deliver(frames, chunk.epoch, m);
      this.cursor = m.seq;
    }
    // Nothing retained after the cursor, though the topic went on: all of it is gone.
    if (chunk.messages.length === 0 && chunk.lastSeq > this.cursor) {
      this.gap(frames, chunk.lastSeq);
      this.cursor = chunk.lastSeq;
    }
    return frames;
  }

  private deliver(frames: OutboundFrame[], epoch: string, m: StoredMessage): void {
    if (m.createdAt < this.cutoff) {
      this.hidden = this.hidden ? { from: this.hidden.from, to: m.seq } : { from: m.seq, to: m.seq };
      return;
    }
    this.flushHidden(frames);
    const frame = replayFrame(this.topic, epoch, m);
    // A filtered table subscription is replayed what its view sees, as it would have received it live.
    const view = this.session.views?.get(this.topic);
    const seen = view && isChangeFrame(frame) ? view.apply(frame) : frame;
    if (seen) frames.push(seen);
  }

  private gap(frames: OutboundFrame[], missedTo: number): void {
    this.flushHidden(frames);
    this.recovered = false;
    frames.push(systemNotice(this.topic, "system:history_gap", { reason: "older_than_retained", missed_from: this.cursor + 1, missed_to: missedTo }));
  }

  private flushHidden(frames: OutboundFrame[]): void {
    if (!this.hidden) return;
    this.recovered = false;
    frames.push(systemNotice(this.topic, "system:history_gap", { reason: "not_permitted", missed_from: this.hidden.from, missed_to: this.hidden.to }));
    this.hidden = undefined;
  }

  private announceHidden(): void {
    const frames: OutboundFrame[] = [];
    this.flushHidden(frames);
    this.session.outbox.pushAll(frames);
  }
}
