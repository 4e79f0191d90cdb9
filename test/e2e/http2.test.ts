// Chorus' own HTTP/2 connection, spoken to frame by frame: what a stock
// client never does (violations, floods, tiny windows) must end as RFC 9113
// says, and only for the offender.
import * as net from "node:net";
import { afterEach, expect, it } from "vitest";
import { H2Connection } from "../../server/src/transport/h2/connection.js";
import { HpackDecoder, encodeHeaders } from "../../server/src/transport/h2/hpack.js";
import { eventually, serverForSuite } from "../helpers/server.js";

const server = serverForSuite();

const DATA = 0, HEADERS = 1, RST_STREAM = 3, SETTINGS = 4, PING = 6, GOAWAY = 7, WINDOW_UPDATE = 8, CONTINUATION = 9;
const END_STREAM = 1, ACK = 1, END_HEADERS = 4;
const PROTOCOL_ERROR = 1, FLOW_CONTROL_ERROR = 3, FRAME_SIZE_ERROR = 6, REFUSED_STREAM = 7, COMPRESSION_ERROR = 9, ENHANCE_YOUR_CALM = 11;

interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

const open: RawConnection[] = [];
afterEach(() => open.splice(0).forEach((c) => c.socket.destroy()));

class RawConnection {
  readonly frames: Frame[] = [];
  closed = false;
  private input = Buffer.alloc(0);
  private readonly decoder = new HpackDecoder(4096, 1 << 20);

  constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.input = Buffer.concat([this.input, chunk]);
      while (this.input.length >= 9 && this.input.length >= 9 + this.input.readUIntBE(0, 3)) {
        const length = this.input.readUIntBE(0, 3);
        this.frames.push({ type: this.input[3]!, flags: this.input[4]!, stream: this.input.readUInt32BE(5), payload: this.input.subarray(9, 9 + length) });
        this.input = this.input.subarray(9 + length);
      }
    });
    socket.on("close", () => (this.closed = true));
    socket.on("error", () => {});
  }

  static async connect(settings: Array<[number, number]> = [], port = server.port): Promise<RawConnection> {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    const c = new RawConnection(socket);
    open.push(c);
    socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    const payload = Buffer.alloc(settings.length * 6);
    settings.forEach(([id, value], i) => {
      payload.writeUInt16BE(id, i * 6);
      payload.writeUInt32BE(value, i * 6 + 2);
    });
    c.send(SETTINGS, 0, 0, payload);
    await c.next((f) => f.type === SETTINGS && f.flags === 0, "the server's SETTINGS");
    c.send(SETTINGS, ACK, 0, Buffer.alloc(0));
    return c;
  }

  send(type: number, flags: number, stream: number, payload: Buffer): void {
    const head = Buffer.alloc(9);
    head.writeUIntBE(payload.length, 0, 3);
    head[3] = type;
    head[4] = flags;
    head.writeUInt32BE(stream, 5);
    this.socket.write(Buffer.concat([head, payload]));
  }

  request(stream: number, path: string, method = "GET", endStream = true, extra: Array<[string, string]> = []): void {
    const block = encodeHeaders([[":method", method], [":scheme", "http"], [":authority", "localhost"], [":path", path], ...extra]);
    this.send(HEADERS, END_HEADERS | (endStream ? END_STREAM : 0), stream, block);
  }

  async next(match: (f: Frame) => boolean, what: string): Promise<Frame> {
    await eventually(() => this.frames.some(match), what);
    return this.frames.find(match)!;
  }

  /** The response fields of `stream`, decoded (the server never indexes, so order does not matter). */
  async headers(stream: number): Promise<Map<string, string>> {
    const frame = await this.next((f) => f.type === HEADERS && f.stream === stream, `HEADERS on stream ${stream}`);
    return new Map(this.decoder.decode(frame.payload).fields);
  }

  async goAway(): Promise<{ lastStream: number; code: number }> {
    const frame = await this.next((f) => f.type === GOAWAY, "GOAWAY");
    return { lastStream: frame.payload.readUInt32BE(0), code: frame.payload.readUInt32BE(4) };
  }
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

it("answers PING with the same payload and serves a request", async () => {
  const c = await RawConnection.connect();
  c.send(PING, 0, 0, Buffer.from("chorus!!"));
  expect((await c.next((f) => f.type === PING, "PING ack")).payload.toString()).toBe("chorus!!");
  c.request(1, "/healthz");
  expect((await c.headers(1)).get(":status")).toBe("200");
  const body = await c.next((f) => f.type === DATA && f.stream === 1, "the body");
  expect(JSON.parse(body.payload.toString()).status).toBe("ok");
  expect(body.flags & END_STREAM).toBe(END_STREAM);
});

it("sends no more DATA than the client's window allows, and the rest as the window reopens", async () => {
  const c = await RawConnection.connect([[4, 10]]); // INITIAL_WINDOW_SIZE 10
  c.request(1, "/healthz");
  await c.headers(1);
  await eventually(() => c.frames.some((f) => f.type === DATA), "the first 10 bytes");
  const received = () => c.frames.filter((f) => f.type === DATA).reduce((n, f) => n + f.payload.length, 0);
  await new Promise((r) => setTimeout(r, 100));
  expect(received()).toBe(10);
  c.send(WINDOW_UPDATE, 0, 1, u32(1000));
  await eventually(() => c.frames.some((f) => f.type === DATA && (f.flags & END_STREAM) !== 0), "the rest of the body");
  const body = Buffer.concat(c.frames.filter((f) => f.type === DATA).map((f) => f.payload));
  expect(JSON.parse(body.toString()).status).toBe("ok");
});

it("refuses streams past the concurrency limit it announced, and serves the others", async () => {
  const c = await RawConnection.connect();
  const announced = c.frames.find((f) => f.type === SETTINGS)!.payload;
  let limit = 0;
  for (let at = 0; at < announced.length; at += 6) if (announced.readUInt16BE(at) === 3) limit = announced.readUInt32BE(at + 2);
  expect(limit).toBe(1000);
  // Unary calls whose bodies never come: each holds its stream open.
  for (let k = 0; k <= limit; k++) c.request(1 + 2 * k, "/chorus.v1.RealtimeService/Publish", "POST", false, [["content-type", "application/proto"]]);
  const refused = await c.next((f) => f.type === RST_STREAM, "a refused stream");
  expect(refused.stream).toBe(1 + 2 * limit);
  expect(refused.payload.readUInt32BE(0)).toBe(REFUSED_STREAM);
  expect(c.frames.filter((f) => f.type === RST_STREAM)).toHaveLength(1);
});

it("resets a request that lacks :path, and the connection goes on", async () => {
  const c = await RawConnection.connect();
  c.send(HEADERS, END_HEADERS | END_STREAM, 1, encodeHeaders([[":method", "GET"], [":scheme", "http"]]));
  const reset = await c.next((f) => f.type === RST_STREAM, "RST_STREAM");
  expect([reset.stream, reset.payload.readUInt32BE(0)]).toEqual([1, PROTOCOL_ERROR]);
  c.request(3, "/healthz");
  expect((await c.headers(3)).get(":status")).toBe("200");
});

it("answers a header list too large to hold with 431, keeping the connection", async () => {
  const c = await RawConnection.connect();
  // One 3000-byte entry added to the table, then referenced 25 times: 75 KB decoded from 3 KB.
  const entry = Buffer.concat([Buffer.from([0x40, 1]), Buffer.from("x"), Buffer.from([0x7f, 0xb9, 0x16]), Buffer.alloc(3000, "y")]);
  const block = Buffer.concat([encodeHeaders([[":method", "GET"], [":scheme", "http"], [":path", "/healthz"]]), entry, Buffer.alloc(25, 0xbe)]);
  c.send(HEADERS, END_HEADERS | END_STREAM, 1, block);
  expect((await c.headers(1)).get(":status")).toBe("431");
  c.request(3, "/healthz");
  expect((await c.headers(3)).get(":status")).toBe("200");
});

it.each([
  ["a frame larger than the maximum frame size", FRAME_SIZE_ERROR, (c: RawConnection) => c.send(DATA, 0, 1, Buffer.alloc(16_385))],
  ["a header block that does not decode", COMPRESSION_ERROR, (c: RawConnection) => c.send(HEADERS, END_HEADERS, 1, Buffer.from([0xff, 0x7f]))],
  ["a stream id lower than one already used", PROTOCOL_ERROR, (c: RawConnection) => (c.request(5, "/healthz"), c.request(3, "/healthz"))],
  ["a SETTINGS frame on a stream", PROTOCOL_ERROR, (c: RawConnection) => c.send(SETTINGS, 0, 1, Buffer.alloc(0))],
  ["a header block continued without end (empty CONTINUATION frames)", ENHANCE_YOUR_CALM, (c: RawConnection) => {
    c.send(HEADERS, 0, 1, encodeHeaders([[":method", "GET"]]));
    for (let k = 0; k < 100; k++) c.send(CONTINUATION, 0, 1, Buffer.alloc(0));
  }],
  ["streams opened and reset in a loop", ENHANCE_YOUR_CALM, (c: RawConnection) => {
    for (let k = 0; k < 1100; k++) {
      c.request(1 + 2 * k, "/chorus.v1.RealtimeService/Publish", "POST", false, [["content-type", "application/proto"]]);
      c.send(RST_STREAM, 0, 1 + 2 * k, u32(8)); // CANCEL
    }
  }],
])("ends the connection with GOAWAY on %s", async (_what, code, violate) => {
  const c = await RawConnection.connect();
  violate(c);
  expect((await c.goAway()).code).toBe(code);
  await eventually(() => c.closed, "the connection to close");
});

it("tells open connections to go away when the server stops, and lets them finish", async () => {
  // A server of its own, so stopping it leaves the suite's running.
  const { startServer, removeDir } = await import("../helpers/server.js");
  const own = await startServer();
  const socket = net.connect(own.port, "127.0.0.1");
  await new Promise((r) => socket.once("connect", r));
  const c = new RawConnection(socket);
  open.push(c);
  socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  c.send(SETTINGS, 0, 0, Buffer.alloc(0));
  c.request(1, "/healthz");
  await c.headers(1);
  const stopped = own.stop();
  expect(await c.goAway()).toEqual({ lastStream: 1, code: 0 });
  await eventually(() => c.closed, "the connection to close");
  await stopped;
  removeDir(own.dataDir);
});

it("holds a request body nobody reads within its receive window, and ends a client that sends past it", async () => {
  // A connection whose handler never reads: nothing returns the window.
  let delivered = 0;
  const tcp = net.createServer((socket) => {
    socket.once("data", (head: Buffer) => {
      new H2Connection(socket, (stream) => stream.listen({ onData: () => delivered++, onEnd() {}, onDrain() {}, onClose() {} }));
      socket.emit("data", head);
    });
  });
  await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
  try {
    const c = await RawConnection.connect([], (tcp.address() as net.AddressInfo).port);
    c.request(1, "/upload", "POST", false);
    for (let k = 0; k < 4; k++) c.send(DATA, 0, 1, Buffer.alloc(16_000)); // 64 000 of 65 535: allowed
    await new Promise((r) => setTimeout(r, 100));
    expect(c.frames.some((f) => f.type === GOAWAY || f.type === WINDOW_UPDATE)).toBe(false);
    c.send(DATA, 0, 1, Buffer.alloc(16_000));
    expect((await c.goAway()).code).toBe(FLOW_CONTROL_ERROR);
    expect(delivered).toBe(0);
  } finally {
    tcp.close();
  }
});
