import { createHash, randomBytes } from "node:crypto";
import { existsSync, fstatSync, ftruncateSync, readSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { messageBytes, type HistoryPage, type HistoryQuery, type PublishResult, type ReadLimits, type Recovery, type StoredMessage } from "../engine.js";
import type { Retention } from "../retention.js";
import { readAt, syncData, writeAt, type FilePool } from "./file-pool.js";

/**
 * One topic's persisted history on disk: a data file of JSON lines (a
 * header line, then one line per message) and an index beside it, one
 * fixed-size record per message (its position, offset, length, time, and
 * a digest of its publisher and client id when it has one).
 *
 * A message is written, index and data, before it is acknowledged or
 * delivered (and fsynced first when the store runs with fsync "always");
 * the index record is what commits it. Messages appended while a write is
 * under way go out together in the next one (a group commit). Reads come
 * from a small cache of the newest messages or from disk, by position
 * (one index read, one data read) or by time (a binary search over the
 * index). On open, a torn tail is cut back to the last whole record, and a
 * file that cannot be trusted is rebuilt from its data or started afresh
 * under a new epoch, never fatal.
 */

/** Bytes of one index record, and of the index header. */
export const RECORD = 40;
const MAGIC = "CHIX0001";
/** Record flag: the message has a client-chosen id (its digest is in the record). */
const HAS_ID = 1;
/** How long a client-chosen id is remembered for de-duplicating retries. */
export const DEDUP_WINDOW_MS = 2 * 60_000;
/** Bytes of the data file copied per step when compacting. */
const COPY_CHUNK = 1 << 20;

export interface StoreOptions {
  pool: FilePool;
  retention: Retention;
  fsync: boolean;
  /** Appended to every epoch read from disk: a new generation voids every older position. */
  epochSuffix: string;
  /** Newest messages kept in memory per topic. */
  cacheMessages: number;
  cacheBytes: number;
  /** Told when the cache grows or shrinks, for the node-wide budget. */
  cacheChanged(delta: number): void;
  log(message: string): void;
}

interface Header {
  v: 1;
  topic: string;
  epoch: string;
  /** Names this incarnation of the file; the index carries the same name. */
  file?: string;
}

interface IndexRecord {
  seq: number;
  offset: number;
  createdAt: number;
  length: number;
  flags: number;
  digest: string;
}

/** A publish waiting for its write, or an ephemeral message waiting behind one. */
interface Queued {
  message?: StoredMessage;
  line?: Buffer;
  digest?: string;
  deliver: (epoch: string) => void;
  result: PublishResult;
  resolve(result: PublishResult): void;
  reject(error: unknown): void;
}

/** What a topic's publish turns into: its stored fields, and how subscribers get it once written. */
export interface AppendInput {
  id: string;
  clientId: boolean;
  publisher: string;
  event: string;
  data: string;
  userId: string;
  connectionId: string;
  old?: string;
}

/** The digest a retry is recognised by: its publisher and its client-chosen id. */
export function idDigest(publisher: string, id: string): string {
  return createHash("sha256").update(`${publisher}\u0000${id}`).digest("hex").slice(0, 16);
}

export class TopicStore {
  private header!: Header;
  private headerBytes = 0;
  /** Position of the index's first record (lastSeq + 1 when it has none). */
  private baseSeq = 1;
  private records = 0;
  private dataSize = 0;
  /** Durable (written) tail. */
  private lastSeq = 0;
  private lastCreatedAt = 0;
  /** Assigned, durable or queued. */
  private assignedSeq = 0;
  private assignedCreatedAt = 0;
  /** The oldest retained position. */
  private firstSeq = 1;
  private ageCheckedAt = 0;
  private readonly queue: Queued[] = [];
  private writing: Promise<void> | undefined;
  /** Queued publishes by id digest: a retry of one still being written waits for it. */
  private readonly queuedIds = new Map<string, Promise<PublishResult>>();
  /** Written publishes with client ids within the de-duplication window, oldest first. */
  private readonly recentIds = new Map<string, { seq: number; createdAt: number }>();
  /** The newest durable messages, contiguous, ending at lastSeq. */
  private cache: StoredMessage[] = [];
  private cached = 0;
  private readers = 0;
  private compacting: Promise<void> | undefined;
  private readersDone: (() => void) | undefined;
  private compactRequested = false;
  private headerPending = false;
  lastUsed = Date.now();

  constructor(
    readonly topic: string,
    private readonly dataPath: string,
    private readonly indexPath: string,
    private readonly options: StoreOptions,
  ) {
    this.open();
  }

  get epoch(): string {
    return this.header.epoch + this.options.epochSuffix;
  }

  /** Nothing queued, written, read or compacted right now: the store may be closed. */
  get idle(): boolean {
    return this.queue.length === 0 && !this.writing && this.readers === 0 && !this.compacting;
  }

  get cacheSize(): number {
    return this.cached;
  }

  // ---- writing ----

  /**
   * Queues a persisted message: it gets the next position now, in call
   * order, and the promise settles once it is written. `deliver` runs
   * once it is, in position order, before the acknowledgement.
   */
  append(input: AppendInput, deliver: (message: StoredMessage, epoch: string) => void): Promise<PublishResult> {
    this.lastUsed = Date.now();
    const digest = input.clientId ? idDigest(input.publisher, input.id) : undefined;
    if (digest) {
      const written = this.recentIds.get(digest);
      if (written) return Promise.resolve({ id: input.id, seq: written.seq, epoch: this.epoch, timestamp: written.createdAt });
      const queued = this.queuedIds.get(digest);
      if (queued) return queued;
    }
    const now = Date.now();
    const message: StoredMessage = {
      seq: ++this.assignedSeq,
      id: input.id,
      event: input.event,
      data: input.data,
      userId: input.userId,
      connectionId: input.connectionId,
      createdAt: (this.assignedCreatedAt = Math.max(now, this.assignedCreatedAt + 1)),
      ...(input.old !== undefined ? { old: input.old } : {}),
    };
    const line: Record<string, unknown> = { s: message.seq, i: message.id, e: message.event, d: message.data, u: message.userId, c: message.connectionId, t: message.createdAt };
    if (message.old !== undefined) line.o = message.old;
    if (digest) line.p = input.publisher;
    const promise = new Promise<PublishResult>((resolve, reject) => {
      this.queue.push({
        message,
        line: Buffer.from(JSON.stringify(line) + "\n"),
        digest,
        deliver: (epoch) => deliver(message, epoch),
        result: { id: message.id, seq: message.seq, epoch: "", timestamp: message.createdAt },
        resolve,
        reject,
      });
    });
    if (digest) {
      this.queuedIds.set(digest, promise);
      promise.then(
        () => this.queuedIds.delete(digest),
        () => this.queuedIds.delete(digest),
      );
    }
    this.writing ??= this.drain();
    return promise;
  }

  /** An ephemeral message: delivered now, or after the persisted ones queued before it (a publisher's order holds). */
  passThrough(deliver: () => void): void {
    if (this.queue.length === 0 && !this.writing) return deliver();
    this.queue.push({ deliver, result: { id: "", seq: 0, epoch: "", timestamp: 0 }, resolve() {}, reject() {} });
  }

  /** Waits for everything queued to be written. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 || this.compactRequested) {
        if (this.queue.length === 0) {
          await this.compact();
          continue;
        }
        const batch = this.queue.splice(0);
        const stored = batch.filter((q) => q.message);
        if (stored.length > 0 && !(await this.write(stored, batch))) continue;
        const epoch = this.epoch;
        for (const q of batch) {
          q.result.epoch = q.message ? epoch : "";
          q.deliver(epoch);
          q.resolve(q.result);
        }
        this.retain(Date.now());
      }
    } finally {
      this.writing = undefined;
    }
  }

  /** Writes a batch: data lines, then index records (which commit them). False when it failed (all rejected). */
  private async write(stored: Queued[], batch: Queued[]): Promise<boolean> {
    const { pool, fsync } = this.options;
    const lines: Buffer[] = [];
    const records: Buffer[] = [];
    let position = this.dataSize;
    const headerLine = this.headerPending ? Buffer.from(JSON.stringify(this.header) + "\n") : undefined;
    if (headerLine) {
      lines.push(headerLine);
      position += headerLine.length;
    }
    for (const q of stored) {
      const m = q.message!;
      lines.push(q.line!);
      records.push(encodeRecord({ seq: m.seq, offset: position, createdAt: m.createdAt, length: q.line!.length, flags: q.digest ? HAS_ID : 0, digest: q.digest ?? "" }));
      position += q.line!.length;
    }
    const indexHeader = this.records === 0 && this.headerPending ? encodeIndexHeader(this.header.file ?? "", this.baseSeq) : undefined;
    const indexStart = RECORD + this.records * RECORD;
    try {
      await pool.use(this.dataPath, (fd) => writeAt(fd, Buffer.concat(lines), this.dataSize));
      if (indexHeader) await pool.use(this.indexPath, (fd) => writeAt(fd, indexHeader, 0));
      await pool.use(this.indexPath, (fd) => writeAt(fd, Buffer.concat(records), indexStart));
      if (fsync) await Promise.all([pool.use(this.dataPath, syncData), pool.use(this.indexPath, syncData)]);
    } catch (error) {
      // Nothing of this batch was acknowledged or delivered: cut the files back and give its positions back.
      try {
        pool.useSync(this.dataPath, (fd) => ftruncateSync(fd, this.dataSize));
        pool.useSync(this.indexPath, (fd) => ftruncateSync(fd, indexStart));
      } catch {
        // the next open repairs a torn tail
      }
      const failed = [...batch, ...this.queue.splice(0)];
      this.assignedSeq = this.lastSeq;
      this.assignedCreatedAt = this.lastCreatedAt;
      for (const q of failed) q.reject(error);
      this.options.log(`writing history of "${this.topic}" failed: ${(error as Error).message}`);
      return false;
    }
    if (headerLine) {
      this.headerBytes = headerLine.length;
      this.headerPending = false;
    }
    this.dataSize = position;
    this.records += stored.length;
    const last = stored.at(-1)!.message!;
    this.lastSeq = last.seq;
    this.lastCreatedAt = last.createdAt;
    for (const q of stored) {
      if (q.digest) this.recentIds.set(q.digest, { seq: q.message!.seq, createdAt: q.message!.createdAt });
      this.remember(q.message!);
    }
    return true;
  }

  // ---- reading ----

  async query({ limit, before, beforeSeq, maxBytes }: HistoryQuery): Promise<HistoryPage> {
    this.lastUsed = Date.now();
    return this.reading(async () => {
      this.retain(Date.now());
      let end = this.lastSeq;
      if (beforeSeq > 0) end = Math.min(end, beforeSeq - 1);
      if (before > 0 && end >= this.firstSeq) end = Math.min(end, (await this.firstAtOrAfter(before)) - 1);
      const start = Math.max(this.firstSeq, end - limit + 1);
      const page: HistoryPage = { messages: [], epoch: this.lastSeq > 0 ? this.epoch : "", lastSeq: this.lastSeq, hasMore: false };
      if (start > end || limit === 0) return { ...page, hasMore: limit === 0 && this.lastSeq >= this.firstSeq };
      const messages = (await this.range(start, end, maxBytes, true)).reverse();
      return { ...page, messages, hasMore: messages.at(-1)!.seq > this.firstSeq };
    });
  }

  async since(seq: number, { limit, maxBytes }: ReadLimits): Promise<Recovery> {
    this.lastUsed = Date.now();
    return this.reading(async () => {
      this.retain(Date.now());
      const recovery: Recovery = { messages: [], epoch: this.lastSeq > 0 ? this.epoch : "", firstSeq: this.firstSeq, lastSeq: this.lastSeq };
      const start = Math.max(seq + 1, this.firstSeq);
      const end = Math.min(this.lastSeq, start + limit - 1);
      if (start <= end) recovery.messages = await this.range(start, end, maxBytes, false);
      return recovery;
    });
  }

  /** Reads wait while the files are being compacted; compaction waits for reads in progress. */
  private async reading<T>(read: () => Promise<T>): Promise<T> {
    while (this.compacting) await this.compacting;
    this.readers++;
    try {
      return await read();
    } finally {
      if (--this.readers === 0) this.readersDone?.();
    }
  }

  /**
   * Messages from `from` to `to` (durable, retained), oldest first, within
   * `maxBytes` (at least one): counted from the newest end when `newest`.
   */
  private async range(from: number, to: number, maxBytes: number, newest: boolean): Promise<StoredMessage[]> {
    const cacheStart = this.cache[0]?.seq ?? Number.POSITIVE_INFINITY;
    if (from >= cacheStart) return withinBytes(this.cache.slice(from - cacheStart, to - cacheStart + 1), maxBytes, newest);
    const records = await this.readRecords(from, to);
    let first = 0;
    let last = records.length - 1;
    if (maxBytes > 0) {
      let bytes = 0;
      if (newest) {
        let i = last;
        for (; i >= 0; i--) {
          bytes += records[i]!.length;
          if (bytes > maxBytes && i < last) break;
        }
        first = i < 0 ? 0 : bytes > maxBytes ? i + 1 : i;
      } else {
        let i = 0;
        for (; i < records.length; i++) {
          bytes += records[i]!.length;
          if (bytes > maxBytes && i > 0) break;
        }
        last = i >= records.length ? records.length - 1 : bytes > maxBytes ? i - 1 : i;
      }
    }
    const a = records[first]!;
    const b = records[last]!;
    const bytes = await this.options.pool.use(this.dataPath, (fd) => readAt(fd, b.offset + b.length - a.offset, a.offset));
    const out: StoredMessage[] = [];
    for (let i = first; i <= last; i++) {
      const r = records[i]!;
      out.push(parseLine(bytes.subarray(r.offset - a.offset, r.offset - a.offset + r.length), r.seq));
    }
    return out;
  }

  private async readRecords(from: number, to: number): Promise<IndexRecord[]> {
    const bytes = await this.options.pool.use(this.indexPath, (fd) => readAt(fd, (to - from + 1) * RECORD, RECORD + (from - this.baseSeq) * RECORD));
    const out: IndexRecord[] = [];
    for (let at = 0; at + RECORD <= bytes.length; at += RECORD) out.push(decodeRecord(bytes, at));
    return out;
  }

  /** The first retained position created at or after `time` (lastSeq + 1 when none). */
  private async firstAtOrAfter(time: number): Promise<number> {
    let lo = this.firstSeq;
    let hi = this.lastSeq + 1;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if ((await this.createdAt(mid)) < time) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private async createdAt(seq: number): Promise<number> {
    const cacheStart = this.cache[0]?.seq ?? Number.POSITIVE_INFINITY;
    if (seq >= cacheStart) return this.cache[seq - cacheStart]!.createdAt;
    return (await this.readRecords(seq, seq))[0]!.createdAt;
  }

  // ---- retention ----

  /** Moves the retained start past what retention no longer keeps; compaction follows when enough is dead. */
  private retain(now: number): void {
    const { maxMessages, maxAgeMs } = this.options.retention;
    this.firstSeq = Math.max(this.firstSeq, this.baseSeq, this.lastSeq - maxMessages + 1);
    if (now - this.ageCheckedAt > 1000 && this.firstSeq <= this.lastSeq) {
      this.ageCheckedAt = now;
      const cutoff = now - maxAgeMs;
      if (this.createdAtSync(this.firstSeq) < cutoff) this.firstSeq = this.firstAtOrAfterSync(cutoff);
    }
    const cacheStart = this.cache[0]?.seq;
    if (cacheStart !== undefined && cacheStart < this.firstSeq) this.dropCached(Math.min(this.cache.length, this.firstSeq - cacheStart));
    const dead = this.firstSeq - this.baseSeq;
    if (dead > 1000 && dead > this.lastSeq - this.firstSeq + 1) {
      this.compactRequested = true;
      this.writing ??= this.drain();
    }
    const windowStart = now - DEDUP_WINDOW_MS;
    for (const [digest, entry] of this.recentIds) {
      if (entry.createdAt >= windowStart) break;
      this.recentIds.delete(digest);
    }
  }

  /** The first retained position created at or after `time` (lastSeq + 1 when none), by binary search. */
  private firstAtOrAfterSync(time: number): number {
    let lo = this.firstSeq;
    let hi = this.lastSeq + 1;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (this.createdAtSync(mid) < time) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private createdAtSync(seq: number): number {
    const cacheStart = this.cache[0]?.seq ?? Number.POSITIVE_INFINITY;
    if (seq >= cacheStart) return this.cache[seq - cacheStart]!.createdAt;
    return this.options.pool.useSync(this.indexPath, (fd) => readRecordSync(fd, RECORD + (seq - this.baseSeq) * RECORD)).createdAt;
  }

  /** Rewrites both files with only the retained messages, once readers are out. */
  private async compact(): Promise<void> {
    this.compactRequested = false;
    let done!: () => void;
    this.compacting = new Promise((resolve) => (done = resolve));
    try {
      if (this.readers > 0) await new Promise<void>((resolve) => (this.readersDone = resolve));
      this.readersDone = undefined;
      await this.rewrite(this.firstSeq);
    } catch (error) {
      this.options.log(`compacting history of "${this.topic}" failed (it will be tried again): ${(error as Error).message}`);
    } finally {
      this.compacting = undefined;
      done();
    }
  }

  private async rewrite(keepFrom: number): Promise<void> {
    const { pool, fsync } = this.options;
    const header: Header = { ...this.header, file: randomBytes(8).toString("hex") };
    const headerLine = Buffer.from(JSON.stringify(header) + "\n");
    const dataTmp = `${this.dataPath}.compact`;
    const indexTmp = `${this.indexPath}.compact`;
    const records = keepFrom <= this.lastSeq ? await this.readRecords(keepFrom, this.lastSeq) : [];
    const copyFrom = records[0]?.offset ?? this.dataSize;
    const shift = copyFrom - headerLine.length;
    await pool.use(dataTmp, async (out) => {
      ftruncateSync(out, 0);
      await writeAt(out, headerLine, 0);
      for (let at = copyFrom; at < this.dataSize; at += COPY_CHUNK) {
        const chunk = await pool.use(this.dataPath, (fd) => readAt(fd, Math.min(COPY_CHUNK, this.dataSize - at), at));
        await writeAt(out, chunk, at - shift);
      }
      if (fsync) await syncData(out);
    });
    await pool.use(indexTmp, async (out) => {
      ftruncateSync(out, 0);
      const shifted = records.map((r) => encodeRecord({ ...r, offset: r.offset - shift }));
      await writeAt(out, Buffer.concat([encodeIndexHeader(header.file!, keepFrom), ...shifted]), 0);
      if (fsync) await syncData(out);
    });
    pool.invalidate(dataTmp);
    pool.invalidate(indexTmp);
    // Data first: a crash between the renames leaves files whose names differ, and the next open rebuilds the index from the data.
    renameSync(dataTmp, this.dataPath);
    pool.invalidate(this.dataPath);
    renameSync(indexTmp, this.indexPath);
    pool.invalidate(this.indexPath);
    this.header = header;
    this.headerBytes = headerLine.length;
    this.dataSize -= shift;
    this.baseSeq = keepFrom;
    this.records = records.length;
  }

  // ---- cache ----

  private remember(m: StoredMessage): void {
    this.cache.push(m);
    const size = messageBytes(m);
    this.cached += size;
    this.options.cacheChanged(size);
    let drop = 0;
    let bytes = this.cached;
    while (drop < this.cache.length - 1 && (this.cache.length - drop > this.options.cacheMessages || bytes > this.options.cacheBytes)) {
      bytes -= messageBytes(this.cache[drop]!);
      drop++;
    }
    if (drop > 0) this.dropCached(drop);
  }

  private dropCached(count: number): void {
    let bytes = 0;
    for (let i = 0; i < count; i++) bytes += messageBytes(this.cache[i]!);
    this.cache = this.cache.slice(count);
    this.cached -= bytes;
    this.options.cacheChanged(-bytes);
  }

  /** Gives the cache's memory back (the node-wide budget is spent). */
  evictCache(): void {
    if (this.cache.length > 0) this.dropCached(this.cache.length);
  }

  // ---- opening and repair ----

  private open(): void {
    const { pool } = this.options;
    if (!existsSync(this.dataPath)) return this.fresh();
    const head = pool.useSync(this.dataPath, (fd) => {
      const size = fstatSync(fd).size;
      const buffer = Buffer.alloc(Math.min(size, 64 * 1024));
      readSync(fd, buffer, 0, buffer.length, 0);
      return { size, buffer };
    });
    const newline = head.buffer.indexOf(10);
    let header: Header | undefined;
    try {
      header = newline > 0 ? (JSON.parse(head.buffer.subarray(0, newline).toString("utf8")) as Header) : undefined;
    } catch {
      header = undefined;
    }
    if (!header || header.v !== 1 || typeof header.epoch !== "string") {
      // Empty (a crash right after creating it) or unreadable: nothing in it can be trusted.
      this.options.log(`history file of "${this.topic}" was ${head.size === 0 ? "empty" : "unreadable"}: started afresh under a new epoch`);
      return this.fresh();
    }
    if (header.topic !== this.topic) throw new Error(`history file ${this.dataPath} belongs to "${header.topic}", not "${this.topic}"`);
    this.header = header;
    this.headerBytes = newline + 1;
    this.dataSize = head.size;
    if (!this.openIndex()) this.rebuildIndex();
    this.assignedSeq = this.lastSeq;
    this.assignedCreatedAt = this.lastCreatedAt;
    this.firstSeq = this.baseSeq;
    this.retain(Date.now());
    this.loadRecentIds();
  }

  private fresh(): void {
    this.header = { v: 1, topic: this.topic, epoch: randomBytes(6).toString("base64url"), file: randomBytes(8).toString("hex") };
    this.headerPending = true;
    this.headerBytes = 0;
    this.dataSize = 0;
    this.baseSeq = 1;
    this.records = 0;
    this.lastSeq = this.assignedSeq = 0;
    this.lastCreatedAt = this.assignedCreatedAt = 0;
    this.firstSeq = 1;
    // Files are created by the first write; one left damaged is emptied now.
    const { pool } = this.options;
    for (const path of [this.dataPath, this.indexPath]) if (existsSync(path)) pool.useSync(path, (fd) => ftruncateSync(fd, 0));
  }

  /**
   * Reads the index and checks its tail against the data: records whose
   * line is not (wholly) in the data file are a torn write, never
   * acknowledged; they and any data after the last good record are cut.
   * False when the index cannot be used at all.
   */
  private openIndex(): boolean {
    const { pool } = this.options;
    return pool.useSync(this.indexPath, (fd) => {
      const size = fstatSync(fd).size;
      if (size < RECORD) return false;
      const head = Buffer.alloc(RECORD);
      readSync(fd, head, 0, RECORD, 0);
      if (head.toString("latin1", 0, 8) !== MAGIC) return false;
      if (head.toString("latin1", 8, 24).replace(/\0+$/, "") !== (this.header.file ?? "")) return false;
      this.baseSeq = head.readDoubleBE(24);
      let count = Math.floor((size - RECORD) / RECORD);
      let last: IndexRecord | undefined;
      while (count > 0) {
        last = readRecordSync(fd, RECORD + (count - 1) * RECORD);
        if (last.seq === this.baseSeq + count - 1 && last.offset + last.length <= this.dataSize && this.lineStartsWith(last)) break;
        count--;
        last = undefined;
      }
      this.records = count;
      if (size !== RECORD + count * RECORD) ftruncateSync(fd, RECORD + count * RECORD);
      const end = last ? last.offset + last.length : this.headerBytes;
      if (this.dataSize !== end) {
        pool.useSync(this.dataPath, (data) => ftruncateSync(data, end));
        this.dataSize = end;
      }
      this.lastSeq = last ? last.seq : this.baseSeq - 1;
      this.lastCreatedAt = last?.createdAt ?? 0;
      return true;
    });
  }

  private lineStartsWith(record: IndexRecord): boolean {
    const expected = `{"s":${record.seq},`;
    const bytes = Buffer.alloc(expected.length);
    this.options.pool.useSync(this.dataPath, (fd) => readSync(fd, bytes, 0, bytes.length, record.offset));
    return bytes.toString("utf8") === expected;
  }

  /**
   * Builds the index again from the data file (a file from before indexes,
   * an index that does not match its data, a crash mid-compaction): every
   * whole line in order. A line that breaks the order (corruption, not a
   * torn tail) ends what is kept, and the topic starts a new epoch, since
   * positions after it may have been seen.
   */
  private rebuildIndex(): void {
    const { pool } = this.options;
    const records: IndexRecord[] = [];
    let broken = false;
    let end = this.headerBytes;
    pool.useSync(this.dataPath, (fd) => {
      let carry = Buffer.alloc(0);
      let at = this.headerBytes;
      const chunk = Buffer.alloc(COPY_CHUNK);
      for (;;) {
        const n = readSync(fd, chunk, 0, chunk.length, at);
        if (n === 0) break;
        let buffer = carry.length ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
        const bufferStart = at - carry.length;
        at += n;
        let from = 0;
        for (let nl = buffer.indexOf(10, from); nl >= 0; nl = buffer.indexOf(10, from)) {
          const line = buffer.subarray(from, nl + 1);
          let parsed: { s?: unknown; t?: unknown; i?: unknown; p?: unknown } | undefined;
          try {
            parsed = JSON.parse(line.toString("utf8")) as typeof parsed;
          } catch {
            parsed = undefined;
          }
          const expected = records.length ? records.at(-1)!.seq + 1 : undefined;
          if (!parsed || typeof parsed.s !== "number" || typeof parsed.t !== "number" || (expected !== undefined && parsed.s !== expected)) {
            broken = true;
            break;
          }
          const digest = typeof parsed.p === "string" && typeof parsed.i === "string" ? idDigest(parsed.p, parsed.i) : "";
          records.push({ seq: parsed.s, offset: bufferStart + from, createdAt: parsed.t, length: line.length, flags: digest ? HAS_ID : 0, digest });
          end = bufferStart + nl + 1;
          from = nl + 1;
        }
        if (broken) break;
        carry = Buffer.from(buffer.subarray(from));
        buffer = Buffer.alloc(0);
      }
    });
    if (end !== this.dataSize) pool.useSync(this.dataPath, (fd) => ftruncateSync(fd, end));
    this.dataSize = end;
    if (broken) {
      this.header = { ...this.header, epoch: randomBytes(6).toString("base64url") };
      this.options.log(`history file of "${this.topic}" was damaged after position ${records.at(-1)?.seq ?? 0}: kept what came before, under a new epoch`);
    }
    // A header without a file name (an older file) gets one, so index and data are matched from now on.
    if (broken || !this.header.file) this.rewriteHeader({ ...this.header, file: this.header.file ?? randomBytes(8).toString("hex") }, records);
    this.baseSeq = records[0]?.seq ?? 1;
    this.records = records.length;
    const last = records.at(-1);
    this.lastSeq = last ? last.seq : 0;
    this.lastCreatedAt = last?.createdAt ?? 0;
    const tmp = `${this.indexPath}.rebuild`;
    pool.useSync(tmp, (fd) => {
      ftruncateSync(fd, 0);
      writeSync(fd, Buffer.concat([encodeIndexHeader(this.header.file ?? "", this.baseSeq), ...records.map(encodeRecord)]), 0, undefined, 0);
    });
    pool.invalidate(tmp);
    renameSync(tmp, this.indexPath);
    pool.invalidate(this.indexPath);
  }

  /** Replaces the header line, shifting the records' offsets by the change in its length. */
  private rewriteHeader(header: Header, records: IndexRecord[]): void {
    const { pool } = this.options;
    const line = Buffer.from(JSON.stringify(header) + "\n");
    const shift = line.length - this.headerBytes;
    const tmp = `${this.dataPath}.rebuild`;
    pool.useSync(tmp, (out) => {
      ftruncateSync(out, 0);
      writeSync(out, line, 0, line.length, 0);
      pool.useSync(this.dataPath, (fd) => {
        const chunk = Buffer.alloc(COPY_CHUNK);
        for (let at = this.headerBytes; at < this.dataSize; ) {
          const n = readSync(fd, chunk, 0, Math.min(chunk.length, this.dataSize - at), at);
          if (n === 0) break;
          writeSync(out, chunk, 0, n, at + shift);
          at += n;
        }
      });
    });
    pool.invalidate(tmp);
    renameSync(tmp, this.dataPath);
    pool.invalidate(this.dataPath);
    for (const r of records) r.offset += shift;
    this.dataSize += shift;
    this.headerBytes = line.length;
    this.header = header;
  }

  /** Ids of the last two minutes, from the index: a retry after a restart is still stored once. */
  private loadRecentIds(): void {
    if (this.lastSeq < this.firstSeq) return;
    const lo = this.firstAtOrAfterSync(Date.now() - DEDUP_WINDOW_MS);
    if (lo > this.lastSeq) return;
    const bytes = Buffer.alloc((this.lastSeq - lo + 1) * RECORD);
    this.options.pool.useSync(this.indexPath, (fd) => readSync(fd, bytes, 0, bytes.length, RECORD + (lo - this.baseSeq) * RECORD));
    for (let at = 0; at + RECORD <= bytes.length; at += RECORD) {
      const r = decodeRecord(bytes, at);
      if (r.flags & HAS_ID) this.recentIds.set(r.digest, { seq: r.seq, createdAt: r.createdAt });
    }
  }

  /** Removes both files (the topic is gone for good; used by tests of repair). */
  static remove(dataPath: string, indexPath: string): void {
    for (const path of [dataPath, indexPath]) if (existsSync(path)) unlinkSync(path);
  }
}

function encodeIndexHeader(file: string, baseSeq: number): Buffer {
  const out = Buffer.alloc(RECORD);
  out.write(MAGIC, 0, "latin1");
  out.write(file.slice(0, 16), 8, "latin1");
  out.writeDoubleBE(baseSeq, 24);
  return out;
}

function encodeRecord(r: IndexRecord): Buffer {
  const out = Buffer.alloc(RECORD);
  out.writeDoubleBE(r.seq, 0);
  out.writeDoubleBE(r.offset, 8);
  out.writeDoubleBE(r.createdAt, 16);
  out.writeUInt32BE(r.length, 24);
  out.writeUInt32BE(r.flags, 28);
  if (r.digest) out.write(r.digest, 32, "hex");
  return out;
}

function decodeRecord(bytes: Buffer, at: number): IndexRecord {
  return {
    seq: bytes.readDoubleBE(at),
    offset: bytes.readDoubleBE(at + 8),
    createdAt: bytes.readDoubleBE(at + 16),
    length: bytes.readUInt32BE(at + 24),
    flags: bytes.readUInt32BE(at + 28),
    digest: bytes.toString("hex", at + 32, at + 40),
  };
}

function readRecordSync(fd: number, position: number): IndexRecord {
  const bytes = Buffer.alloc(RECORD);
  readSync(fd, bytes, 0, RECORD, position);
  return decodeRecord(bytes, 0);
}

function parseLine(bytes: Buffer, seq: number): StoredMessage {
  const l = JSON.parse(bytes.toString("utf8")) as { s: number; i: string; e: string; d: string; u: string; c: string; t: number; o?: string };
  if (l.o !== undefined) return { seq: l.s, id: l.i, event: l.e, data: l.d, userId: l.u, connectionId: l.c, createdAt: l.t, old: l.o };
  if (l.s !== seq) throw new Error(`history index and data disagree at position ${seq}`);
  return { seq: l.s, id: l.i, event: l.e, data: l.d, userId: l.u, connectionId: l.c, createdAt: l.t };
}

/** The messages that fit in `maxBytes` (at least one), counted from the newest end when `newest`. */
function withinBytes(messages: StoredMessage[], maxBytes: number, newest: boolean): StoredMessage[] {
  if (maxBytes <= 0 || messages.length <= 1) return messages;
  let bytes = 0;
  if (newest) {
    for (let i = messages.length - 1; i >= 0; i--) {
      bytes += messageBytes(messages[i]!);
      if (bytes > maxBytes && i < messages.length - 1) return messages.slice(i + 1);
    }
  } else {
    for (let i = 0; i < messages.length; i++) {
      bytes += messageBytes(messages[i]!);
      if (bytes > maxBytes && i > 0) return messages.slice(0, i);
    }
  }
  return messages;
}
