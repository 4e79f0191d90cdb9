import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Engine, PublishResult } from "../engine/engine.js";
import { storedFrame, type OutboundFrame } from "../frames.js";
import type { Logger } from "../log.js";
import { ActiveStream, type Chunk, type SharedStream, type StreamEnding, type StreamOpening } from "./active-stream.js";
import { StreamMirror } from "./mirror.js";

export interface StreamLimits {
  /** A producer silent this long has its stream ended with an error. */
  idleMs: number;
  /** Largest chunk (bytes of text or JSON). */
  maxChunkBytes: number;
  /** Largest response (all chunks together). */
  maxStreamBytes: number;
  /** Streams open at once on one topic. */
  maxPerTopic: number;
  /** Streams open at once by one producer (API key or connection). */
  maxPerProducer: number;
}

/** Streams are published under this publisher; a finished response's message id is `stream:<id>`. */
const PUBLISHER = "streams";
const SWEEP_MS = 1000;
/** Another node's stream silent this much longer than the idle timeout is ended here (its own node should have). */
const MIRROR_GRACE_MS = 10_000;

/**
 * The token streams this node's producers have open: each one's text so
 * far, its unsent chunks (coalesced: one `stream:chunk` per stream per
 * event-loop turn, however many chunks arrived in it), and its ending.
 * `stream:start` and `stream:chunk` are ephemeral messages of the topic,
 * so they ride the fan-out path (and the engine, to other nodes); the
 * `stream:end` is persisted, carrying the finished response: history
 * holds it once, and a client that was away recovers it like any message.
 * Every stream ends: by its producer, or with an error when the producer
 * goes away, falls silent past `idleMs`, or the node stops.
 */
export class StreamRegistry {
  private readonly byTopic = new Map<string, Map<string, ActiveStream>>();

  /** Streams open here, all topics together. */
  get activeCount(): number {
    let n = 0;
    for (const streams of this.byTopic.values()) n += streams.size;
    return n;
  }
  private readonly perProducer = new Map<string, number>();
  private readonly flushing = new Set<ActiveStream>();
  private flushScheduled = false;
  private readonly sweeper: NodeJS.Timeout;
  /** Other nodes' streams on the topics watched here. */
  private readonly mirror: StreamMirror;

  constructor(
    private readonly engine: Engine,
    readonly limits: StreamLimits,
    private readonly nodeId: string,
    private readonly log: Logger,
  ) {
    this.mirror = new StreamMirror(nodeId, engine, log);
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS).unref();
  }

  /** A frame delivered on a watched topic (other nodes' streams are followed from it). */
  observe(topic: string, frame: OutboundFrame): void {
    const kind = frame.frame.kind;
    if (kind.case !== "payload") return;
    try {
      this.mirror.observe(topic, kind.value);
    } catch (error) {
      // Runs inside the engine's delivery: a payload it cannot follow must not stop the delivery.
      this.log.warn(`streams: a stream payload on "${topic}" could not be followed (${(error as Error).message})`);
    }
  }

  /** No subscriber here watches the topic any more. */
  unwatch(topic: string): void {
    this.mirror.unwatch(topic);
  }

  /** This node's streams under way on a topic, for another node that starts watching it. */
  ownShared(topic: string): SharedStream[] {
    return [...(this.byTopic.get(topic)?.values() ?? [])].map((stream) => stream.shared());
  }

  /** Another node's streams under way on a topic this node starts watching. */
  received(topic: string, shared: unknown): void {
    if (Array.isArray(shared)) for (const stream of shared) this.mirror.seed(topic, stream as SharedStream);
  }

  /** Another node is gone: the streams it produced end, with an error. */
  nodeGone(node: string): void {
    this.mirror.nodeGone(node);
  }

  /** Opens a stream and tells the topic (`stream:start`); throws the Connect error a refused opening deserves. */
  open(opening: Omit<StreamOpening, "id"> & { id: string }, producer: string, maxPerProducer = this.limits.maxPerProducer): ActiveStream {
    const id = opening.id || randomUUID();
    const open = this.byTopic.get(opening.topic);
    if (open?.has(id)) throw new ConnectError(`stream "${id}" is already open on "${opening.topic}"`, Code.AlreadyExists);
    if ((open?.size ?? 0) >= this.limits.maxPerTopic) {
      throw new ConnectError(`"${opening.topic}" already has ${this.limits.maxPerTopic} streams open, the limit; end one first`, Code.ResourceExhausted);
    }
    if ((this.perProducer.get(producer) ?? 0) >= maxPerProducer) {
      throw new ConnectError(`this producer already has ${maxPerProducer} streams open, the limit; end one first`, Code.ResourceExhausted);
    }
    const stream = new ActiveStream({ ...opening, id }, producer, this.nodeId);
    let streams = open;
    if (!streams) this.byTopic.set(opening.topic, (streams = new Map()));
    streams.set(id, stream);
    this.perProducer.set(producer, (this.perProducer.get(producer) ?? 0) + 1);
    this.publish(stream, "stream:start", stream.startData());
    return stream;
  }

  /** Takes one chunk; a chunk over the limits ends the stream with an error and throws. */
  add(stream: ActiveStream, chunk: Chunk): void {
    if (!this.isOpen(stream)) throw new ConnectError(`stream "${stream.id}" has ended`, Code.FailedPrecondition);
    const size = Buffer.byteLength("text" in chunk ? chunk.text : chunk.value);
    if (size > this.limits.maxChunkBytes) {
      this.refuse(stream, `a chunk of ${size} bytes; the limit is ${this.limits.maxChunkBytes}`);
    }
    if (stream.bytes + size > this.limits.maxStreamBytes) {
      this.refuse(stream, `the response would pass ${this.limits.maxStreamBytes} bytes, the limit`);
    }
    stream.add(chunk);
    this.flushing.add(stream);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Ends a stream (once: later calls are ignored); settles when its `stream:end` is stored. */
  end(stream: ActiveStream, status: StreamEnding, error = ""): Promise<PublishResult> | undefined {
    if (!this.isOpen(stream)) return undefined;
    const streams = this.byTopic.get(stream.opening.topic)!;
    streams.delete(stream.id);
    if (streams.size === 0) this.byTopic.delete(stream.opening.topic);
    const left = (this.perProducer.get(stream.producer) ?? 1) - 1;
    if (left > 0) this.perProducer.set(stream.producer, left);
    else this.perProducer.delete(stream.producer);
    // What is pending goes first, so viewers' chunks add up to the end's text.
    if (stream.hasPending) this.publish(stream, "stream:chunk", stream.takePending());
    this.flushing.delete(stream);
    const endWith = (data: string) =>
      this.engine.publish({ topic: stream.opening.topic, event: "stream:end", data, persist: true, id: `stream:${stream.id}`, publisher: PUBLISHER, userId: "", connectionId: "" });
    // Viewers always get an end: if the whole response cannot be stored (NATS' max_payload, say), an end without it.
    const stored = endWith(stream.endData(status, error)).catch((e: unknown) => {
      const why = `the finished response could not be stored (${(e as Error).message})`;
      this.log.error(`stream "${stream.id}" on "${stream.opening.topic}": ${why}`);
      return endWith(stream.endData("error", why, false));
    });
    stored.catch((e: unknown) => this.log.error(`stream "${stream.id}" on "${stream.opening.topic}": its end could not be stored (${(e as Error).message})`));
    return stored;
  }

  isOpen(stream: ActiveStream): boolean {
    return this.byTopic.get(stream.opening.topic)?.get(stream.id) === stream;
  }

  /** What a subscriber joining `topic` now must see first: each open stream's `stream:start` and its text so far. */
  snapshotFrames(topic: string): OutboundFrame[] {
    const streams = this.byTopic.get(topic);
    if (!streams) return this.mirror.snapshotFrames(topic);
    const frames: OutboundFrame[] = this.mirror.snapshotFrames(topic);
    const now = Date.now();
    for (const stream of streams.values()) {
      frames.push(storedFrame(topic, "", { seq: 0, id: `${stream.id}:start`, event: "stream:start", data: stream.startData(), userId: "", connectionId: "", createdAt: now }));
      const soFar = stream.soFarData();
      if (soFar) frames.push(storedFrame(topic, "", { seq: 0, id: `${stream.id}:so-far`, event: "stream:chunk", data: soFar, userId: "", connectionId: "", createdAt: now }));
    }
    return frames;
  }

  /** Ends every open stream with an error (the node is stopping); settles once their ends are stored. */
  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.byTopic.values()].flatMap((streams) => [...streams.values()]);
    await Promise.allSettled(all.map((stream) => this.end(stream, "error", "the server stopped")));
  }

  private refuse(stream: ActiveStream, why: string): never {
    void this.end(stream, "error", `the producer sent ${why}`);
    throw new ConnectError(`${why}; the stream is ended`, Code.ResourceExhausted);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    for (const stream of this.flushing) if (stream.hasPending) this.publish(stream, "stream:chunk", stream.takePending());
    this.flushing.clear();
  };

  private publish(stream: ActiveStream, event: string, data: string): void {
    this.engine
      .publish({ topic: stream.opening.topic, event, data, persist: false, id: "", publisher: PUBLISHER, userId: "", connectionId: "" })
      .catch((e: unknown) => this.log.warn(`stream "${stream.id}" on "${stream.opening.topic}": ${event} not delivered (${(e as Error).message})`));
  }

  private sweep(): void {
    this.mirror.sweep(this.limits.idleMs + MIRROR_GRACE_MS);
    const silentSince = Date.now() - this.limits.idleMs;
    for (const streams of [...this.byTopic.values()]) {
      for (const stream of [...streams.values()]) {
        if (stream.lastActivity < silentSince) void this.end(stream, "error", `the producer sent nothing for ${Math.round(this.limits.idleMs / 1000)} s`);
      }
    }
  }
}
