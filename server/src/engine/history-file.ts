import { createHash, randomBytes } from "node:crypto";
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync } from "node:fs";
import { open, rename, writeFile, type FileHandle } from "node:fs/promises";
import { basename, join } from "node:path";
import { retentionFor, type Retention, type RetentionRule } from "./retention.js";

/** One persisted message as the memory engine keeps it. */
export interface StoredMessage {
  readonly seq: number;
  readonly id: string;
  readonly event: string;
  /** JSON text. */
  readonly data: string;
  readonly userId: string;
  readonly connectionId: string;
  /**
   * Milliseconds since the Unix epoch, strictly increasing within a topic
   * (a burst of more than one message per millisecond runs ahead of the
   * clock), so that paging with `before = created_at` never skips a message.
   */
  readonly createdAt: number;
}

export interface HistoryQuery {
  limit: number;
  /** Exclusive upper bound on createdAt; 0 for none. */
  before: number;
  /** Exclusive upper bound on seq; 0 for none. */
  beforeSeq: number;
}

export interface Recovery {
  /** Oldest first. */
  messages: StoredMessage[];
  epoch: string;
  /** The oldest retained seq (lastSeq + 1 when nothing is retained). */
  firstSeq: number;
  lastSeq: number;
}

export interface HistoryPage {
  /** Newest first. */
  messages: StoredMessage[];
  epoch: string;
  lastSeq: number;
  hasMore: boolean;
}

/**
 * Persisted history of the memory engine: one append-only JSON-lines file
 * per topic under the data directory, mirrored in memory once the topic is
 * first touched.
 *
 * The in-memory log is the truth while the process runs: a message gets its
 * seq synchronously, in publish order. Disk writes are batched per topic
 * (one write for everything appended while the previous write was under
 * way); the promise returned with each append settles when its line is in
 * the file, which is when a publish is acknowledged.
 */
export class FileHistory {
  private readonly logs = new Map<string, TopicLog>();
  /** File names of topics with history on disk (names are hashes: see fileOf). */
  private readonly files: Set<string>;

  constructor(
    private readonly dir: string,
    private readonly retention: readonly RetentionRule[],
  ) {
    mkdirSync(dir, { recursive: true });
    // This process is the only writer of its data directory: list it once,
    // so asking about a topic without history costs no I/O.
    this.files = new Set(readdirSync(dir).filter((name) => name.endsWith(".jsonl")));
  }

  /** The topic's log if it has any history, without creating one. */
  private existing(topic: string): TopicLog | undefined {
    const log = this.logs.get(topic);
    if (log) return log;
    return this.files.has(basename(this.fileOf(topic))) ? this.log(topic) : undefined;
  }

  append(topic: string, message: Omit<StoredMessage, "seq" | "createdAt">): { stored: StoredMessage; epoch: string; written: Promise<void> } {
    return this.log(topic).append(message);
  }

  query(topic: string, query: HistoryQuery): HistoryPage {
    // A topic nobody ever persisted to gets no file and no cache entry.
    return this.existing(topic)?.query(query) ?? { messages: [], epoch: "", lastSeq: 0, hasMore: false };
  }

  since(topic: string, seq: number, limit: number): Recovery {
    return this.existing(topic)?.since(seq, limit) ?? { messages: [], epoch: "", firstSeq: 1, lastSeq: 0 };
  }

  /** Waits for every pending write and closes the files. */
  async close(): Promise<void> {
    await Promise.all([...this.logs.values()].map((log) => log.close()));
    this.logs.clear();
  }

  private log(topic: string): TopicLog {
    let log = this.logs.get(topic);
    if (!log) {
      const file = this.fileOf(topic);
      log = new TopicLog(topic, file, retentionFor(this.retention, topic));
      this.files.add(basename(file));
      this.logs.set(topic, log);
    }
    return log;
  }

  /** Topics can be long and contain any segment character: name files by hash. */
  private fileOf(topic: string): string {
    return join(this.dir, `${createHash("sha256").update(topic).digest("hex").slice(0, 40)}.jsonl`);
  }
}

interface Header {
  v: 1;
  topic: string;
  epoch: string;
}

/** Compact on-disk record; keys are short because every line repeats them. */
interface Line {
  s: number;
  i: string;
  e: string;
  d: string;
  u: string;
  c: string;
  t: number;
}

class TopicLog {
  private readonly header: Header;
  /**
   * Ascending seq, contiguous. Entries before `head` are trimmed by
   * retention; the array is cut only now and then, so trimming one message
   * per append stays O(1).
   */
  private messages: StoredMessage[] = [];
  private head = 0;
  private lastSeq = 0;
  private lastCreatedAt = 0;
  /** Lines in the file, including those trimmed from memory but not yet compacted away. */
  private linesOnDisk = 0;
  private pending: string[] = [];
  private pendingWaiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private compactRequested = false;
  private writing: Promise<void> | undefined;
  private handle: FileHandle | undefined;

  constructor(
    topic: string,
    private readonly file: string,
    private readonly retention: Retention,
  ) {
    // Loaded synchronously on first touch so that a topic's first publish
    // gets its seq in order with everything after it.
    this.header = existsSync(file) ? this.load(topic) : this.create(topic);
    this.trim(Date.now());
  }

  append(message: Omit<StoredMessage, "seq" | "createdAt">): { stored: StoredMessage; epoch: string; written: Promise<void> } {
    const now = Date.now();
    this.trim(now);
    const stored: StoredMessage = {
      ...message,
      seq: ++this.lastSeq,
      createdAt: (this.lastCreatedAt = Math.max(now, this.lastCreatedAt + 1)),
    };
    this.messages.push(stored);
    const line: Line = { s: stored.seq, i: stored.id, e: stored.event, d: stored.data, u: stored.userId, c: stored.connectionId, t: stored.createdAt };
    this.pending.push(JSON.stringify(line) + "\n");
    const written = new Promise<void>((resolve, reject) => this.pendingWaiters.push({ resolve, reject }));
    this.linesOnDisk++;
    if (this.linesOnDisk > 2 * this.retention.maxMessages + 100) this.compactRequested = true;
    this.trim(now);
    this.writing ??= this.drain();
    return { stored, epoch: this.header.epoch, written };
  }

  query({ limit, before, beforeSeq }: HistoryQuery): HistoryPage {
    this.trim(Date.now());
    const firstSeq = this.lastSeq - (this.messages.length - this.head) + 1;
    let end = this.messages.length;
    if (beforeSeq > 0) end = Math.max(this.head, Math.min(end, this.head + beforeSeq - firstSeq));
    if (before > 0) end = Math.min(end, this.firstIndexAtOrAfter(before));
    const start = Math.max(this.head, end - limit);
    return {
      messages: this.messages.slice(start, end).reverse(),
      epoch: this.header.epoch,
      lastSeq: this.lastSeq,
      hasMore: start > this.head,
    };
  }

  since(seq: number, limit: number): Recovery {
    this.trim(Date.now());
    const firstSeq = this.lastSeq - (this.messages.length - this.head) + 1;
    const start = this.head + Math.max(0, seq + 1 - firstSeq);
    return { messages: this.messages.slice(start, start + limit), epoch: this.header.epoch, firstSeq, lastSeq: this.lastSeq };
  }

  async close(): Promise<void> {
    while (this.writing) await this.writing;
    await this.handle?.close();
    this.handle = undefined;
  }

  private firstIndexAtOrAfter(time: number): number {
    let lo = this.head;
    let hi = this.messages.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.messages[mid]!.createdAt < time) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Drops what retention no longer keeps (from memory; the file follows at compaction). */
  private trim(now: number): void {
    let head = Math.max(this.head, this.messages.length - this.retention.maxMessages);
    const oldest = now - this.retention.maxAgeMs;
    while (head < this.messages.length && this.messages[head]!.createdAt < oldest) head++;
    this.head = head;
    if (head > 1024 && head > this.messages.length / 2) {
      this.messages = this.messages.slice(head);
      this.head = 0;
    }
    if (this.linesOnDisk > (this.messages.length - this.head) * 2 + 100) this.compactRequested = true;
  }

  /** A new topic's file starts with its header, written with the first message. */
  private create(topic: string): Header {
    const header: Header = { v: 1, topic, epoch: randomBytes(6).toString("base64url") };
    this.pending.push(JSON.stringify(header) + "\n");
    return header;
  }

  private load(topic: string): Header {
    const text = readFileSync(this.file, "utf8");
    // A crash can leave a torn last line: cut the file back to its last
    // complete line so appends start on a clean one.
    const complete = text.lastIndexOf("\n") + 1;
    if (complete < text.length) {
      const fd = openSync(this.file, "r+");
      ftruncateSync(fd, Buffer.byteLength(text.slice(0, complete)));
      closeSync(fd);
    }
    const lines = text.slice(0, complete).split("\n");
    const header = JSON.parse(lines[0]!) as Header;
    if (header.v !== 1 || header.topic !== topic) {
      throw new Error(`history file ${this.file} belongs to "${header.topic}", not "${topic}"`);
    }
    for (let k = 1; k < lines.length; k++) {
      if (!lines[k]) continue;
      const l = JSON.parse(lines[k]!) as Line;
      // After a compaction interrupted before its rename, nothing repeats; but
      // never let a stale or repeated line break contiguity.
      if (l.s <= this.lastSeq) continue;
      if (l.s !== this.lastSeq + 1) this.messages = [];
      if (this.messages.length === 0) this.head = 0;
      this.messages.push({ seq: l.s, id: l.i, event: l.e, data: l.d, userId: l.u, connectionId: l.c, createdAt: l.t });
      this.lastSeq = l.s;
      this.lastCreatedAt = Math.max(this.lastCreatedAt, l.t);
      this.linesOnDisk++;
    }
    return header;
  }

  /** Writes pending lines (or a compacted file) until nothing is pending. */
  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0 || this.compactRequested) {
        const lines = this.pending;
        const waiters = this.pendingWaiters;
        this.pending = [];
        this.pendingWaiters = [];
        try {
          if (this.compactRequested) {
            await this.compact();
          } else {
            this.handle ??= await open(this.file, "a");
            await this.handle.write(lines.join(""));
          }
          for (const w of waiters) w.resolve();
        } catch (error) {
          for (const w of waiters) w.reject(error);
        }
      }
    } finally {
      this.writing = undefined;
    }
  }

  /** Rewrites the file with exactly the retained messages (which include every pending one). */
  private async compact(): Promise<void> {
    this.compactRequested = false;
    const body = [JSON.stringify(this.header)];
    for (const m of this.messages.slice(this.head)) {
      const line: Line = { s: m.seq, i: m.id, e: m.event, d: m.data, u: m.userId, c: m.connectionId, t: m.createdAt };
      body.push(JSON.stringify(line));
    }
    const tmp = `${this.file}.compact`;
    await writeFile(tmp, body.join("\n") + "\n");
    await this.handle?.close();
    this.handle = undefined;
    await rename(tmp, this.file);
    this.linesOnDisk = this.messages.length - this.head;
  }
}
