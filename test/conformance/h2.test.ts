// HTTP/2 conformance, organised by section of RFC 9113 (and RFC 7541 for
// HPACK) the way h2spec is: each case sends raw frames and asserts the
// exact answer (GOAWAY or RST_STREAM code, response, or nothing).
//
// The suite runs against Chorus' own HTTP/2 server and against
// CHORUS_HTTP2=node (Node's http2 module, nghttp2). Where Node answers
// differently, the difference is recorded below (NODE_DIFFERS) and
// asserted as recorded, so the record cannot go stale; the counts are
// printed at the end.
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { encodeHeaders, type HeaderField } from "../../server/src/transport/h2/hpack.js";
import { closeRawConnections, ERROR, ERROR_NAME, FLAG, FRAME, RawConnection, requestFields, SETTING, settingsPayload, u32 } from "../helpers/h2-raw.js";
import { serverForSuite, sleep } from "../helpers/server.js";

type Outcome =
  | { kind: "connection-error"; code: number }
  | { kind: "stream-error"; code: number }
  | { kind: "status"; status: string }
  | { kind: "ignored" }
  | { kind: "closed" };

const connectionError = (code: number): Outcome => ({ kind: "connection-error", code });
const streamError = (code: number): Outcome => ({ kind: "stream-error", code });
const status = (s: string): Outcome => ({ kind: "status", status: s });
const IGNORED: Outcome = { kind: "ignored" };

function describeOutcome(o: Outcome): string {
  switch (o.kind) {
    case "connection-error":
      return `GOAWAY ${ERROR_NAME[o.code] ?? o.code}`;
    case "stream-error":
      return `RST_STREAM ${ERROR_NAME[o.code] ?? o.code}`;
    case "status":
      return `:status ${o.status}`;
    default:
      return o.kind;
  }
}

interface Case {
  section: string;
  title: string;
  /** SETTINGS the client sends with its preface. */
  settings?: Array<[number, number]>;
  /** Skip the preface and SETTINGS exchange (preface cases). */
  raw?: boolean;
  act(c: RawConnection): void | Promise<void>;
  /** The stream whose fate is observed (RST_STREAM or response); default 1. */
  stream?: number;
  expect: Outcome;
}

/** What the server did about a case: the first GOAWAY or RST_STREAM, else the stream's response, else nothing. */
async function observe(c: RawConnection, stream: number): Promise<Outcome> {
  const answered = await c.roundTrip(1500);
  const goAway = c.goAwayFrame();
  if (goAway && goAway.code !== ERROR.NO_ERROR) return connectionError(goAway.code);
  const reset = c.frames.find((f) => f.type === FRAME.RST_STREAM && f.stream === stream);
  if (reset) return streamError(reset.payload.readUInt32BE(0));
  if (!answered) return c.closed ? { kind: "closed" } : { kind: "ignored" };
  const headers = c.frames.find((f) => f.type === FRAME.HEADERS && f.stream === stream);
  if (headers) return status((await c.headers(stream)).get(":status") ?? "?");
  return IGNORED;
}

const POST = "/chorus.v1.RealtimeService/Publish";
const headers = (c: RawConnection, stream: number, fields: HeaderField[], flags = FLAG.END_HEADERS | FLAG.END_STREAM) => c.send(FRAME.HEADERS, flags, stream, encodeHeaders(fields));
const priority = (dependsOn: number, weight = 15) => Buffer.concat([u32(dependsOn), Buffer.from([weight])]);
/** A Listen session: the request ends, the response goes on (the stream is half-closed, remote). */
const openListen = async (c: RawConnection, stream: number) => {
  const envelope = Buffer.from([0, 0, 0, 0, 0]);
  c.send(FRAME.HEADERS, FLAG.END_HEADERS, stream, encodeHeaders(requestFields("/chorus.v1.RealtimeService/Listen", "POST", [["content-type", "application/connect+proto"]])));
  c.send(FRAME.DATA, FLAG.END_STREAM, stream, envelope);
  await c.headers(stream);
};
/** A GET served to its end (the stream is closed). */
const completeGet = async (c: RawConnection, stream: number) => {
  c.request(stream, "/healthz");
  await c.next((f) => f.type === FRAME.DATA && f.stream === stream && (f.flags & FLAG.END_STREAM) !== 0, "the response's end");
};
/** A literal header field without indexing, name and value as raw octets (bypasses the encoder's checks). */
const literal = (name: string, value: string) =>
  Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name, "latin1"), Buffer.from([value.length]), Buffer.from(value, "latin1")]);
const withField = (name: string, value: string, base = requestFields("/healthz")) => Buffer.concat([encodeHeaders(base), literal(name, value)]);

const cases: Case[] = [
  // ---- §3.4 HTTP/2 connection preface ----
  { section: "3.4", title: "a preface that is not HTTP/2's is not served as HTTP/2", raw: true, act: (c) => void c.socket.write("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"), expect: { kind: "closed" } },
  {
    section: "3.4",
    title: "the preface must be followed by SETTINGS",
    raw: true,
    act: (c) => {
      c.socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
      c.send(FRAME.PING, 0, 0, Buffer.alloc(8));
    },
    expect: connectionError(ERROR.PROTOCOL_ERROR),
  },

  // ---- §4.1 frame format ----
  { section: "4.1", title: "a frame of unknown type is ignored", act: (c) => c.send(0x20, 0, 0, Buffer.from("extension")), expect: IGNORED },
  { section: "4.1", title: "unknown flags are ignored", act: (c) => c.send(FRAME.PING, 0xfe, 0, Buffer.alloc(8)), expect: IGNORED },
  { section: "4.1", title: "the reserved bit of the stream id is ignored", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 0x80000001, encodeHeaders(requestFields("/healthz"))), expect: status("200") },

  // ---- §4.2 frame size ----
  { section: "4.2", title: "DATA larger than SETTINGS_MAX_FRAME_SIZE", act: (c) => (c.request(1, POST, { method: "POST", endStream: false }), c.send(FRAME.DATA, 0, 1, Buffer.alloc(16_385))), expect: connectionError(ERROR.FRAME_SIZE_ERROR) },
  { section: "4.2", title: "HEADERS larger than SETTINGS_MAX_FRAME_SIZE", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS, 1, Buffer.concat([encodeHeaders(requestFields("/healthz")), Buffer.alloc(16_385)])), expect: connectionError(ERROR.FRAME_SIZE_ERROR) },

  // ---- §4.3 header compression and decompression ----
  { section: "4.3", title: "a header block that does not decode", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, Buffer.from([0xff, 0xff, 0xff, 0xff])), expect: connectionError(ERROR.COMPRESSION_ERROR) },
  {
    section: "4.3",
    title: "a PRIORITY frame inside a header block",
    act: (c) => {
      c.send(FRAME.HEADERS, FLAG.END_STREAM, 1, encodeHeaders(requestFields("/healthz")));
      c.send(FRAME.PRIORITY, 0, 1, priority(0));
      c.send(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, encodeHeaders([["x-a", "b"]]));
    },
    expect: connectionError(ERROR.PROTOCOL_ERROR),
  },

  // ---- §5.1 stream states ----
  { section: "5.1", title: "idle: DATA", act: (c) => c.send(FRAME.DATA, 0, 1, Buffer.from("x")), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "5.1", title: "idle: RST_STREAM", act: (c) => c.send(FRAME.RST_STREAM, 0, 1, u32(ERROR.CANCEL)), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "5.1", title: "idle: WINDOW_UPDATE", act: (c) => c.send(FRAME.WINDOW_UPDATE, 0, 1, u32(100)), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "5.1", title: "idle: CONTINUATION", act: (c) => c.send(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, encodeHeaders(requestFields("/healthz"))), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "5.1", title: "half-closed (remote): DATA", act: async (c) => (await openListen(c, 1), c.send(FRAME.DATA, 0, 1, Buffer.from("x"))), expect: streamError(ERROR.STREAM_CLOSED) },
  { section: "5.1", title: "half-closed (remote): HEADERS", act: async (c) => (await openListen(c, 1), headers(c, 1, [["x-trailer", "1"]])), expect: streamError(ERROR.STREAM_CLOSED) },
  {
    section: "5.1",
    title: "closed after the client's RST_STREAM: DATA",
    act: async (c) => {
      c.request(1, POST, { method: "POST", endStream: false, extra: [["content-type", "application/proto"]] });
      c.send(FRAME.RST_STREAM, 0, 1, u32(ERROR.CANCEL));
      await c.roundTrip();
      c.send(FRAME.DATA, 0, 1, Buffer.from("x"));
    },
    expect: streamError(ERROR.STREAM_CLOSED),
  },
  { section: "5.1", title: "closed after both ends: DATA", act: async (c) => (await completeGet(c, 1), c.send(FRAME.DATA, 0, 1, Buffer.from("x"))), expect: connectionError(ERROR.STREAM_CLOSED) },
  { section: "5.1", title: "closed after both ends: HEADERS", act: async (c) => (await completeGet(c, 1), c.request(1, "/healthz")), expect: connectionError(ERROR.STREAM_CLOSED) },
  { section: "5.1", title: "closed: WINDOW_UPDATE is allowed", act: async (c) => (await completeGet(c, 1), c.send(FRAME.WINDOW_UPDATE, 0, 1, u32(100))), stream: 3, expect: IGNORED },
  { section: "5.1", title: "closed: PRIORITY is allowed", act: async (c) => (await completeGet(c, 1), c.send(FRAME.PRIORITY, 0, 1, priority(0))), stream: 3, expect: IGNORED },

  // ---- §5.1.1 stream identifiers ----
  { section: "5.1.1", title: "an even stream id", act: (c) => c.request(2, "/healthz"), stream: 2, expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "5.1.1", title: "a stream id lower than one already opened", act: async (c) => (await completeGet(c, 5), c.request(3, "/healthz")), stream: 3, expect: connectionError(ERROR.PROTOCOL_ERROR) },

  // ---- §5.1.2 stream concurrency ----
  {
    section: "5.1.2",
    title: "streams past SETTINGS_MAX_CONCURRENT_STREAMS are refused",
    act: (c) => {
      for (let k = 0; k <= 1000; k++) c.request(1 + 2 * k, POST, { method: "POST", endStream: false, extra: [["content-type", "application/proto"]] });
    },
    stream: 2001,
    expect: streamError(ERROR.REFUSED_STREAM),
  },

  // ---- §5.3.1 stream dependencies ----
  { section: "5.3.1", title: "HEADERS depending on its own stream", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM | FLAG.PRIORITY, 1, Buffer.concat([priority(1), encodeHeaders(requestFields("/healthz"))])), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "5.3.1", title: "PRIORITY depending on its own stream", act: (c) => c.send(FRAME.PRIORITY, 0, 1, priority(1)), expect: streamError(ERROR.PROTOCOL_ERROR) },

  // ---- §5.5 extending HTTP/2 ----
  {
    section: "5.5",
    title: "an unknown frame inside a header block",
    act: (c) => {
      c.send(FRAME.HEADERS, FLAG.END_STREAM, 1, encodeHeaders(requestFields("/healthz")));
      c.send(0x20, 0, 1, Buffer.from("x"));
      c.send(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, encodeHeaders([["x-a", "b"]]));
    },
    expect: connectionError(ERROR.PROTOCOL_ERROR),
  },

  // ---- §6.1 DATA ----
  { section: "6.1", title: "DATA on stream 0", act: (c) => c.send(FRAME.DATA, 0, 0, Buffer.from("x")), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "6.1", title: "DATA whose padding exceeds the frame", act: (c) => (c.request(1, POST, { method: "POST", endStream: false, extra: [["content-type", "application/proto"]] }), c.send(FRAME.DATA, FLAG.PADDED, 1, Buffer.from([5, 1, 2]))), expect: connectionError(ERROR.PROTOCOL_ERROR) },

  // ---- §6.2 HEADERS ----
  { section: "6.2", title: "HEADERS on stream 0", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 0, encodeHeaders(requestFields("/healthz"))), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "6.2", title: "HEADERS whose padding exceeds the frame", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM | FLAG.PADDED, 1, Buffer.concat([Buffer.from([200]), encodeHeaders(requestFields("/healthz"))])), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  {
    section: "6.2",
    title: "DATA between HEADERS and its CONTINUATION",
    act: (c) => {
      c.send(FRAME.HEADERS, 0, 1, encodeHeaders(requestFields(POST, "POST")));
      c.send(FRAME.DATA, 0, 1, Buffer.from("x"));
    },
    expect: connectionError(ERROR.PROTOCOL_ERROR),
  },
  {
    section: "6.2",
    title: "a padded HEADERS frame with a priority is served",
    act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM | FLAG.PADDED | FLAG.PRIORITY, 1, Buffer.concat([Buffer.from([4]), priority(0), encodeHeaders(requestFields("/healthz")), Buffer.alloc(4)])),
    expect: status("200"),
  },

  // ---- §6.3 PRIORITY ----
  { section: "6.3", title: "PRIORITY on stream 0", act: (c) => c.send(FRAME.PRIORITY, 0, 0, priority(1)), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "6.3", title: "PRIORITY of the wrong length", act: (c) => c.send(FRAME.PRIORITY, 0, 1, Buffer.alloc(4)), expect: streamError(ERROR.FRAME_SIZE_ERROR) },
  { section: "6.3", title: "PRIORITY on an idle stream is allowed", act: (c) => c.send(FRAME.PRIORITY, 0, 9, priority(0)), stream: 9, expect: IGNORED },

  // ---- §6.4 RST_STREAM ----
  { section: "6.4", title: "RST_STREAM on stream 0", act: (c) => c.send(FRAME.RST_STREAM, 0, 0, u32(ERROR.CANCEL)), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "6.4", title: "RST_STREAM of the wrong length", act: (c) => (c.request(1, POST, { method: "POST", endStream: false }), c.send(FRAME.RST_STREAM, 0, 1, Buffer.alloc(3))), expect: connectionError(ERROR.FRAME_SIZE_ERROR) },

  // ---- §6.5 SETTINGS ----
  { section: "6.5", title: "a SETTINGS ACK with a payload", act: (c) => c.send(FRAME.SETTINGS, FLAG.ACK, 0, Buffer.alloc(6)), expect: connectionError(ERROR.FRAME_SIZE_ERROR) },
  { section: "6.5", title: "SETTINGS on a stream", act: (c) => c.send(FRAME.SETTINGS, 0, 1, Buffer.alloc(0)), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "6.5", title: "SETTINGS whose length is not a multiple of 6", act: (c) => c.send(FRAME.SETTINGS, 0, 0, Buffer.alloc(7)), expect: connectionError(ERROR.FRAME_SIZE_ERROR) },
  { section: "6.5.2", title: "SETTINGS_ENABLE_PUSH above 1", act: (c) => c.send(FRAME.SETTINGS, 0, 0, settingsPayload([[SETTING.ENABLE_PUSH, 2]])), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "6.5.2", title: "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1", act: (c) => c.send(FRAME.SETTINGS, 0, 0, settingsPayload([[SETTING.INITIAL_WINDOW_SIZE, 2 ** 31]])), expect: connectionError(ERROR.FLOW_CONTROL_ERROR) },
  { section: "6.5.2", title: "SETTINGS_MAX_FRAME_SIZE below 16384", act: (c) => c.send(FRAME.SETTINGS, 0, 0, settingsPayload([[SETTING.MAX_FRAME_SIZE, 16_383]])), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "6.5.2", title: "SETTINGS_MAX_FRAME_SIZE above 2^24-1", act: (c) => c.send(FRAME.SETTINGS, 0, 0, settingsPayload([[SETTING.MAX_FRAME_SIZE, 2 ** 24]])), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "6.5.2", title: "an unknown setting is ignored", act: (c) => c.send(FRAME.SETTINGS, 0, 0, settingsPayload([[0xff, 1]])), expect: IGNORED },
  {
    section: "6.5.3",
    title: "SETTINGS are acknowledged",
    act: async (c) => {
      const acks = () => c.frames.filter((f) => f.type === FRAME.SETTINGS && f.flags & FLAG.ACK).length;
      const before = acks();
      c.send(FRAME.SETTINGS, 0, 0, settingsPayload([[SETTING.HEADER_TABLE_SIZE, 4096]]));
      await c.roundTrip();
      expect(acks()).toBe(before + 1);
    },
    expect: IGNORED,
  },
  { section: "6.5 (limit)", title: "more settings in one frame than the server accepts", act: (c) => c.send(FRAME.SETTINGS, 0, 0, settingsPayload(Array.from({ length: 100 }, () => [SETTING.HEADER_TABLE_SIZE, 4096] as [number, number]))), expect: connectionError(ERROR.ENHANCE_YOUR_CALM) },

  // ---- §6.7 PING ----
  {
    section: "6.7",
    title: "PING is answered with the same payload",
    act: async (c) => {
      c.send(FRAME.PING, 0, 0, Buffer.from("chorus!!"));
      await c.next((f) => f.type === FRAME.PING && (f.flags & FLAG.ACK) !== 0 && f.payload.toString() === "chorus!!", "the PING ACK");
    },
    expect: IGNORED,
  },
  {
    section: "6.7",
    title: "a PING ACK is not answered",
    act: async (c) => {
      c.send(FRAME.PING, FLAG.ACK, 0, Buffer.from("unasked!"));
      await c.roundTrip();
      expect(c.frames.some((f) => f.type === FRAME.PING && f.payload.toString() === "unasked!")).toBe(false);
    },
    expect: IGNORED,
  },
  { section: "6.7", title: "PING on a stream", act: (c) => c.send(FRAME.PING, 0, 1, Buffer.alloc(8)), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "6.7", title: "PING of the wrong length", act: (c) => c.send(FRAME.PING, 0, 0, Buffer.alloc(6)), expect: connectionError(ERROR.FRAME_SIZE_ERROR) },

  // ---- §6.8 GOAWAY ----
  { section: "6.8", title: "GOAWAY on a stream", act: (c) => c.send(FRAME.GOAWAY, 0, 1, Buffer.concat([u32(0), u32(0)])), expect: connectionError(ERROR.PROTOCOL_ERROR) },

  // ---- §6.9 WINDOW_UPDATE ----
  { section: "6.9", title: "WINDOW_UPDATE of 0 on the connection", act: (c) => c.send(FRAME.WINDOW_UPDATE, 0, 0, u32(0)), expect: connectionError(ERROR.PROTOCOL_ERROR) },
  { section: "6.9", title: "WINDOW_UPDATE of 0 on a stream", act: (c) => (c.request(1, POST, { method: "POST", endStream: false, extra: [["content-type", "application/proto"]] }), c.send(FRAME.WINDOW_UPDATE, 0, 1, u32(0))), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "6.9", title: "WINDOW_UPDATE of the wrong length", act: (c) => c.send(FRAME.WINDOW_UPDATE, 0, 0, Buffer.alloc(3)), expect: connectionError(ERROR.FRAME_SIZE_ERROR) },
  { section: "6.9.1", title: "a connection window past 2^31-1", act: (c) => (c.send(FRAME.WINDOW_UPDATE, 0, 0, u32(2 ** 31 - 1)), c.send(FRAME.WINDOW_UPDATE, 0, 0, u32(2 ** 31 - 1))), expect: connectionError(ERROR.FLOW_CONTROL_ERROR) },
  {
    section: "6.9.1",
    title: "a stream window past 2^31-1",
    act: (c) => {
      c.request(1, POST, { method: "POST", endStream: false, extra: [["content-type", "application/proto"]] });
      c.send(FRAME.WINDOW_UPDATE, 0, 1, u32(2 ** 31 - 1));
      c.send(FRAME.WINDOW_UPDATE, 0, 1, u32(2 ** 31 - 1));
    },
    expect: streamError(ERROR.FLOW_CONTROL_ERROR),
  },
  {
    section: "6.9.1",
    title: "the server sends no more DATA than the client's window, and the rest as it opens",
    settings: [[SETTING.INITIAL_WINDOW_SIZE, 10]],
    act: async (c) => {
      c.request(1, "/healthz");
      await c.headers(1);
      await c.roundTrip();
      expect(c.body(1).length).toBe(10);
      c.send(FRAME.WINDOW_UPDATE, 0, 1, u32(1000));
      await c.next((f) => f.type === FRAME.DATA && (f.flags & FLAG.END_STREAM) !== 0, "the rest of the body");
      expect(JSON.parse(c.body(1).toString()).status).toBe("ok");
    },
    expect: status("200"),
  },
  {
    section: "6.9.2",
    title: "SETTINGS_INITIAL_WINDOW_SIZE pushing an open stream's window past 2^31-1",
    act: (c) => {
      c.request(1, POST, { method: "POST", endStream: false, extra: [["content-type", "application/proto"]] });
      c.send(FRAME.WINDOW_UPDATE, 0, 1, u32(2 ** 31 - 1 - 65_535));
      c.send(FRAME.SETTINGS, 0, 0, settingsPayload([[SETTING.INITIAL_WINDOW_SIZE, 2 ** 31 - 1]]));
    },
    expect: connectionError(ERROR.FLOW_CONTROL_ERROR),
  },

  // ---- §6.10 CONTINUATION ----
  {
    section: "6.10",
    title: "CONTINUATION after END_HEADERS",
    act: (c) => {
      c.send(FRAME.HEADERS, FLAG.END_HEADERS, 1, encodeHeaders(requestFields(POST, "POST", [["content-type", "application/proto"]])));
      c.send(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, encodeHeaders([["x-a", "b"]]));
    },
    expect: connectionError(ERROR.PROTOCOL_ERROR),
  },
  {
    section: "6.10",
    title: "CONTINUATION on another stream",
    act: (c) => {
      c.send(FRAME.HEADERS, FLAG.END_STREAM, 1, encodeHeaders(requestFields("/healthz")));
      c.send(FRAME.CONTINUATION, FLAG.END_HEADERS, 3, encodeHeaders([["x-a", "b"]]));
    },
    expect: connectionError(ERROR.PROTOCOL_ERROR),
  },
  {
    section: "6.10",
    title: "a header block split over CONTINUATION frames is served",
    act: (c) => {
      const block = encodeHeaders(requestFields("/healthz"));
      c.send(FRAME.HEADERS, FLAG.END_STREAM, 1, block.subarray(0, 5));
      c.send(FRAME.CONTINUATION, 0, 1, block.subarray(5, 10));
      c.send(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, block.subarray(10));
    },
    expect: status("200"),
  },
  {
    section: "6.10 (limit)",
    title: "a header block continued without end",
    act: (c) => {
      c.send(FRAME.HEADERS, 0, 1, encodeHeaders([[":method", "GET"]]));
      for (let k = 0; k < 100; k++) c.send(FRAME.CONTINUATION, 0, 1, Buffer.alloc(0));
    },
    expect: connectionError(ERROR.ENHANCE_YOUR_CALM),
  },

  // ---- §8.1 HTTP message framing ----
  { section: "8.1", title: "trailers that do not end the stream", act: (c) => (c.request(1, POST, { method: "POST", endStream: false, extra: [["content-type", "application/proto"]] }), headers(c, 1, [["x-trailer", "1"]], FLAG.END_HEADERS)), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.1", title: "a pseudo-header in trailers", act: (c) => (c.request(1, POST, { method: "POST", endStream: false, extra: [["content-type", "application/proto"]] }), headers(c, 1, [[":path", "/"]])), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.1.1", title: "more DATA than content-length", act: (c) => (c.request(1, POST, { method: "POST", endStream: false, extra: [["content-type", "application/proto"], ["content-length", "2"]] }), c.send(FRAME.DATA, FLAG.END_STREAM, 1, Buffer.alloc(5))), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.1.1", title: "less DATA than content-length", act: (c) => (c.request(1, POST, { method: "POST", endStream: false, extra: [["content-type", "application/proto"], ["content-length", "10"]] }), c.send(FRAME.DATA, FLAG.END_STREAM, 1, Buffer.alloc(5))), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.1.1", title: "content-length on a request without a body", act: (c) => c.request(1, "/healthz", { extra: [["content-length", "3"]] }), expect: streamError(ERROR.PROTOCOL_ERROR) },
  {
    section: "8.1",
    title: "a response to HEAD carries no body",
    act: async (c) => {
      c.request(1, "/healthz", { method: "HEAD" });
      await c.next((f) => (f.type === FRAME.HEADERS || f.type === FRAME.DATA) && f.stream === 1 && (f.flags & FLAG.END_STREAM) !== 0, "the end of the response");
      expect(c.body(1).length).toBe(0);
    },
    expect: status("200"),
  },

  // ---- §8.2.1 field validity ----
  { section: "8.2.1", title: "an upper-case field name", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, withField("X-Upper", "1")), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.2.1", title: "a field name with a space", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, withField("x bad", "1")), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.2.1", title: "an empty field name", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, withField("", "1")), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.2.1", title: "a field value holding NUL", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, withField("x-a", "a\0b")), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.2.1", title: "a field value holding CR", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, withField("x-a", "a\rb")), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.2.1", title: "a field value holding LF", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, withField("x-a", "a\nb")), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.2.1", title: "a field value starting with a space", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, withField("x-a", " a")), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.2.1", title: "an authorization value holding CR LF reaches no handler", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, withField("authorization", "Bearer a\r\nb", requestFields("/chorus.v1.RealtimeService/Listen", "POST", [["content-type", "application/connect+proto"]]))), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.2.1", title: "an origin holding CR LF reaches no CORS answer", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, withField("origin", "http://a\r\nset-cookie: x", requestFields("/healthz", "OPTIONS", [["access-control-request-method", "POST"]]))), expect: streamError(ERROR.PROTOCOL_ERROR) },

  // ---- §8.2.2 connection-specific fields ----
  ...["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"].map(
    (name): Case => ({ section: "8.2.2", title: `the connection-specific field ${name}`, act: (c) => c.request(1, "/healthz", { extra: [[name, name === "upgrade" ? "h2c" : "close"]] }), expect: streamError(ERROR.PROTOCOL_ERROR) }),
  ),
  { section: "8.2.2", title: "te other than trailers", act: (c) => c.request(1, "/healthz", { extra: [["te", "gzip"]] }), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.2.2", title: "te: trailers is served", act: (c) => c.request(1, "/healthz", { extra: [["te", "trailers"]] }), expect: status("200") },

  // ---- §8.3.1 request pseudo-header fields ----
  { section: "8.3.1", title: "an unknown pseudo-header", act: (c) => c.request(1, "", { fields: [...requestFields("/healthz"), [":foo", "bar"]] }), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.3.1", title: "a response pseudo-header in a request", act: (c) => c.request(1, "", { fields: [...requestFields("/healthz"), [":status", "200"]] }), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.3.1", title: "a pseudo-header after a regular field", act: (c) => c.request(1, "", { fields: [[":method", "GET"], [":scheme", "http"], ["x-a", "b"], [":path", "/healthz"]] }), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.3.1", title: "a repeated :method", act: (c) => c.request(1, "", { fields: [...requestFields("/healthz"), [":method", "GET"]] }), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.3.1", title: "a repeated :path", act: (c) => c.request(1, "", { fields: [[":path", "/healthz"], ...requestFields("/healthz")] }), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.3.1", title: "no :method", act: (c) => c.request(1, "", { fields: [[":scheme", "http"], [":path", "/healthz"]] }), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.3.1", title: "no :scheme", act: (c) => c.request(1, "", { fields: [[":method", "GET"], [":path", "/healthz"]] }), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.3.1", title: "no :path", act: (c) => c.request(1, "", { fields: [[":method", "GET"], [":scheme", "http"]] }), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.3.1", title: "an empty :path", act: (c) => c.request(1, "", { fields: [[":method", "GET"], [":scheme", "http"], [":path", ""]] }), expect: streamError(ERROR.PROTOCOL_ERROR) },
  { section: "8.3.1", title: "host and :authority that differ", act: (c) => c.request(1, "/healthz", { extra: [["host", "elsewhere"]] }), expect: streamError(ERROR.PROTOCOL_ERROR) },

  // ---- RFC 7541 HPACK ----
  {
    section: "HPACK 4.2",
    title: "a dynamic table size update above the announced size",
    act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, Buffer.concat([Buffer.from([0x3f, 0xe1, 0x7f]), encodeHeaders(requestFields("/healthz"))])),
    expect: connectionError(ERROR.COMPRESSION_ERROR),
  },
  {
    section: "HPACK 4.2",
    title: "a dynamic table size update after a field",
    act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, Buffer.concat([encodeHeaders(requestFields("/healthz")), Buffer.from([0x20])])),
    expect: connectionError(ERROR.COMPRESSION_ERROR),
  },
  { section: "HPACK 2.3.3", title: "an index past the tables", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, Buffer.concat([encodeHeaders(requestFields("/healthz")), Buffer.from([0xff, 0x40])])), expect: connectionError(ERROR.COMPRESSION_ERROR) },
  { section: "HPACK 5.2", title: "a Huffman string holding EOS", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, Buffer.concat([encodeHeaders(requestFields("/healthz")), Buffer.from([0x00, 0x81, 0x41, 0x84, 0xff, 0xff, 0xff, 0xff])])), expect: connectionError(ERROR.COMPRESSION_ERROR) },
  { section: "HPACK 5.2", title: "a Huffman string padded with zeros", act: (c) => c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, Buffer.concat([encodeHeaders(requestFields("/healthz")), Buffer.from([0x00, 0x81, 0x41, 0x81, 0x00])])), expect: connectionError(ERROR.COMPRESSION_ERROR) },
  {
    section: "HPACK C.3",
    title: "three requests sharing the dynamic table are served",
    act: async (c) => {
      // RFC 7541 C.3.1-C.3.3 with :path /healthz: each block refers to entries the previous one added.
      const first = Buffer.from("828684410f7777772e6578616d706c652e636f6d", "hex");
      const path = Buffer.concat([Buffer.from([0x44, 8]), Buffer.from("/healthz")]);
      c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, Buffer.concat([first.subarray(0, 2), path, first.subarray(3)]));
      c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, Buffer.from("8286bfbe", "hex"));
      expect((await c.headers(1)).get(":status")).toBe("200");
    },
    stream: 3,
    expect: status("200"),
  },
  {
    section: "HPACK (limit)",
    title: "a header list too large to hold is answered 431",
    act: (c) => {
      // One 3000-byte entry added to the table, then referenced 25 times: 75 KB decoded from 3 KB.
      const entry = Buffer.concat([Buffer.from([0x40, 1]), Buffer.from("x"), Buffer.from([0x7f, 0xb9, 0x16]), Buffer.alloc(3000, "y")]);
      c.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, Buffer.concat([encodeHeaders(requestFields("/healthz")), entry, Buffer.alloc(25, 0xbe)]));
    },
    expect: status("431"),
  },

  // ---- abuse limits (no RFC section: what one connection may cost) ----
  {
    section: "abuse",
    title: "streams opened and reset by the client in a loop",
    act: (c) => {
      for (let k = 0; k < 1100; k++) {
        c.request(1 + 2 * k, POST, { method: "POST", endStream: false, extra: [["content-type", "application/proto"]] });
        c.send(FRAME.RST_STREAM, 0, 1 + 2 * k, u32(ERROR.CANCEL));
      }
    },
    expect: connectionError(ERROR.ENHANCE_YOUR_CALM),
  },
  {
    section: "abuse",
    title: "streams the server is made to reset in a loop (MadeYouReset)",
    act: (c) => {
      for (let k = 0; k < 1100; k++) {
        c.request(1 + 2 * k, POST, { method: "POST", endStream: false, extra: [["content-type", "application/proto"]] });
        c.send(FRAME.WINDOW_UPDATE, 0, 1 + 2 * k, u32(0));
      }
    },
    expect: connectionError(ERROR.ENHANCE_YOUR_CALM),
  },
  {
    section: "abuse",
    title: "empty DATA frames in a flood",
    act: (c) => {
      c.request(1, POST, { method: "POST", endStream: false, extra: [["content-type", "application/proto"]] });
      for (let k = 0; k < 1200; k++) c.send(FRAME.DATA, 0, 1, Buffer.alloc(0));
    },
    expect: connectionError(ERROR.ENHANCE_YOUR_CALM),
  },
];

/**
 * Where Node's http2 (nghttp2) answers otherwise than the RFC rule the
 * case asserts (or than Chorus' own limit), with what it does instead.
 */
const NODE_DIFFERS: Record<string, Outcome> = {
  // Node ends the session itself on nghttp2's frame errors, and its GOAWAY says INTERNAL_ERROR whatever the rule broken.
  "the preface must be followed by SETTINGS": connectionError(ERROR.INTERNAL_ERROR),
  "idle: RST_STREAM": connectionError(ERROR.INTERNAL_ERROR),
  "idle: WINDOW_UPDATE": connectionError(ERROR.INTERNAL_ERROR),
  "half-closed (remote): DATA": connectionError(ERROR.STREAM_CLOSED),
  "half-closed (remote): HEADERS": connectionError(ERROR.INTERNAL_ERROR),
  "closed after the client's RST_STREAM: DATA": IGNORED,
  "closed after both ends: DATA": status("200"),
  "closed after both ends: HEADERS": status("200"),
  "an even stream id": connectionError(ERROR.INTERNAL_ERROR),
  "a stream id lower than one already opened": IGNORED,
  "streams past SETTINGS_MAX_CONCURRENT_STREAMS are refused": connectionError(ERROR.INTERNAL_ERROR),
  "HEADERS depending on its own stream": connectionError(ERROR.INTERNAL_ERROR),
  "PRIORITY depending on its own stream": connectionError(ERROR.PROTOCOL_ERROR),
  "HEADERS on stream 0": connectionError(ERROR.INTERNAL_ERROR),
  "PRIORITY on stream 0": connectionError(ERROR.INTERNAL_ERROR),
  "PRIORITY of the wrong length": connectionError(ERROR.FRAME_SIZE_ERROR),
  "RST_STREAM on stream 0": connectionError(ERROR.INTERNAL_ERROR),
  "SETTINGS on a stream": connectionError(ERROR.INTERNAL_ERROR),
  "SETTINGS_ENABLE_PUSH above 1": connectionError(ERROR.INTERNAL_ERROR),
  "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1": connectionError(ERROR.INTERNAL_ERROR),
  "SETTINGS_MAX_FRAME_SIZE below 16384": connectionError(ERROR.INTERNAL_ERROR),
  "SETTINGS_MAX_FRAME_SIZE above 2^24-1": connectionError(ERROR.INTERNAL_ERROR),
  "a PING ACK is not answered": connectionError(ERROR.INTERNAL_ERROR),
  "PING on a stream": connectionError(ERROR.INTERNAL_ERROR),
  "GOAWAY on a stream": connectionError(ERROR.INTERNAL_ERROR),
  "WINDOW_UPDATE of 0 on the connection": connectionError(ERROR.INTERNAL_ERROR),
  "WINDOW_UPDATE of 0 on a stream": connectionError(ERROR.INTERNAL_ERROR),
  "a connection window past 2^31-1": connectionError(ERROR.INTERNAL_ERROR),
  "a stream window past 2^31-1": connectionError(ERROR.INTERNAL_ERROR),
  "SETTINGS_INITIAL_WINDOW_SIZE pushing an open stream's window past 2^31-1": streamError(ERROR.FLOW_CONTROL_ERROR),
  "a header block continued without end": connectionError(ERROR.INTERNAL_ERROR),
  "a field name with a space": status("200"),
  "an empty field name": status("200"),
  "a field value holding NUL": status("200"),
  "a field value holding CR": status("200"),
  "a field value holding LF": status("200"),
  "a field value starting with a space": status("200"),
  "an authorization value holding CR LF reaches no handler": status("200"),
  "an origin holding CR LF reaches no CORS answer": status("200"),
  "host and :authority that differ": status("200"),
  "a header list too large to hold is answered 431": streamError(ERROR.ENHANCE_YOUR_CALM),
  "streams opened and reset by the client in a loop": connectionError(ERROR.INTERNAL_ERROR),
  "streams the server is made to reset in a loop (MadeYouReset)": { kind: "closed" },
  "empty DATA frames in a flood": connectionError(ERROR.INTERNAL_ERROR),
};

const implementations = [
  { name: "chorus", env: {} as Record<string, string>, differs: {} as Record<string, Outcome> },
  { name: "node", env: { CHORUS_HTTP2: "node" }, differs: NODE_DIFFERS },
];

const tally: Record<string, { pass: number; differ: string[] }> = {};

afterEach(() => closeRawConnections());
afterAll(() => {
  for (const [name, t] of Object.entries(tally)) {
    console.log(`HTTP/2 conformance, ${name}: ${t.pass} of ${cases.length} cases as the RFC says${t.differ.length ? `; differs in ${t.differ.length}:\n  ${t.differ.join("\n  ")}` : ""}`);
  }
});

for (const impl of implementations) {
  describe(`HTTP/2 conformance (${impl.name})`, () => {
    const server = serverForSuite(impl.env);
    tally[impl.name] = { pass: 0, differ: [] };
    for (const k of cases) {
      it(`§${k.section}: ${k.title}`, async () => {
        const c = await RawConnection.connect(server.port, k.settings ?? [], { preface: !k.raw });
        await k.act(c);
        const actual = await observe(c, k.stream ?? 1);
        if (process.env.H2_RECORD) console.log(`RECORD ${impl.name} | ${k.title} | ${describeOutcome(actual)} | expected ${describeOutcome(k.expect)}`);
        const recorded = impl.differs[k.title];
        if (recorded) {
          expect(describeOutcome(actual), "Node's recorded difference").toBe(describeOutcome(recorded));
          tally[impl.name]!.differ.push(`§${k.section} ${k.title}: expected ${describeOutcome(k.expect)}, does ${describeOutcome(actual)}`);
        } else {
          expect(describeOutcome(actual)).toBe(describeOutcome(k.expect));
          tally[impl.name]!.pass++;
        }
        // A connection error ends the connection; anything less leaves it serving.
        if (actual.kind === "connection-error") await sleep(0);
      });
    }
  });
}
