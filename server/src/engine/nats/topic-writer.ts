import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { JetStreamClient } from "@nats-io/jetstream";
import { createHash, randomBytes } from "node:crypto";
import { RealtimePayloadSchema } from "../../../../gen/chorus/v1/payload_pb.js";
import { storedFields, storedPayload } from "../../frames.js";
import type { PublishInput, PublishResult } from "../engine.js";
import type { Located, MessageStream } from "./message-stream.js";

/** JetStream's answer when Nats-Expected-Last-Subject-Sequence does not hold. */
const WRONG_LAST_SEQUENCE = 10071;
/** Another node winning the race this many times in a row means something is wrong. */
const MAX_CONFLICTS = 100;

interface Tail {
  streamSeq: number;
  seq: number;
  epoch: string;
  createdAt: number;
}

interface Pending {
  input: PublishInput;
  id: string;
  /** For an ephemeral message: sends it (after every persisted one accepted before it). */
  send?: () => PublishResult;
  resolve(result: PublishResult): void;
  reject(error: unknown): void;
}

/**
 * Appends one topic's persisted messages, in the order they were accepted.
 *
 * A topic's position must be contiguous across every node publishing to it,
 * so each append is conditional: it names the stream sequence of the
 * topic's last message (Nats-Expected-Last-Subject-Sequence) and carries the
 * next position. When another node got there first, JetStream refuses, the
 * writer reads the new tail and tries again. One append per topic is in
 * flight at a time on this node; different topics proceed in parallel.
 * Every append carries a message id (Nats-Msg-Id), so a publish retried with
 * the same id is stored once.
 */
export class TopicWriter {
  private readonly queue: Pending[] = [];
  /** The topic's newest stored message as this node last saw it; undefined when unknown. */
  private tail: Tail | null | undefined;
  private running = false;
  lastUsed = Date.now();

  constructor(
    private readonly topic: string,
    private readonly subject: string,
    private readonly js: JetStreamClient,
    private readonly stream: MessageStream,
    private readonly timeoutMs: number,
  ) {}

  get idle(): boolean {
    return !this.running && this.queue.length === 0;
  }

  append(input: PublishInput, id: string): Promise<PublishResult> {
    this.lastUsed = Date.now();
    return new Promise((resolve, reject) => {
      this.queue.push({ input, id, resolve, reject });
      if (!this.running) void this.run();
    });
  }

  /**
   * An ephemeral message never touches the stream, but it must not overtake
   * a persisted one published before it: it waits for them, when there are any.
   */
  sendInOrder(input: PublishInput, id: string, send: () => PublishResult): Promise<PublishResult> {
    if (this.idle) {
      try {
        return Promise.resolve(send());
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return new Promise((resolve, reject) => this.queue.push({ input, id, send, resolve, reject }));
  }

  /** A message of this topic seen on the live path: saves a lookup on the next append. */
  observe(m: Tail): void {
    // An append in flight sets the tail itself when it lands.
    if (this.running) return;
    if (!this.tail || m.epoch !== this.tail.epoch || m.seq > this.tail.seq) this.tail = m;
  }

  /** Forgets the tail: the next append reads it again (after reconnects and leader changes). */
  forgetTail(): void {
    if (!this.running) this.tail = undefined;
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const next = this.queue[0]!;
        try {
          next.resolve(next.send ? next.send() : await this.commit(next));
          this.queue.shift();
        } catch (error) {
          // Whatever was accepted after a failed publish fails with it: the
          // publisher retries from there and its order is kept.
          for (const p of this.queue.splice(0)) p.reject(error);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private async commit({ input, id }: Pending): Promise<PublishResult> {
    // A retry is recognised within its publisher's own ids: two users may both use "1".
    const msgID = createHash("sha256").update(`${input.topic}\u0000${input.publisher}\u0000${id}`).digest("base64url");
    for (let conflicts = 0; ; ) {
      const tail = this.tail === undefined ? await this.readTail() : this.tail;
      const next: Tail = {
        streamSeq: 0,
        seq: (tail?.seq ?? 0) + 1,
        // A topic with nothing retained starts a new epoch: positions from
        // before it cannot be confused with the new ones.
        epoch: tail?.epoch ?? randomBytes(6).toString("base64url"),
        createdAt: Math.max(Date.now(), (tail?.createdAt ?? 0) + 1),
      };
      const payload = storedPayload(this.topic, next.epoch, {
        seq: next.seq,
        id,
        event: input.event,
        data: input.data,
        userId: input.userId,
        connectionId: input.connectionId,
        createdAt: next.createdAt,
        old: input.old,
      });
      let ack;
      try {
        ack = await this.js.publish(this.subject, toBinary(RealtimePayloadSchema, payload), {
          msgID,
          expect: { lastSubjectSequence: tail?.streamSeq ?? 0 },
          timeout: this.timeoutMs,
        });
      } catch (error) {
        this.tail = undefined;
        if ((error as { code?: number }).code === WRONG_LAST_SEQUENCE || /wrong last sequence/.test(String(error))) {
          if (++conflicts < MAX_CONFLICTS) continue;
          throw new ConnectError(`could not order the publish on "${this.topic}" after ${conflicts} attempts; retry`, Code.Aborted);
        }
        throw unavailable(error);
      }
      if (ack.duplicate) {
        // Stored before, under this id: answer with the original.
        this.tail = undefined;
        const original = await this.stream.at(ack.seq);
        if (!original) throw new ConnectError("the original of a retried publish is no longer retained", Code.Unavailable);
        const m = storedFields(original.payload);
        return { id: m.id, seq: m.seq, epoch: original.epoch, timestamp: m.createdAt };
      }
      this.tail = { ...next, streamSeq: ack.seq };
      return { id, seq: next.seq, epoch: next.epoch, timestamp: next.createdAt };
    }
  }

  private async readTail(): Promise<Tail | null> {
    let last: Located | undefined;
    try {
      last = await this.stream.last(this.topic);
    } catch (error) {
      throw unavailable(error);
    }
    return last ? { streamSeq: last.streamSeq, seq: last.seq, epoch: last.epoch, createdAt: last.createdAt } : null;
  }
}

export function unavailable(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  return new ConnectError(`message broker unavailable: ${(error as Error)?.message ?? String(error)}; retry`, Code.Unavailable, undefined, undefined, error);
}
