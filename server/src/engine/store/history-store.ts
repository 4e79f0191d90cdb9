import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { HistoryPage, HistoryQuery, PublishResult, ReadLimits, Recovery, StoredMessage } from "../engine.js";
import { retentionFor, type RetentionRule } from "../retention.js";
import { FilePool } from "./file-pool.js";
import { lockDataDir, type DataDirLock } from "./lock.js";
import { TopicStore, type AppendInput } from "./topic-store.js";

export interface HistoryOptions {
  dir: string;
  retention: readonly RetentionRule[];
  /** fsync every write before it is acknowledged (survives power loss), or leave it to the OS (survives a process crash). */
  fsync: boolean;
  /** Descriptors the store keeps open at most (two per topic in use). */
  maxOpenFiles: number;
  /** Topics whose state (positions, recent ids, cache) stays in memory; the least recently used go first. */
  maxTopicsInMemory: number;
  /** Memory for cached recent messages, all topics together. */
  cacheBytes: number;
  log(message: string): void;
}

/** Newest messages cached per topic, at most. */
const CACHE_MESSAGES_PER_TOPIC = 1024;
const CACHE_BYTES_PER_TOPIC = 1024 * 1024;

/**
 * The embedded engine's persisted history: one TopicStore per topic, on
 * disk under the data directory, with bounded memory and descriptors.
 *
 * The directory is locked for this process. If the last process to hold
 * it stopped uncleanly on an earlier boot of the machine without fsyncing
 * its writes, what it acknowledged may be lost with the OS's cache, and
 * positions could repeat: every topic then starts a new epoch (its
 * subscribers are told with `history_reset`) rather than reuse one.
 */
export class HistoryStore {
  private readonly pool: FilePool;
  private readonly topics = new Map<string, TopicStore>();
  private readonly lock: DataDirLock;
  private readonly epochSuffix: string;
  private cached = 0;

  constructor(private readonly options: HistoryOptions) {
    mkdirSync(options.dir, { recursive: true });
    this.lock = lockDataDir(options.dir, options.fsync ? "always" : "never");
    this.pool = new FilePool(options.maxOpenFiles);
    this.epochSuffix = this.generation();
  }

  append(topic: string, input: AppendInput, deliver: (message: StoredMessage, epoch: string) => void): Promise<PublishResult> {
    return this.store(topic, true)!.append(input, deliver);
  }

  /** An ephemeral message: delivered at once, or behind the topic's persisted messages still being written. */
  passThrough(topic: string, deliver: () => void): void {
    const store = this.topics.get(topic);
    if (store) store.passThrough(deliver);
    else deliver();
  }

  async query(topic: string, query: HistoryQuery): Promise<HistoryPage> {
    // A topic nobody ever persisted to gets no file and no state.
    return (await this.store(topic, false)?.query(query)) ?? { messages: [], epoch: "", lastSeq: 0, hasMore: false };
  }

  async since(topic: string, seq: number, limits: ReadLimits): Promise<Recovery> {
    return (await this.store(topic, false)?.since(seq, limits)) ?? { messages: [], epoch: "", firstSeq: 1, lastSeq: 0 };
  }

  /** Topics in memory and descriptors open: what the bounds above hold. */
  get footprint(): { topics: number; openFiles: number; cachedBytes: number } {
    return { topics: this.topics.size, openFiles: this.pool.size, cachedBytes: this.cached };
  }

  /** Waits for every pending write, closes the files and releases the directory: a clean shutdown. */
  async close(): Promise<void> {
    await Promise.all([...this.topics.values()].map((store) => store.flush()));
    this.topics.clear();
    this.pool.closeAll();
    this.lock.release();
  }

  private store(topic: string, create: boolean): TopicStore | undefined {
    const existing = this.topics.get(topic);
    if (existing) {
      // Most recently used last: Map order is the eviction order.
      this.topics.delete(topic);
      this.topics.set(topic, existing);
      return existing;
    }
    const name = createHash("sha256").update(topic).digest("hex").slice(0, 40);
    const data = join(this.options.dir, `${name}.jsonl`);
    if (!create && !existsSync(data)) return undefined;
    const store = new TopicStore(topic, data, join(this.options.dir, `${name}.idx`), {
      pool: this.pool,
      retention: retentionFor(this.options.retention, topic),
      fsync: this.options.fsync,
      epochSuffix: this.epochSuffix,
      cacheMessages: CACHE_MESSAGES_PER_TOPIC,
      cacheBytes: CACHE_BYTES_PER_TOPIC,
      cacheChanged: (delta) => this.cacheChanged(delta),
      log: this.options.log,
    });
    this.topics.set(topic, store);
    this.forgetIdleTopics(store);
    return store;
  }

  /** Past the budget, the least recently used topics give their cache back. */
  private cacheChanged(delta: number): void {
    this.cached += delta;
    if (this.cached <= this.options.cacheBytes) return;
    for (const store of this.topics.values()) {
      if (this.cached <= this.options.cacheBytes * 0.9) return;
      store.evictCache();
    }
  }

  /** Past the bound, idle topics are forgotten, least recently used first (their files stay). */
  private forgetIdleTopics(keep: TopicStore): void {
    if (this.topics.size <= this.options.maxTopicsInMemory) return;
    for (const [topic, store] of this.topics) {
      if (this.topics.size <= this.options.maxTopicsInMemory) return;
      // Never two stores for one topic: only idle ones go, and never the one just handed out.
      if (!store.idle || store === keep) continue;
      store.evictCache();
      this.topics.delete(topic);
    }
  }

  /** The epoch generation: raised when positions acknowledged before may have been lost. */
  private generation(): string {
    const path = join(this.options.dir, "STATE");
    let generation = 0;
    try {
      generation = Number((JSON.parse(readFileSync(path, "utf8")) as { generation?: number }).generation ?? 0);
    } catch {
      generation = 0;
    }
    const previous = this.lock.previous;
    if (previous && !previous.sameBoot && previous.fsync !== "always") {
      generation++;
      const tmp = `${path}.tmp`;
      writeFileSync(tmp, JSON.stringify({ generation }));
      renameSync(tmp, path);
      this.options.log(`the last run on this data directory ended uncleanly before the machine restarted, without fsync: what it acknowledged last may be lost, so every topic starts a new epoch (generation ${generation})`);
    }
    return generation > 0 ? `~${generation}` : "";
  }
}
