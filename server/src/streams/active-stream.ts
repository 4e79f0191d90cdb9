/** How a stream ended, as viewers read it in `stream:end`. */
export type StreamEnding = "done" | "error" | "cancelled";

/** What opens a stream. */
export interface StreamOpening {
  id: string;
  topic: string;
  /** The application's name for the response. */
  event: string;
  /** JSON text, or "" for none. */
  meta: string;
}

/** A stream under way as one node tells another (meta and values as JSON text). */
export interface SharedStream {
  id: string;
  node: string;
  event: string;
  meta: string;
  text: string;
  values: string[];
  chunks: number;
}

/** One chunk as the producer sent it: text, or a JSON value (as JSON text). */
export type Chunk = { text: string } | { value: string };

/**
 * One response being streamed into a topic: the whole of it so far (for
 * late joiners and the history message), and the chunks not yet sent
 * (coalesced: whatever arrives within one flush goes out as one
 * `stream:chunk`).
 */
export class ActiveStream {
  /** Chunks received. */
  chunks = 0;
  /** Bytes of text and values received. */
  bytes = 0;
  lastActivity = Date.now();
  private readonly text: string[] = [];
  private readonly values: string[] = [];
  /** Not yet sent: from chunk index `pendingFrom`, `pendingCount` chunks. */
  private pendingText: string[] = [];
  private pendingValues: string[] = [];
  private pendingFrom = 0;
  private pendingCount = 0;

  constructor(
    readonly opening: StreamOpening,
    /** Who produces it (an API key's scope, or a user's connection): for the per-producer limit. */
    readonly producer: string,
    /** The node it is produced on (other nodes end it if that node dies). */
    private readonly node: string,
  ) {}

  get id(): string {
    return this.opening.id;
  }

  get hasPending(): boolean {
    return this.pendingCount > 0;
  }

  add(chunk: Chunk): void {
    if (this.pendingCount === 0) this.pendingFrom = this.chunks;
    if ("text" in chunk) {
      this.text.push(chunk.text);
      this.pendingText.push(chunk.text);
      this.bytes += chunk.text.length;
    } else {
      this.values.push(chunk.value);
      this.pendingValues.push(chunk.value);
      this.bytes += chunk.value.length;
    }
    this.chunks++;
    this.pendingCount++;
    this.lastActivity = Date.now();
  }

  /** All of it so far, for another node that starts watching the topic. */
  shared(): SharedStream {
    return { id: this.id, node: this.node, event: this.opening.event, meta: this.opening.meta || "null", text: this.text.join(""), values: [...this.values], chunks: this.chunks };
  }

  /** `stream:start`'s data. */
  startData(): string {
    return `{"id":${JSON.stringify(this.id)},"event":${JSON.stringify(this.opening.event)},"meta":${this.opening.meta || "null"},"node":${JSON.stringify(this.node)}}`;
  }

  /** The chunks not yet sent, as one `stream:chunk`'s data; clears them. */
  takePending(): string {
    const data = chunkData(this.id, this.pendingFrom, this.pendingCount, this.pendingText, this.pendingValues);
    this.pendingText = [];
    this.pendingValues = [];
    this.pendingCount = 0;
    return data;
  }

  /** Everything so far as one `stream:chunk` (index 0): what a late joiner gets after `stream:start`. */
  soFarData(): string | undefined {
    const sent = this.chunks - this.pendingCount;
    if (sent === 0) return undefined;
    // What is pending goes out with the next flush, which the late joiner receives as well.
    return chunkData(this.id, 0, sent, this.text.slice(0, this.text.length - this.pendingText.length), this.values.slice(0, this.values.length - this.pendingValues.length));
  }

  /**
   * `stream:end`'s data: the finished response, as history keeps it; or,
   * `withText` false, all but the text and values (when the whole could
   * not be stored: viewers keep what they received).
   */
  endData(status: StreamEnding, error: string, withText = true): string {
    const values = withText && this.values.length > 0 ? `,"values":[${this.values.join(",")}]` : "";
    const text = withText ? `,"text":${JSON.stringify(this.text.join(""))}` : "";
    const why = status === "error" ? `,"error":${JSON.stringify(error)}` : "";
    return `{"id":${JSON.stringify(this.id)},"event":${JSON.stringify(this.opening.event)},"meta":${this.opening.meta || "null"},"status":"${status}"${why},"chunks":${this.chunks}${text}${values}}`;
  }
}

function chunkData(id: string, index: number, count: number, text: string[], values: string[]): string {
  const textPart = text.length > 0 ? `,"text":${JSON.stringify(text.join(""))}` : "";
  const valuesPart = values.length > 0 ? `,"values":[${values.join(",")}]` : "";
  return `{"id":${JSON.stringify(id)},"index":${index},"count":${count}${textPart}${valuesPart}}`;
}
