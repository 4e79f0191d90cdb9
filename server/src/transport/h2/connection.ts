import type * as net from "node:net";
import { RateLimit } from "../../rate-limit.js";
import { HpackDecoder, HpackError, encodeHeaders, type HeaderField } from "./hpack.js";
import { requestHead, trailersProblem, type RequestHead } from "./request-head.js";
import { H2Stream, type StreamOwner } from "./stream.js";

export type { RequestHead } from "./request-head.js";

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
 *
 * Nothing the peer sends can reach the process: a violation ends the
 * stream or the connection with the code RFC 9113 names, and a failure of
 * our own while serving one request resets that request's stream only.
 * What each rule and limit is, and why, is in README.md beside this file.
 */

/** Sockets corked in this turn (see H2Connection.send). */
let corked: net.Socket[] = [];

function uncorkAll(): void {
  const sockets = corked;
  corked = [];
  for (const socket of sockets) socket.uncork();
}

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
  SETTINGS_TIMEOUT: 4,
  STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6,
  REFUSED_STREAM: 7,
  CANCEL: 8,
  COMPRESSION_ERROR: 9,
  ENHANCE_YOUR_CALM: 11,
} as const;

const SETTING = { HEADER_TABLE_SIZE: 1, ENABLE_PUSH: 2, MAX_CONCURRENT_STREAMS: 3, INITIAL_WINDOW_SIZE: 4, MAX_FRAME_SIZE: 5, MAX_HEADER_LIST_SIZE: 6 } as const;

/** What a connection allows a peer; each has a reason in README.md. */
export interface H2Limits {
  /** Streams open at once (announced as SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxConcurrentStreams: number;
  /** Largest decoded header list; past it a request is answered 431. */
  maxHeaderListSize: number;
  /** Entries one SETTINGS frame may carry. */
  maxSettingsPerFrame: number;
  /** CONTINUATION frames one header block may take. */
  maxContinuations: number;
  /** Streams reset, by either side because of the peer, at once and per second after that. */
  resetBurst: number;
  resetsPerSecond: number;
  /** Frames that carry nothing (empty DATA without END_STREAM), at once and per second. */
  emptyFrameBurst: number;
  emptyFramesPerSecond: number;
  /** Bytes of control frames (PING and SETTINGS acks, resets) queued for a peer that does not read. */
  maxUnreadControlBytes: number;
}

export const DEFAULT_H2_LIMITS: H2Limits = {
  maxConcurrentStreams: 1000,
  maxHeaderListSize: 64 * 1024,
  maxSettingsPerFrame: 32,
  maxContinuations: 64,
  resetBurst: 1000,
  resetsPerSecond: 33,
  emptyFrameBurst: 1000,
  emptyFramesPerSecond: 100,
  maxUnreadControlBytes: 4 * 1024 * 1024,
};

/** Receive windows, per stream and per connection: HTTP/2's defaults (see README.md). */
const STREAM_WINDOW = 65_535;
const CONNECTION_WINDOW = 65_535;
const HEADER_TABLE_SIZE = 4096;
const MAX_FRAME_SIZE = 16_384;
const DEFAULT_WINDOW = 65_535;
const MAX_WINDOW = 2 ** 31 - 1;
/** Stream ids remembered as reset (by us or by the peer) to answer late frames on them rightly. */
const REMEMBERED_RESETS = 1024;
/** After GOAWAY, how long a peer that keeps its side open is waited for. */
const CLOSE_GRACE_MS = 2000;
/**
 * Requests one connection may start per event-loop turn. Starting one runs
 * its handler; a peer pipelining thousands of them in one write would
 * otherwise hold the loop for every other connection until it is done.
 */
const REQUESTS_PER_TURN = 32;

const EMPTY = Buffer.alloc(0);
/** No input held: shared by every connection until one holds some. */
const NO_INPUT: readonly Buffer[] = Object.freeze([]);
const LIVENESS_PING = Buffer.from("chorus:?");

export type RequestHandler = (stream: H2Stream, head: RequestHead) => void | Promise<void>;

export interface ConnectionHooks {
  /** A request's headers arrived. A throw or a rejection fails that stream only. */
  onRequest: RequestHandler;
  /** A failure of ours while serving this connection (for the log). */
  onError(error: unknown, context: string): void;
}

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
  private readonly decoder: HpackDecoder;
  /** Received bytes not yet making a whole frame. */
  private input = NO_INPUT as Buffer[];
  private inputBytes = 0;
  /** Preface bytes still to check. */
  private prefaceAt = 0;
  /** The first frame after the preface must be SETTINGS (§3.4). */
  private settingsSeen = false;
  private lastStreamId = 0;
  /** A header block still waiting for its CONTINUATION frames. */
  private headerBlock: { streamId: number; endStream: boolean; selfDependent: boolean; chunks: Buffer[]; size: number } | undefined;
  private sendWindow = DEFAULT_WINDOW;
  private peerStreamWindow = DEFAULT_WINDOW;
  private peerMaxFrameSize = 16_384;
  private recvWindow = CONNECTION_WINDOW;
  private unacked = 0;
  /** Made on first use: most connections never reset a stream. */
  private resets: RateLimit | undefined;
  private emptyFrames: RateLimit | undefined;
  private resetByUs: Set<number> | undefined;
  private resetByPeer: Set<number> | undefined;
  /** Ranges of stream ids the peer skipped (never opened): frames on them are not on closed streams. */
  private skipped: Array<[number, number]> | undefined;
  private goingAway = false;
  private closed = false;
  /** Streams waiting for the connection window. */
  private blocked: Set<H2Stream> | undefined;
  /** Streams waiting for the socket to drain. */
  private draining: Set<H2Stream> | undefined;
  /** When the connection last had no stream open (Date.now()), 0 while one is. */
  idleSince = Date.now();
  /** Whether a request has been received: the handshake is complete. */
  requestSeen = false;
  /** When a liveness PING was sent and not yet answered (0: none). */
  pingSentAt = 0;
  /** Requests started from the current chunk of input; past REQUESTS_PER_TURN reading waits for the next turn. */
  private startedThisTurn = 0;
  private yielded = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly hooks: ConnectionHooks,
    private readonly limits: H2Limits = DEFAULT_H2_LIMITS,
  ) {
    this.decoder = new HpackDecoder(HEADER_TABLE_SIZE, limits.maxHeaderListSize);
    socket.on("data", this.onBytes);
    socket.on("drain", this.onSocketDrain);
    socket.once("close", this.onSocketClose);
    this.sendSettings();
  }

  get socketFull(): boolean {
    return this.socket.writableNeedDrain;
  }

  /** The peer's address, for the log. */
  get peer(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  get openStreams(): number {
    return this.streams.size;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Graceful close: no new streams; the connection ends when the open ones have. */
  goAway(): void {
    if (this.goingAway || this.closed) return;
    this.goingAway = true;
    this.sendGoAway(H2_ERROR.NO_ERROR, "");
    if (this.streams.size === 0) this.socket.end();
  }

  /** Ends the connection now: GOAWAY with `code`, every stream closed; the socket goes after `graceMs`. */
  terminate(code: number, reason: string, graceMs = CLOSE_GRACE_MS): void {
    if (this.closed) return;
    this.sendGoAway(code, reason);
    this.closed = true;
    this.socket.end();
    // A peer that never closes its side is not waited for.
    setTimeout(() => this.socket.destroy(), graceMs).unref();
    this.closeStreams();
  }

  /** Asks the peer to prove it is there (PING); the listener ends the connection if no answer comes. */
  probe(): void {
    if (this.pingSentAt !== 0 || this.closed) return;
    this.pingSentAt = Date.now();
    this.control(FRAME.PING, 0, 0, LIVENESS_PING);
  }

  // ---- reading ----

  private readonly onBytes = (chunk: Buffer): void => {
    if (!this.yielded) this.startedThisTurn = 0;
    try {
      this.read(chunk);
    } catch (error) {
      if (error instanceof ConnectionError) return this.terminate(error.code, error.message);
      this.hooks.onError(error, `reading frames from ${this.peer}`);
      this.terminate(H2_ERROR.INTERNAL_ERROR, "internal error");
    }
  };

  private read(chunk: Buffer): void {
    if (this.closed) return;
    let buf: Buffer;
    if (this.inputBytes === 0) buf = chunk;
    else {
      // Gather small pieces until a whole frame (or header) is there: a peer
      // trickling bytes costs one copy per frame, not one per piece.
      this.input.push(chunk);
      this.inputBytes += chunk.length;
      if (this.inputBytes < this.needed()) return;
      buf = Buffer.concat(this.input, this.inputBytes);
      this.input = NO_INPUT as Buffer[];
      this.inputBytes = 0;
    }
    let pos = 0;
    if (this.prefaceAt < PREFACE.length) {
      const n = Math.min(buf.length, PREFACE.length - this.prefaceAt);
      if (!buf.subarray(0, n).equals(PREFACE.subarray(this.prefaceAt, this.prefaceAt + n))) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "bad connection preface");
      this.prefaceAt += n;
      pos = n;
    }
    while (buf.length - pos >= 9 && !this.closed) {
      if (this.startedThisTurn >= REQUESTS_PER_TURN) {
        this.yieldTurn();
        break;
      }
      const length = buf.readUIntBE(pos, 3);
      if (length > MAX_FRAME_SIZE) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, `frame of ${length} bytes exceeds ${MAX_FRAME_SIZE}`);
      if (buf.length - pos < 9 + length) break;
      const type = buf[pos + 3]!;
      const flags = buf[pos + 4]!;
      const streamId = buf.readUInt32BE(pos + 5) & 0x7fffffff;
      const payload = buf.subarray(pos + 9, pos + 9 + length);
      pos += 9 + length;
      this.frame(type, flags, streamId, payload);
    }
    if (pos < buf.length && !this.closed) {
      this.input = [pos === 0 ? buf : buf.subarray(pos)];
      this.inputBytes = buf.length - pos;
    }
  }

  /** Lets other connections run: reading resumes (with what is buffered) in the next turn. */
  private yieldTurn(): void {
    if (this.yielded) return;
    this.yielded = true;
    this.socket.pause();
    setImmediate(() => {
      this.yielded = false;
      if (this.closed) return;
      this.socket.resume();
      this.onBytes(EMPTY);
    });
  }

  /** Bytes the gathered input must reach before it is worth parsing. */
  private needed(): number {
    if (this.prefaceAt < PREFACE.length) return 1;
    const first = this.input[0]!;
    if (this.inputBytes < 9 || first.length < 3) return 9;
    return 9 + first.readUIntBE(0, 3);
  }

  private frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.settingsSeen) {
      if (type !== FRAME.SETTINGS || flags & ACK) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "the connection must start with SETTINGS");
      this.settingsSeen = true;
    }
    if (this.headerBlock && type !== FRAME.CONTINUATION) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "header block interrupted");
    switch (type) {
      case FRAME.DATA:
        return this.onData(flags, streamId, payload);
      case FRAME.HEADERS:
        return this.onHeaders(flags, streamId, payload);
      case FRAME.CONTINUATION:
        return this.onContinuation(flags, streamId, payload);
      case FRAME.PRIORITY:
        return this.onPriority(streamId, payload);
      case FRAME.RST_STREAM:
        return this.onReset(streamId, payload);
      case FRAME.SETTINGS:
        return this.onSettings(flags, streamId, payload);
      case FRAME.PUSH_PROMISE:
        throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "clients may not push");
      case FRAME.PING:
        return this.onPing(flags, streamId, payload);
      case FRAME.GOAWAY:
        if (streamId !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "GOAWAY on a stream");
        if (payload.length < 8) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "GOAWAY too short");
        // The peer opens no more streams; the open ones finish as usual.
        if (this.streams.size === 0) this.goAway();
        return;
      case FRAME.WINDOW_UPDATE:
        return this.onWindowUpdate(streamId, payload);
      default:
        return; // unknown frame types are ignored (§4.1)
    }
  }

  private onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "DATA on stream 0");
    const data = unpad(flags, payload);
    this.recvWindow -= payload.length;
    if (this.recvWindow < 0) throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "connection receive window exceeded");
    const endStream = (flags & END_STREAM) !== 0;
    if (payload.length === 0 && !endStream) this.spendEmpty();
    const stream = this.streams.get(streamId);
    if (!stream) {
      if (streamId > this.lastStreamId) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "DATA on an idle stream");
      // Closed streams still count against the connection window (§6.9).
      this.returnWindow(payload.length);
      return this.onClosedStream(streamId, "DATA");
    }
    if (stream.remoteEnded) {
      this.returnWindow(payload.length);
      return this.resetStream(streamId, H2_ERROR.STREAM_CLOSED); // half-closed (remote), §5.1
    }
    stream.recvWindow -= payload.length;
    if (stream.recvWindow < 0) {
      this.returnWindow(payload.length);
      return this.resetStream(streamId, H2_ERROR.FLOW_CONTROL_ERROR);
    }
    if (data.length < payload.length) this.consumed(stream, payload.length - data.length); // padding
    stream.received(data, endStream);
  }

  private onHeaders(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "HEADERS on stream 0");
    let block = payload;
    let padding = 0;
    if (flags & PADDED) {
      if (block.length < 1) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "HEADERS too short for its padding");
      padding = block[0]!;
      block = block.subarray(1);
    }
    let selfDependent = false;
    if (flags & PRIORITY) {
      if (block.length < 5) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "HEADERS too short for its priority");
      selfDependent = (block.readUInt32BE(0) & 0x7fffffff) === streamId;
      block = block.subarray(5);
    }
    if (padding > block.length) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "padding exceeds the frame");
    block = block.subarray(0, block.length - padding);
    this.headerBlock = { streamId, endStream: (flags & END_STREAM) !== 0, selfDependent, chunks: [block], size: block.length };
    if (flags & END_HEADERS) this.endHeaders();
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const block = this.headerBlock;
    if (!block || block.streamId !== streamId) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "unexpected CONTINUATION");
    block.chunks.push(payload);
    block.size += payload.length;
    // Empty CONTINUATION frames would never reach the size limit: their count has one too.
    if (block.size > this.limits.maxHeaderListSize || block.chunks.length > this.limits.maxContinuations) throw new ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, "header block too large");
    if (flags & END_HEADERS) this.endHeaders();
  }

  private endHeaders(): void {
    const { streamId, endStream, selfDependent, chunks } = this.headerBlock!;
    this.headerBlock = undefined;
    // Every block is decoded, even one about to be refused: HPACK state is the connection's.
    let decoded;
    try {
      decoded = this.decoder.decode(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    } catch (error) {
      if (error instanceof HpackError) throw new ConnectionError(H2_ERROR.COMPRESSION_ERROR, error.message);
      throw error;
    }
    const existing = this.streams.get(streamId);
    if (existing) {
      // A second HEADERS on an open stream is its trailers: they end it, and carry no pseudo-header (§8.1).
      if (existing.remoteEnded) return this.resetStream(streamId, H2_ERROR.STREAM_CLOSED);
      if (!endStream || decoded.oversized || trailersProblem(decoded.fields)) return this.resetStream(streamId, H2_ERROR.PROTOCOL_ERROR);
      return existing.received(EMPTY, true);
    }
    if (streamId % 2 === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, `HEADERS on even stream ${streamId}`);
    if (streamId <= this.lastStreamId) return this.onClosedStream(streamId, "HEADERS");
    if (streamId > this.lastStreamId + 2) {
      // Ids skipped are closed without ever being opened (§5.1.1).
      (this.skipped ??= []).push([this.lastStreamId + 1, streamId - 1]);
      if (this.skipped.length > 16) this.skipped.shift();
    }
    this.lastStreamId = streamId;
    this.requestSeen = true;
    if (selfDependent) return this.resetStream(streamId, H2_ERROR.PROTOCOL_ERROR); // §5.3.1
    if (this.goingAway || this.streams.size >= this.limits.maxConcurrentStreams) return this.resetStream(streamId, H2_ERROR.REFUSED_STREAM);
    if (decoded.oversized) {
      // Too large to read: answered here, as nghttp2 does.
      const stream = this.open(streamId, endStream, false, undefined);
      stream.respond([[":status", "431"]], true);
      return;
    }
    const result = requestHead(decoded.fields);
    if ("malformed" in result) return this.resetStream(streamId, H2_ERROR.PROTOCOL_ERROR); // §8.1.1
    const head = result.head;
    if (endStream && head.contentLength !== undefined && head.contentLength !== 0) return this.resetStream(streamId, H2_ERROR.PROTOCOL_ERROR);
    const stream = this.open(streamId, endStream, head.method === "HEAD", head.contentLength);
    this.startedThisTurn++;
    try {
      const pending = this.hooks.onRequest(stream, head);
      if (pending) pending.catch((error: unknown) => this.streamFailed(stream, error));
    } catch (error) {
      this.streamFailed(stream, error);
    }
  }

  private open(streamId: number, endStream: boolean, bodyless: boolean, contentLength: number | undefined): H2Stream {
    const stream = new H2Stream(this, streamId, this.peerStreamWindow, STREAM_WINDOW, endStream, bodyless, contentLength);
    this.streams.set(streamId, stream);
    this.idleSince = 0;
    return stream;
  }

  /**
   * A frame on a stream that is closed (§5.1): ignored when we reset the
   * stream (the frame was in flight), a stream error after the peer reset
   * it, a connection error STREAM_CLOSED when the peer had ended it, and
   * PROTOCOL_ERROR for a stream id it never opened (§5.1.1).
   */
  private onClosedStream(streamId: number, what: string): void {
    if (this.resetByUs?.has(streamId)) return;
    if (this.resetByPeer?.has(streamId)) return this.resetStream(streamId, H2_ERROR.STREAM_CLOSED);
    if (this.skipped?.some(([from, to]) => streamId >= from && streamId <= to)) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, `${what} on stream ${streamId}, which was never opened`);
    throw new ConnectionError(H2_ERROR.STREAM_CLOSED, `${what} on closed stream ${streamId}`);
  }

  private onPriority(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "PRIORITY on stream 0");
    if (payload.length !== 5) return this.resetStream(streamId, H2_ERROR.FRAME_SIZE_ERROR); // §6.3: a stream error
    // Priority signals are otherwise ignored (RFC 9113 deprecates them).
    if ((payload.readUInt32BE(0) & 0x7fffffff) === streamId) this.resetStream(streamId, H2_ERROR.PROTOCOL_ERROR);
  }

  /**
   * The peer cancels a stream. Each cancelled request has cost a handler
   * call, and cancelling frees its slot under the concurrency limit, so
   * cancellations share one budget with the resets we send (see spendReset).
   */
  private onReset(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "RST_STREAM on stream 0");
    if (payload.length !== 4) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "RST_STREAM frame of the wrong size");
    if (streamId > this.lastStreamId) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "RST_STREAM on an idle stream");
    const stream = this.streams.get(streamId);
    if (!stream) return;
    if (!this.spendReset()) return;
    this.remember((this.resetByPeer ??= new Set()), streamId);
    stream.close(payload.readUInt32BE(0));
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "SETTINGS on a stream");
    if (flags & ACK) {
      if (payload.length !== 0) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "SETTINGS ack with a payload");
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "SETTINGS of the wrong size");
    if (payload.length / 6 > this.limits.maxSettingsPerFrame) throw new ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, "too many settings in one frame");
    let initialWindow: number | undefined;
    for (let pos = 0; pos < payload.length; pos += 6) {
      const id = payload.readUInt16BE(pos);
      const value = payload.readUInt32BE(pos + 2);
      if (id === SETTING.ENABLE_PUSH && value > 1) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "ENABLE_PUSH must be 0 or 1");
      if (id === SETTING.INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW) throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large");
        initialWindow = value;
      }
      if (id === SETTING.MAX_FRAME_SIZE) {
        if (value < 16_384 || value > 16_777_215) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range");
        this.peerMaxFrameSize = value;
      }
      // HEADER_TABLE_SIZE: responses are never indexed. MAX_CONCURRENT_STREAMS: we never push.
    }
    // Applied once per frame, however often the frame repeats it: the streams are walked once.
    if (initialWindow !== undefined && initialWindow !== this.peerStreamWindow) {
      const delta = initialWindow - this.peerStreamWindow;
      this.peerStreamWindow = initialWindow;
      for (const stream of this.streams.values()) {
        stream.sendWindow += delta;
        if (stream.sendWindow > MAX_WINDOW) throw new ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, "stream window overflow");
      }
      if (delta > 0) for (const stream of [...this.streams.values()]) stream.flush();
    }
    this.control(FRAME.SETTINGS, ACK, 0, EMPTY);
  }

  private onPing(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(H2_ERROR.PROTOCOL_ERROR, "PING on a stream");
    if (payload.length !== 8) throw new ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, "PING frame of the wrong size");
    if (!(flags & ACK)) return this.control(FRAME.PING, ACK, 0, payload);
    if (payload.equals(LIVENESS_PING)) this.pingSentAt = 0;
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
      return; // closed: may still be in flight (§5.1)
    }
    if (increment === 0) return this.resetStream(streamId, H2_ERROR.PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.resetStream(streamId, H2_ERROR.FLOW_CONTROL_ERROR);
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
    if (stream.unacked >= STREAM_WINDOW / 2) {
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
    this.resetStream(stream.id, code);
    stream.close();
  }

  removed(stream: H2Stream): void {
    this.streams.delete(stream.id);
    this.blocked?.delete(stream);
    this.draining?.delete(stream);
    if (this.streams.size === 0) {
      this.idleSince = Date.now();
      if (this.goingAway && !this.closed) this.socket.end();
    }
  }

  /** A handler failed while serving `stream`: that stream is reset, the connection goes on. */
  streamFailed(stream: H2Stream, error: unknown): void {
    this.hooks.onError(error, `serving stream ${stream.id} of ${this.peer}`);
    stream.reset(H2_ERROR.INTERNAL_ERROR);
  }

  // ---- writing ----

  /**
   * Every frame goes out through here. The socket is corked at the first
   * frame of a turn and uncorked when the turn's work is done, so what one
   * turn writes to a connection (a response's HEADERS, DATA and trailers;
   * the answers to many calls; a flush's frames) leaves in one system call.
   */
  private send(frame: Buffer): void {
    const socket = this.socket;
    if (socket.writableCorked === 0) {
      socket.cork();
      if (corked.push(socket) === 1) process.nextTick(uncorkAll);
    }
    socket.write(frame);
  }

  private writeData(streamId: number, payload: Buffer, flags: number): void {
    if (flags === 0 && payload === sharedPayload && streamId === sharedStreamId) {
      this.send(sharedFrame);
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
    this.send(frame);
  }

  private write(type: number, flags: number, streamId: number, payload: Buffer): void {
    const frame = Buffer.allocUnsafe(9 + payload.length);
    frameHeader(frame, payload.length, type, flags, streamId);
    payload.copy(frame, 9);
    this.send(frame);
  }

  /** A frame the peer's own behaviour makes us send: refused when it is not reading what it asks for. */
  private control(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.closed) return;
    if (this.socket.writableLength > this.limits.maxUnreadControlBytes) return this.terminate(H2_ERROR.ENHANCE_YOUR_CALM, "peer is not reading");
    this.write(type, flags, streamId, payload);
  }

  private sendSettings(): void {
    const settings: Array<[number, number]> = [
      [SETTING.MAX_CONCURRENT_STREAMS, this.limits.maxConcurrentStreams],
      [SETTING.INITIAL_WINDOW_SIZE, STREAM_WINDOW],
      [SETTING.MAX_HEADER_LIST_SIZE, this.limits.maxHeaderListSize],
      [SETTING.ENABLE_PUSH, 0],
    ];
    const payload = Buffer.alloc(settings.length * 6);
    settings.forEach(([id, value], i) => {
      payload.writeUInt16BE(id, i * 6);
      payload.writeUInt32BE(value, i * 6 + 2);
    });
    this.write(FRAME.SETTINGS, 0, 0, payload);
  }

  /**
   * RST_STREAM for a stream error. Every reset the peer makes us send
   * (malformed requests, bad window updates, refused streams …) is spent
   * from the same budget as the resets it sends itself: otherwise a peer
   * could have the server reset streams for it in a loop, each after its
   * handler ran ("MadeYouReset").
   */
  private resetStream(streamId: number, code: number): void {
    if (this.closed) return;
    this.remember((this.resetByUs ??= new Set()), streamId);
    const stream = this.streams.get(streamId);
    if (!this.spendReset()) return;
    this.control(FRAME.RST_STREAM, 0, streamId, uint32(code));
    stream?.close();
  }

  /** Takes one reset from the budget; when it is spent the connection ends (ENHANCE_YOUR_CALM). */
  private spendReset(): boolean {
    this.resets ??= new RateLimit(this.limits.resetsPerSecond, this.limits.resetBurst);
    if (this.resets.take()) return true;
    this.terminate(H2_ERROR.ENHANCE_YOUR_CALM, "too many streams reset");
    return false;
  }

  private spendEmpty(): void {
    this.emptyFrames ??= new RateLimit(this.limits.emptyFramesPerSecond, this.limits.emptyFrameBurst);
    if (!this.emptyFrames.take()) throw new ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, "too many empty frames");
  }

  private remember(set: Set<number>, streamId: number): void {
    set.add(streamId);
    if (set.size > REMEMBERED_RESETS) set.delete(set.values().next().value!);
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
    if (this.unacked >= CONNECTION_WINDOW / 2) {
      this.control(FRAME.WINDOW_UPDATE, 0, 0, uint32(this.unacked));
      this.recvWindow += this.unacked;
      this.unacked = 0;
    }
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
