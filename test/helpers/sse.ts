import * as http from "node:http";

/** One event as an EventSource would dispatch it. */
export interface SseEvent {
  event: string;
  data: string;
  /** The event's `id:`, or the last one before it (as EventSource keeps it). */
  lastEventId: string;
}

/**
 * A Server-Sent Events reader over node:http, parsing the stream as the
 * HTML standard says (fields, comments, the last event id), so a test sees
 * exactly what a browser's EventSource would, plus the comments and the
 * response's status and headers.
 */
export class SseReader {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  retry: number | undefined;
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  /** The body of a response that is not an event stream (a refusal). */
  body = "";
  ended = false;
  private lastEventId = "";
  private buffer = "";
  private pending: { event: string; data: string[] } = { event: "", data: [] };
  private readonly request: http.ClientRequest;
  private response: http.IncomingMessage | undefined;
  readonly opened: Promise<void>;

  constructor(url: string, headers: Record<string, string> = {}) {
    let opened!: () => void;
    let failed!: (error: Error) => void;
    this.opened = new Promise((resolve, reject) => ((opened = resolve), (failed = reject)));
    this.request = http.get(url, { headers: { accept: "text/event-stream", ...headers } }, (res) => {
      this.response = res;
      this.status = res.statusCode ?? 0;
      this.headers = res.headers;
      res.setEncoding("utf8");
      const stream = /^text\/event-stream/.test(String(res.headers["content-type"]));
      res.on("data", (chunk: string) => (stream ? this.feed(chunk) : (this.body += chunk)));
      res.on("end", () => (this.ended = true));
      res.on("close", () => (this.ended = true));
      res.on("error", () => (this.ended = true));
      opened();
    });
    this.request.on("error", (error) => {
      this.ended = true;
      failed(error);
    });
  }

  /** The events named `name`, their data parsed. */
  named<T = unknown>(name: string): T[] {
    return this.events.filter((e) => e.event === name).map((e) => JSON.parse(e.data) as T);
  }

  /** Stops reading (the server's writes back up), or reads again. */
  pause(): void {
    this.response?.pause();
  }

  resume(): void {
    this.response?.resume();
  }

  /** The id a browser would send back on reconnecting. */
  get lastId(): string {
    return this.lastEventId;
  }

  close(): void {
    this.request.destroy();
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) return;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === "") {
      if (this.pending.data.length > 0) this.events.push({ event: this.pending.event || "message", data: this.pending.data.join("\n"), lastEventId: this.lastEventId });
      this.pending = { event: "", data: [] };
      return;
    }
    if (line.startsWith(":")) return void this.comments.push(line.slice(1).trim());
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.pending.event = value;
    else if (field === "data") this.pending.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }
}
