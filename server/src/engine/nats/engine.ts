import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { RealtimePayloadSchema } from "../../../../gen/chorus/v1/payload_pb.js";
import { storedPayload, userFrame, userPayload } from "../../frames.js";
import type { IdGenerator } from "../../ids.js";
import type { Logger } from "../../log.js";
import type { Delivery, Engine, HistoryPage, HistoryQuery, PublishInput, PublishResult, ReadLimits, Recovery, UserMessage } from "../engine.js";
import type { Retention } from "../retention.js";
import { abortableDelay, connectWithRetry, type NatsConfig } from "./connection.js";
import { MessageStream } from "./message-stream.js";
import { Subjects } from "./subjects.js";
import { TopicFeed } from "./topic-feed.js";
import { TopicWriter, unavailable } from "./topic-writer.js";

/** Writers idle this long are dropped (their cached tail with them). */
const WRITER_IDLE_MS = 60_000;

/**
 * Many nodes as one server over NATS: persisted messages go to a JetStream
 * stream (one subject per topic), which republishes each stored message on
 * the topic's live subject; ephemeral messages and messages to users travel
 * over core NATS only. A node subscribes to the live subjects of the topics
 * its sessions watch, so each message crosses to a node once, however many
 * of its sessions receive it.
 */
export class NatsEngine implements Engine {
  readonly name = "nats";
  private readonly subjects: Subjects;
  private nc: NatsConnection | undefined;
  private stream: MessageStream | undefined;
  private js: JetStreamClient | undefined;
  private readonly feeds = new Map<string, TopicFeed>();
  private readonly writers = new Map<string, TopicWriter>();
  private readonly userSubscriptions = new Map<string, Subscription>();
  private connected = false;

  get ready(): boolean {
    return this.connected;
  }
  private readonly stopping = new AbortController();
  private sweep: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: NatsConfig,
    private readonly retention: Retention,
    private readonly nodeId: string,
    private readonly ids: IdGenerator,
    private readonly delivery: Delivery,
    private readonly log: Logger,
  ) {
    this.subjects = new Subjects(config.prefix);
  }

  async start(): Promise<void> {
    const nc = await connectWithRetry(this.config, `chorus-${this.nodeId}`, this.log, this.stopping.signal);
    this.nc = nc;
    this.connected = true;
    this.js = jetstream(nc, { timeout: this.config.publishTimeoutMs });
    // Not checkAPI: a cluster still electing its leader would fail the start; ensureStream retries instead.
    const jsm = await jetstreamManager(nc, { timeout: this.config.publishTimeoutMs, checkAPI: false });
    this.stream = new MessageStream(jsm, this.js, this.subjects);
    await this.ensureStream();
    void this.followStatus(nc);
    // A new stream leader may have been elected mid-republish: look for gaps.
    nc.subscribe(`$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.${this.subjects.stream}`, { callback: () => this.resyncAll("stream leader changed") });
    this.sweep = setInterval(() => this.dropIdleWriters(), WRITER_IDLE_MS).unref();
    this.log.info(`NATS engine on ${nc.getServer()}: stream ${this.subjects.stream}, subjects ${this.subjects.prefix}.*`, {
      replicas: this.config.replicas,
      maxMessagesPerTopic: this.retention.maxMessages,
      maxAgeMs: this.retention.maxAgeMs,
    });
  }

  publish(input: PublishInput): Promise<PublishResult> {
    if (!this.connected || !this.nc) {
      return Promise.reject(new ConnectError("message broker (NATS) is not connected; retry shortly", Code.Unavailable));
    }
    const id = input.id || this.ids.next();
    let writer = this.writers.get(input.topic);
    if (!input.persist) {
      const send = () => this.publishLive(input, id);
      return writer ? writer.sendInOrder(input, id, send) : Promise.resolve().then(send);
    }
    if (!writer) {
      writer = new TopicWriter(input.topic, this.subjects.stored(input.topic), this.js!, this.store, this.config.publishTimeoutMs);
      this.writers.set(input.topic, writer);
    }
    return writer.append(input, id);
  }

  /** An ephemeral message: straight onto the topic's live subject, never stored. */
  private publishLive(input: PublishInput, id: string): PublishResult {
    const timestamp = Date.now();
    const payload = storedPayload(input.topic, "", { seq: 0, id, event: input.event, data: input.data, userId: input.userId, connectionId: input.connectionId, createdAt: timestamp });
    try {
      this.nc!.publish(this.subjects.live(input.topic), toBinary(RealtimePayloadSchema, payload));
    } catch (error) {
      throw unavailable(error);
    }
    return { id, seq: 0, epoch: "", timestamp };
  }

  sendToUser(message: UserMessage): void {
    if (!this.connected || !this.nc) throw new ConnectError("message broker (NATS) is not connected; retry shortly", Code.Unavailable);
    this.nc.publish(this.subjects.user(message.userId), toBinary(RealtimePayloadSchema, userPayload(message)));
  }

  history(topic: string, query: HistoryQuery): Promise<HistoryPage> {
    return this.reading(() => this.store.history(topic, query));
  }

  since(topic: string, seq: number, limits: ReadLimits): Promise<Recovery> {
    return this.reading(() => this.store.since(topic, seq, limits));
  }

  watch(topic: string): void {
    if (this.feeds.has(topic) || !this.nc) return;
    const feed = new TopicFeed(
      topic,
      this.subjects.live(topic),
      this.nc,
      { last: (t) => this.store.last(t), since: (t, seq, limits) => this.store.since(t, seq, limits) },
      (frame) => this.delivery.toTopic(topic, frame),
      (payload, streamSeq) => this.writers.get(topic)?.observe({ streamSeq, seq: Number(payload.seq), epoch: payload.epoch, createdAt: Number(payload.timestamp) }),
      (message, error) => this.log.error(message, { error: String(error) }),
    );
    this.feeds.set(topic, feed);
  }

  live(topic: string): Promise<void> {
    const feed = this.feeds.get(topic);
    if (!feed) return Promise.reject(new ConnectError(`topic "${topic}" is not watched`, Code.Internal));
    if (!this.connected) return Promise.reject(new ConnectError("message broker (NATS) is not connected; retry shortly", Code.Unavailable));
    return feed.live().catch((error: unknown) => Promise.reject(unavailable(error)));
  }

  unwatch(topic: string): void {
    this.feeds.get(topic)?.stop();
    this.feeds.delete(topic);
  }

  watchUser(userId: string): void {
    if (this.userSubscriptions.has(userId) || !this.nc) return;
    const subscription = this.nc.subscribe(this.subjects.user(userId), {
      callback: (error, msg) => {
        if (error) return this.log.error("user subscription failed", { error: String(error) });
        this.delivery.toUser(userId, userFrame(fromBinary(RealtimePayloadSchema, msg.data)));
      },
    });
    this.userSubscriptions.set(userId, subscription);
  }

  unwatchUser(userId: string): void {
    this.userSubscriptions.get(userId)?.unsubscribe();
    this.userSubscriptions.delete(userId);
  }

  async close(): Promise<void> {
    this.stopping.abort();
    clearInterval(this.sweep);
    for (const feed of this.feeds.values()) feed.stop();
    this.feeds.clear();
    // Let what is queued reach the server before the connection goes, but
    // never wait long for a server that is away.
    const nc = this.nc;
    if (!nc || nc.isClosed()) return;
    const drained = nc.drain().catch(() => undefined);
    await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
    if (!nc.isClosed()) await nc.close();
  }

  /** The NATS connection, once started: presence travels over it too. */
  get connection(): NatsConnection | undefined {
    return this.nc;
  }

  /** The subject prefix, for the other parts that use NATS. */
  get subjectPrefix(): string {
    return this.subjects.prefix;
  }

  private get store(): MessageStream {
    if (!this.stream) throw new ConnectError("NATS engine is not started", Code.Unavailable);
    return this.stream;
  }

  private async reading<T>(read: () => Promise<T>): Promise<T> {
    if (!this.connected) throw new ConnectError("message broker (NATS) is not connected; retry shortly", Code.Unavailable);
    try {
      return await read();
    } catch (error) {
      throw unavailable(error);
    }
  }

  /** Creates or updates the stream, retrying while JetStream is not ready (a cluster still forming). */
  private async ensureStream(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.stopping.signal.throwIfAborted();
      try {
        const outcome = await this.store.ensure(this.retention, this.config.replicas);
        this.log.info(`JetStream stream ${this.subjects.stream} ${outcome}`);
        return;
      } catch (error) {
        this.log.warn(`JetStream stream ${this.subjects.stream} could not be set up (${(error as Error).message}); retrying in 2 s`, { attempt });
        await abortableDelay(2_000, this.stopping.signal);
      }
    }
  }

  private async followStatus(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") {
        this.connected = false;
        this.log.warn("NATS connection lost: publishes fail with UNAVAILABLE until it is back; reconnecting");
      } else if (status.type === "reconnect") {
        this.connected = true;
        this.log.info(`NATS connection back (${nc.getServer()})`);
        this.resyncAll("reconnected");
      }
    }
  }

  private resyncAll(reason: string): void {
    for (const writer of this.writers.values()) writer.forgetTail();
    if (this.feeds.size > 0) this.log.info(`${reason}: checking ${this.feeds.size} topics for missed messages`);
    for (const feed of this.feeds.values()) feed.resync();
  }

  private dropIdleWriters(): void {
    const cutoff = Date.now() - WRITER_IDLE_MS;
    for (const [topic, writer] of this.writers) if (writer.idle && writer.lastUsed < cutoff) this.writers.delete(topic);
  }
}
