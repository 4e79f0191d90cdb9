import type * as net from "node:net";
import { HpackDecoder, HpackError, encodeHeaders, type HeaderField } from "./hpack.js";
import { H2Stream, type StreamOwner } from "./stream.js";

/**
 * The server side of one cleartext HTTP/2 connection (RFC 9113), on the
 * socket itself.
 *
 * Node's own HTTP/2 keeps about 22 KB of native memory per session and
 * crosses into C++ for every write; a realtime server holds tens of
 * thousands of mostly idle connections and writes one small DATA frame
 * per subscriber per flush. Here an idle connection is a socket and a few
 * small objects, and a DATA frame is one socket write of bytes that
 * subscribers on the same stream id share.
 */

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

const FRAME = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

export const H2_ERROR = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6,
  REFUSED_STREAM: 7,
  CANCEL: 8,
  COMPRESSION_ERROR: 9,
  ENHANCE_YOUR_CALM: 11,
} as const;

const SETTING = { HEADER_TABLE_SIZE: 1, ENABLE_PUSH: 2, MAX_CONCURRENT_STREAMS: 3, INITIAL_WINDOW_SIZE: 4, MAX_FRAME_SIZE: 5, MAX_HEADER_LIST_SIZE: 6 } as const;

/** What this server announces and enforces. */
const LOCAL = {
  headerTableSize: 4096,
  maxConcurrentStreams: 1000,
  /**
   * Receive windows, per stream and per connection: HTTP/2's defaults. They
   * pace a publisher's burst to what the server takes in a round trip, so a
   * burst reaches subscribers' queues spread out rather than all at once,
   * and bound what a peer can make us hold unread.
   */
  streamWindow: 65_535,
  connectionWindow: 65_535,
  maxFrameSize: 16_384,
  maxHeaderListSize: 64 * 1024,
};
const DEFAULT_WINDOW = 65_535;
const MAX_WINDOW = 2 ** 31 - 1;
/** Control frames a peer makes us queue while not reading (PING, SETTINGS acks) stop here. */
const MAX_UNREAD_BYTES = 4 * 1024 * 1024;

/** Streams a peer may reset at once, and per second after that (nghttp2's defaults). */
const RESET_BURST = 1000;
const RESETS_PER_SECOND = 33;
/** CONTINUATION frames one header block may take. */
const MAX_CONTINUATIONS = 64;

const EMPTY = Buffer.alloc(0);

export interface RequestHead {
  method: string;
  path: string;
  scheme: string;
  authority: string;
  /** Regular header fields; repeated names joined with ", ". */
  headers: Record<string, string>;
}

export type RequestHandler = (stream: H2Stream, head: RequestHead) => void;

class ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** The last DATA frame built and what it carried: subscribers on the same stream id share it. */
let sharedPayload: Buffer | undefined;
let sharedStreamId = 0;
let sharedFrame: Buffer = EMPTY;

function frameHeader(out: Buffer, length: number, type: number, flags: number, streamId: number): void {
  out.writeUIntBE(length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId, 5);
}

export class H2Connection implements StreamOwner {
  private readonly streams = new Map<number, H2Stream>();
  private readonly decoder = new HpackDecoder(LOCAL.headerTableSize, LOCAL.maxHeaderListSize);
  private input: Buffer = EMPTY;
  /** Preface bytes still to check. */
  private prefaceAt = 0;
  private lastStreamId = 0;
  /** A header block still waiting for its CONTINUATION frames. */
  private headerBlock: { streamId: number; endStream: boolean; chunks: Buffer[]; size: number } | undefined;
  private sendWindow = DEFAULT_WINDOW;
  private peerStreamWindow = DEFAULT_WINDOW;
  private peerMaxFrameSize = 16_384;
  private recvWindow = LOCAL.connectionWindow;
  private unacked = 0;
  private resetBudget = RESET_BURST;
  private resetCheckedAt = 0;
  private goingAway = false;
  private closed = false;
  /** Streams waiting for the connection window. */
  private blocked: Set<H2Stream> | undefined;
  /** Streams waiting for the socket to drain. */
  private draining: Set<H2Stream> | undefined;

  constructor(
    private readonly socket: net.Socket,
    private readonly onRequest: RequestHandler,
  ) {
    socket.on("data", this.onBytes);
    socket.on("drain", this.onSocketDrain);
    socket.once("close", this.onSocketClose);
    this.sendSettings();
  }

  get socketFull(): boolean {
    return this.socket.writableNeedDrain;
  }

  /** Graceful close: no new streams; the connection ends when the open ones have. */
  goAway(): void {
    if (this.goingAway || this.closed) return;
    this.goingAway = true;
    this.sendGoAway(H2_ERROR.NO_ERROR, "");
    if (this.streams.size === 0) this.socket.end();
  }

  // ---- reading ----

  private readonly onBytes = (chunk: Buffer): void => {
    let buf = this.input.length ? Buffer.concat([this.input, chunk]) : chunk;
    let pos = 0;
    try {
      if (this.prefaceAt < PREFACE.length) {
        const n = Math.min(buf.length, PREFACE.length - this.prefaceAt);
        if (!buf.subarray(0, n).equals(PREFACE.subarray(this.prefaceAt, this.prefaceAt + n))) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "bad connection preface");
        this.prefaceAt += n;
        pos = n;
      }
      while (buf.length - pos >= 9 && !this.closed) {
        const length = buf.readUIntBE(pos, 3);
        if (length > LOCAL.maxFrameSize) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, `frame of ${length} bytes exceeds ${LOCAL.maxFrameSize}`);
        if (buf.length - pos < 9 + length) break;
        const type = buf[pos + 3]!;
        const flags = buf[pos + 4]!;
        const streamId = buf.readUInt32BE(pos + 5) & 0x7fffffff;
        const payload = buf.subarray(pos + 9, pos + 9 + length);
        pos += 9 + length;
        this.frame(type, flags, streamId, payload);
      }
    } catch (error) {
      if (!(error instanceof ConnectionError)) throw error;
      return this.fail(error.code, error.message);
    }
    if (pos === buf.length) buf = EMPTY;
    else if (pos > 0) buf = buf.subarray(pos);
    this.input = buf;
  };

  private frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.headerBlock && type !== FRAME.CONTINUATION) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "header block interrupted");
    switch (type) {
      case FRAME.DATA:
        return this.onData(flags, streamId, payload);
      case FRAME.HEADERS:
        return this.onHeaders(flags, streamId, payload);
      case FRAME.CONTINUATION:
        return this.onContinuation(flags, streamId, payload);
      case FRAME.PRIORITY:
        if (payload.length !== 5) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "PRIORITY frame of the wrong size");
        return;
      case FRAME.RST_STREAM:
        if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "RST_STREAM on stream 0");
        if (payload.length !== 4) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "RST_STREAM frame of the wrong size");
        if (streamId > this.lastStreamId) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "RST_STREAM on an idle stream");
        return this.onReset(streamId, payload.readUInt32BE(0));
      case FRAME.SETTINGS:
        return this.onSettings(flags, streamId, payload);
      case FRAME.PUSH_PROMISE:
        throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "clients may not push");
      case FRAME.PING:
        if (streamId !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "PING on a stream");
        if (payload.length !== 8) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "PING frame of the wrong size");
        if (!(flags & ACK)) this.control(FRAME.PING, ACK, 0, payload);
        return;
      case FRAME.GOAWAY:
        // The peer opens no more streams; the open ones finish as usual.
        return;
      case FRAME.WINDOW_UPDATE:
        return this.onWindowUpdate(streamId, payload);
      default:
        return; // unknown frame types are ignored (RFC 9113 §4.1)
    }
  }

  private onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "DATA on stream 0");
    const data = unpad(flags, payload);
    this.recvWindow -= payload.length;
    if (this.recvWindow < 0) throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "connection receive window exceeded");
    const stream = this.streams.get(streamId);
    if (!stream || stream.remoteEnded) {
      if (streamId > this.lastStreamId) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "DATA on an idle stream");
      this.returnWindow(payload.length);
      // A stream we closed may still have DATA in flight: ignored. After END_STREAM it is an error.
      stream?.reset(H2_ERROR.STREAM_CLOSED);
      return;
    }
    stream.recvWindow -= payload.length;
    if (stream.recvWindow < 0) {
      this.returnWindow(payload.length);
      return stream.reset(H2_ERROR.FLOW_CONTROL_ERROR);
    }
    if (data.length < payload.length) this.consumed(stream, payload.length - data.length); // padding
    stream.received(data, (flags & END_STREAM) !== 0);
  }

  private onHeaders(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "HEADERS on stream 0");
    let block = unpad(flags, payload);
    if (flags & PRIORITY) {
      if (block.length < 5) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "HEADERS too short for its priority");
      block = block.subarray(5);
    }
    this.headerBlock = { streamId, endStream: (flags & END_STREAM) !== 0, chunks: [block], size: block.length };
    if (flags & END_HEADERS) this.endHeaders();
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const block = this.headerBlock;
    if (!block || block.streamId !== streamId) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "unexpected CONTINUATION");
    block.chunks.push(payload);
    block.size += payload.length;
    // Empty CONTINUATION frames would never reach the size limit: their count has one too.
    if (block.size > LOCAL.maxHeaderListSize || block.chunks.length > MAX_CONTINUATIONS) throw new ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, "header block too large");
    if (flags & END_HEADERS) this.endHeaders();
  }

  private endHeaders(): void {
    const { streamId, endStream, chunks } = this.headerBlock!;
    this.headerBlock = undefined;
    let decoded;
    try {
      decoded = this.decoder.decode(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    } catch (error) {
      if (error instanceof HpackError) throw new ConnectionError(H2_ERROR.COMPRESSION_ERROR, error.message);
      throw error;
    }
    const existing = this.streams.get(streamId);
    if (existing) {
      // Request trailers: they must end the stream. Chorus has no use for their fields.
      if (!endStream || existing.remoteEnded) return existing.reset(H2_ERROR.PROTOCOL_ERROR);
      return existing.received(EMPTY, true);
    }
    if (streamId % 2 === 0 || streamId <= this.lastStreamId) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, `HEADERS on stream ${streamId}, which cannot open now`);
    this.lastStreamId = streamId;
    if (this.goingAway || this.streams.size >= LOCAL.maxConcurrentStreams) return this.sendReset(streamId, H2_ERROR.REFUSED_STREAM);
    const head = decoded.oversized ? undefined : requestHead(decoded.fields);
    if (!decoded.oversized && !head) return this.sendReset(streamId, H2_ERROR.PROTOCOL_ERROR);
    const stream = new H2Stream(this, streamId, this.peerStreamWindow, LOCAL.streamWindow, endStream);
    this.streams.set(streamId, stream);
    if (!head) {
      // Too large to read: answered here, as nghttp2 does.
      stream.respond([[":status", "431"]], true);
      return;
    }
    this.onRequest(stream, head);
  }

  /**
   * The peer cancels a stream. Each cancelled request has cost a handler
   * call, and cancelling frees its slot under the concurrency limit, so
   * cancellations are rate-limited (a token bucket): a client opening and
   * resetting streams in a loop is told to calm down and disconnected.
   */
  private onReset(streamId: number, code: number): void {
    const stream = this.streams.get(streamId);
    if (!stream) return;
    const now = performance.now();
    this.resetBudget = Math.min(RESET_BURST, this.resetBudget + ((now - this.resetCheckedAt) / 1000) * RESETS_PER_SECOND);
    this.resetCheckedAt = now;
    if (--this.resetBudget < 0) throw new ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, "too many streams reset");
    stream.close(code);
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "SETTINGS on a stream");
    if (flags & ACK) {
      if (payload.length !== 0) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "SETTINGS ack with a payload");
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "SETTINGS of the wrong size");
    for (let pos = 0; pos < payload.length; pos += 6) {
      const id = payload.readUInt16BE(pos);
      const value = payload.readUInt32BE(pos + 2);
      if (id === SETTING.ENABLE_PUSH && value > 1) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "ENABLE_PUSH must be 0 or 1");
      if (id === SETTING.INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW) throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large");
        const delta = value - this.peerStreamWindow;
        this.peerStreamWindow = value;
        for (const stream of this.streams.values()) {
          stream.sendWindow += delta;
          if (stream.sendWindow > MAX_WINDOW) throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "stream window overflow");
        }
        if (delta > 0) for (const stream of [...this.streams.values()]) stream.flush();
      }
      if (id === SETTING.MAX_FRAME_SIZE) {
        if (value < 16_384 || value > 16_777_215) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range");
        this.peerMaxFrameSize = value;
      }
      // HEADER_TABLE_SIZE: responses are never indexed. MAX_CONCURRENT_STREAMS: we never push.
    }
    this.control(FRAME.SETTINGS, ACK, 0, EMPTY);
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "WINDOW_UPDATE of the wrong size");
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "connection window overflow");
      const waiting = this.blocked;
      this.blocked = undefined;
      if (waiting) for (const stream of waiting) stream.flush();
      return;
    }
    const stream = this.streams.get(streamId);
    if (!stream) {
      if (streamId > this.lastStreamId) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
      return;
    }
    if (increment === 0) return stream.reset(H2_ERROR.PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return stream.reset(H2_ERROR.FLOW_CONTROL_ERROR);
    stream.flush();
  }

  // ---- StreamOwner ----

  sendData(stream: H2Stream, chunk: Buffer, endStream: boolean): number {
    if (this.closed) return chunk.length;
    if (chunk.length === 0) {
      if (endStream) this.writeData(stream.id, chunk, END_STREAM);
      return 0;
    }
    let offset = 0;
    while (offset < chunk.length) {
      const n = Math.min(chunk.length - offset, stream.sendWindow, this.sendWindow, this.peerMaxFrameSize);
      if (n <= 0) break;
      const flags = endStream && offset + n === chunk.length ? END_STREAM : 0;
      this.writeData(stream.id, n === chunk.length ? chunk : chunk.subarray(offset, offset + n), flags);
      stream.sendWindow -= n;
      this.sendWindow -= n;
      offset += n;
    }
    return offset;
  }

  sendHeaders(streamId: number, fields: readonly HeaderField[], endStream: boolean): void {
    if (this.closed) return;
    const block = encodeHeaders(fields);
    const max = this.peerMaxFrameSize;
    if (block.length <= max) return this.write(FRAME.HEADERS, END_HEADERS | (endStream ? END_STREAM : 0), streamId, block);
    this.socket.cork();
    this.write(FRAME.HEADERS, endStream ? END_STREAM : 0, streamId, block.subarray(0, max));
    for (let pos = max; pos < block.length; pos += max) {
      this.write(FRAME.CONTINUATION, pos + max >= block.length ? END_HEADERS : 0, streamId, block.subarray(pos, pos + max));
    }
    this.socket.uncork();
  }

  consumed(stream: H2Stream, bytes: number): void {
    this.returnWindow(bytes);
    if (stream.remoteEnded || stream.isClosed) return;
    stream.unacked += bytes;
    if (stream.unacked >= LOCAL.streamWindow / 2) {
      this.control(FRAME.WINDOW_UPDATE, 0, stream.id, uint32(stream.unacked));
      stream.recvWindow += stream.unacked;
      stream.unacked = 0;
    }
  }

  waitForWindow(stream: H2Stream): void {
    // A stream's own window reopens with its own WINDOW_UPDATE; this set is for the connection's.
    if (this.sendWindow <= 0) (this.blocked ??= new Set()).add(stream);
  }

  waitForDrain(stream: H2Stream): void {
    (this.draining ??= new Set()).add(stream);
  }

  reset(stream: H2Stream, code: number): void {
    this.sendReset(stream.id, code);
    stream.close();
  }

  removed(stream: H2Stream): void {
    this.streams.delete(stream.id);
    this.blocked?.delete(stream);
    this.draining?.delete(stream);
    if (this.goingAway && this.streams.size === 0 && !this.closed) this.socket.end();
  }

  // ---- writing ----

  private writeData(streamId: number, payload: Buffer, flags: number): void {
    if (flags === 0 && payload === sharedPayload && streamId === sharedStreamId) {
      this.socket.write(sharedFrame);
      return;
    }
    const frame = Buffer.allocUnsafe(9 + payload.length);
    frameHeader(frame, payload.length, FRAME.DATA, flags, streamId);
    payload.copy(frame, 9);
    if (flags === 0) {
      sharedPayload = payload;
      sharedStreamId = streamId;
      sharedFrame = frame;
    }
    this.socket.write(frame);
  }

  private write(type: number, flags: number, streamId: number, payload: Buffer): void {
    const frame = Buffer.allocUnsafe(9 + payload.length);
    frameHeader(frame, payload.length, type, flags, streamId);
    payload.copy(frame, 9);
    this.socket.write(frame);
  }

  /** A frame the peer's own behaviour makes us send: refused when it is not reading what it asks for. */
  private control(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.closed) return;
    if (this.socket.writableLength > MAX_UNREAD_BYTES) return this.fail(H2_ERROR.ENHANCE_YOUR_CALM, "peer is not reading");
    this.write(type, flags, streamId, payload);
  }

  private sendSettings(): void {
    const settings: Array<[number, number]> = [
      [SETTING.MAX_CONCURRENT_STREAMS, LOCAL.maxConcurrentStreams],
      [SETTING.INITIAL_WINDOW_SIZE, LOCAL.streamWindow],
      [SETTING.MAX_HEADER_LIST_SIZE, LOCAL.maxHeaderListSize],
      [SETTING.ENABLE_PUSH, 0],
    ];
    const payload = Buffer.alloc(settings.length * 6);
    settings.forEach(([id, value], i) => {
      payload.writeUInt16BE(id, i * 6);
      payload.writeUInt32BE(value, i * 6 + 2);
    });
    this.write(FRAME.SETTINGS, 0, 0, payload);
    if (LOCAL.connectionWindow > DEFAULT_WINDOW) this.write(FRAME.WINDOW_UPDATE, 0, 0, uint32(LOCAL.connectionWindow - DEFAULT_WINDOW));
  }

  private sendReset(streamId: number, code: number): void {
    if (!this.closed) this.control(FRAME.RST_STREAM, 0, streamId, uint32(code));
  }

  private sendGoAway(code: number, reason: string): void {
    const payload = Buffer.alloc(8 + Buffer.byteLength(reason));
    payload.writeUInt32BE(this.lastStreamId, 0);
    payload.writeUInt32BE(code, 4);
    payload.write(reason, 8);
    this.write(FRAME.GOAWAY, 0, 0, payload);
  }

  private returnWindow(bytes: number): void {
    this.unacked += bytes;
    if (this.unacked >= LOCAL.connectionWindow / 2) {
      this.control(FRAME.WINDOW_UPDATE, 0, 0, uint32(this.unacked));
      this.recvWindow += this.unacked;
      this.unacked = 0;
    }
  }

  /** A connection error: GOAWAY with its code, then the connection ends. */
  private fail(code: number, reason: string): void {
    if (this.closed) return;
    this.sendGoAway(code, reason);
    this.closed = true;
    this.socket.end();
    // A peer that never closes its side is not waited for.
    setTimeout(() => this.socket.destroy(), 2000).unref();
    this.closeStreams();
  }

  private readonly onSocketDrain = (): void => {
    const waiting = this.draining;
    this.draining = undefined;
    if (waiting) for (const stream of waiting) stream.drained();
  };

  private readonly onSocketClose = (): void => {
    this.closed = true;
    this.closeStreams();
  };

  private closeStreams(): void {
    for (const stream of [...this.streams.values()]) stream.close(H2_ERROR.CANCEL);
  }
}

function unpad(flags: number, payload: Buffer): Buffer {
  if (!(flags & PADDED)) return payload;
  if (payload.length < 1 || payload[0]! >= payload.length) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "padding exceeds the frame");
  return payload.subarray(1, payload.length - payload[0]!);
}

function uint32(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(value, 0);
  return out;
}

/** Pseudo-headers and fields of a request, or undefined when it is malformed (RFC 9113 §8.3). */
function requestHead(fields: Array<[string, string]>): RequestHead | undefined {
  const head: RequestHead = { method: "", path: "", scheme: "", authority: "", headers: {} };
  let regular = false;
  for (const [name, value] of fields) {
    if (name.startsWith(":")) {
      if (regular) return undefined;
      if (name === ":method") head.method = value;
      else if (name === ":path") head.path = value;
      else if (name === ":scheme") head.scheme = value;
      else if (name === ":authority") head.authority = value;
      else return undefined;
      continue;
    }
    regular = true;
    if (name !== name.toLowerCase() || name === "connection") return undefined;
    const previous = head.headers[name];
    head.headers[name] = previous === undefined ? value : `${previous}${name === "cookie" ? "; " : ", "}${value}`;
  }
  if (!head.method || !head.path || !head.scheme) return undefined;
  if (!head.authority) head.authority = head.headers.host ?? "";
  return head;
}
