// A raw HTTP/2 client for tests: frames sent and read byte by byte, so a
// test can do what no stock client does (violations, floods, tiny windows)
// and see exactly how the server answers.
import * as net from "node:net";
import { H2_ERROR } from "../../server/src/transport/h2/connection.js";
import { HpackDecoder, encodeHeaders, type HeaderField } from "../../server/src/transport/h2/hpack.js";
import { eventually } from "./server.js";

export const FRAME = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;
export const ERROR = H2_ERROR;
export const ERROR_NAME = Object.fromEntries(Object.entries(ERROR).map(([name, code]) => [code, name])) as Record<number, string>;
export const SETTING = { HEADER_TABLE_SIZE: 1, ENABLE_PUSH: 2, MAX_CONCURRENT_STREAMS: 3, INITIAL_WINDOW_SIZE: 4, MAX_FRAME_SIZE: 5, MAX_HEADER_LIST_SIZE: 6 } as const;
export const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

export function settingsPayload(settings: Array<[number, number]>): Buffer {
  const payload = Buffer.alloc(settings.length * 6);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value >>> 0, i * 6 + 2);
  });
  return payload;
}

/** The fields of a GET for `path`, in order. */
export function requestFields(path: string, method = "GET", extra: HeaderField[] = []): HeaderField[] {
  return [[":method", method], [":scheme", "http"], [":authority", "localhost"], [":path", path], ...extra];
}

const open = new Set<RawConnection>();

/** Destroys every raw connection still open (call from afterEach). */
export function closeRawConnections(): void {
  for (const c of open) c.socket.destroy();
  open.clear();
}

export class RawConnection {
  readonly frames: Frame[] = [];
  closed = false;
  private input = Buffer.alloc(0);
  private readonly decoder = new HpackDecoder(4096, 1 << 20);

  constructor(readonly socket: net.Socket) {
    open.add(this);
    socket.on("data", (chunk: Buffer) => {
      this.input = Buffer.concat([this.input, chunk]);
      while (this.input.length >= 9 && this.input.length >= 9 + this.input.readUIntBE(0, 3)) {
        const length = this.input.readUIntBE(0, 3);
        this.frames.push({ type: this.input[3]!, flags: this.input[4]!, stream: this.input.readUInt32BE(5) & 0x7fffffff, payload: this.input.subarray(9, 9 + length) });
        this.input = this.input.subarray(9 + length);
      }
    });
    socket.on("close", () => {
      this.closed = true;
      open.delete(this);
    });
    socket.on("error", () => {});
  }

  /** Connects, sends the preface and `settings`, and acknowledges the server's SETTINGS. */
  static async connect(port: number, settings: Array<[number, number]> = [], options: { preface?: boolean } = {}): Promise<RawConnection> {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    const c = new RawConnection(socket);
    if (options.preface === false) return c;
    socket.write(PREFACE);
    c.send(FRAME.SETTINGS, 0, 0, settingsPayload(settings));
    await c.next((f) => f.type === FRAME.SETTINGS && !(f.flags & FLAG.ACK), "the server's SETTINGS");
    c.send(FRAME.SETTINGS, FLAG.ACK, 0, Buffer.alloc(0));
    return c;
  }

  send(type: number, flags: number, stream: number, payload: Buffer, lengthOverride?: number): void {
    const head = Buffer.alloc(9);
    head.writeUIntBE(lengthOverride ?? payload.length, 0, 3);
    head[3] = type;
    head[4] = flags;
    head.writeUInt32BE(stream >>> 0, 5);
    if (!this.socket.destroyed) this.socket.write(Buffer.concat([head, payload]));
  }

  /** HEADERS for a request, by default a GET that ends the stream. */
  request(stream: number, path: string, options: { method?: string; endStream?: boolean; extra?: HeaderField[]; fields?: HeaderField[] } = {}): void {
    const block = encodeHeaders(options.fields ?? requestFields(path, options.method, options.extra));
    this.send(FRAME.HEADERS, FLAG.END_HEADERS | (options.endStream === false ? 0 : FLAG.END_STREAM), stream, block);
  }

  async next(match: (f: Frame) => boolean, what: string, timeoutMs = 5000): Promise<Frame> {
    await eventually(() => this.frames.some(match) || this.closed, what, timeoutMs);
    const frame = this.frames.find(match);
    if (!frame) throw new Error(`connection closed before ${what}`);
    return frame;
  }

  /** The response fields of `stream`, decoded (the servers never index, so order does not matter). */
  async headers(stream: number): Promise<Map<string, string>> {
    const frame = await this.next((f) => f.type === FRAME.HEADERS && f.stream === stream, `HEADERS on stream ${stream}`);
    return new Map(this.decoder.decode(frame.payload).fields);
  }

  body(stream: number): Buffer {
    return Buffer.concat(this.frames.filter((f) => f.type === FRAME.DATA && f.stream === stream).map((f) => f.payload));
  }

  goAwayFrame(): { lastStream: number; code: number } | undefined {
    const frame = this.frames.find((f) => f.type === FRAME.GOAWAY);
    return frame && { lastStream: frame.payload.readUInt32BE(0), code: frame.payload.readUInt32BE(4) };
  }

  async goAway(): Promise<{ lastStream: number; code: number }> {
    await this.next((f) => f.type === FRAME.GOAWAY, "GOAWAY");
    return this.goAwayFrame()!;
  }

  /** Sends a PING and waits for its ACK: everything the server sent before it has arrived. */
  async roundTrip(timeoutMs = 3000): Promise<boolean> {
    const data = Buffer.from(Math.random().toString(36).slice(2, 10).padEnd(8, "0"));
    this.send(FRAME.PING, 0, 0, data);
    try {
      await this.next((f) => f.type === FRAME.PING && (f.flags & FLAG.ACK) !== 0 && f.payload.equals(data), "PING ack", timeoutMs);
      return true;
    } catch {
      return false;
    }
  }
}
