// Property and fuzz tests for everything that parses what a peer sends:
// the HTTP/2 frame reader, the HPACK decoder, the RFC 9113 §8 request
// rules, and the session stream's envelope reader and command decoder.
// Random and mutated input never throws out of a parser, never makes it
// hold more than its bound, and always ends in a defined outcome.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConnectRequestSchema, ConnectResponseSchema } from "../../gen/chorus/v1/realtime_pb.js";
import { defaultConfig } from "../../server/src/config.js";
import { ChorusNode } from "../../server/src/node.js";
import { H2Connection, PREFACE } from "../../server/src/transport/h2/connection.js";
import { HpackDecoder, HpackError, encodeHeaders, type HeaderField } from "../../server/src/transport/h2/hpack.js";
import { requestHead } from "../../server/src/transport/h2/request-head.js";
import { serveSessionStream, type Wire, type WireListener } from "../../server/src/transport/session-stream.js";

const RUNS = 400;

/** Bytes cut into random pieces, as a network delivers them. */
const chunked = (bytes: Buffer, cuts: number[]) => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    out.push(bytes.subarray(from, p));
    from = p;
  }
  out.push(bytes.subarray(from));
  return out.filter((b) => b.length > 0);
};

describe("HPACK decoder", () => {
  const fieldArb = fc.tuple(fc.stringMatching(/^[a-z-]{1,12}$/), fc.string({ maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, "x")));

  it("decodes what the encoder wrote, in order", () => {
    fc.assert(
      fc.property(fc.array(fieldArb, { maxLength: 20 }), (fields) => {
        expect(new HpackDecoder(4096, 1 << 20).decode(encodeHeaders(fields as HeaderField[])).fields).toEqual(fields);
      }),
      { numRuns: RUNS },
    );
  });

  it("ends random and mutated blocks in a list within its bound or an HpackError, never anything else", () => {
    const valid = encodeHeaders([[":method", "GET"], [":path", "/healthz"], ["x-a", "b".repeat(50)]]);
    const blocks = fc.oneof(
      fc.uint8Array({ maxLength: 400 }),
      fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 1, max: 255 })).map(([at, xor]) => {
        const b = Buffer.from(valid);
        b[at]! ^= xor;
        return b;
      }),
    );
    const maxList = 2048;
    fc.assert(
      fc.property(fc.array(blocks, { minLength: 1, maxLength: 4 }), (sequence) => {
        // One decoder across blocks, as on a connection: its table carries over.
        const decoder = new HpackDecoder(4096, maxList);
        for (const block of sequence) {
          try {
            const { fields } = decoder.decode(block);
            expect(fields.reduce((n, [name, value]) => n + name.length + value.length + 32, 0)).toBeLessThanOrEqual(maxList);
          } catch (error) {
            expect(error).toBeInstanceOf(HpackError);
            return;
          }
        }
      }),
      { numRuns: RUNS * 2 },
    );
  });
});

describe("request rules (RFC 9113 §8)", () => {
  it("let through only lower-case token names and values free of NUL, CR and LF", () => {
    const anyField = fc.tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }));
    fc.assert(
      fc.property(fc.array(anyField, { maxLength: 10 }), fc.boolean(), (extra, withBase) => {
        const fields = [...(withBase ? ([[":method", "GET"], [":scheme", "http"], [":path", "/x"]] as HeaderField[]) : []), ...(extra as HeaderField[])];
        const result = requestHead(fields);
        if ("malformed" in result) return;
        for (const [name, value] of Object.entries(result.head.headers)) {
          expect(name).toMatch(/^[!#$%&'*+\-.^_`|~0-9a-z]+$/);
          expect(value).not.toMatch(/[\0\r\n]/);
        }
        expect(() => new Headers(result.head.headers)).not.toThrow();
      }),
      { numRuns: RUNS * 2 },
    );
  });
});

/** A socket stand-in: records what the connection writes, feeds it bytes, never touches the network. */
class FakeSocket {
  written: Buffer[] = [];
  ended = false;
  destroyed = false;
  writableNeedDrain = false;
  writableLength = 0;
  remoteAddress = "fuzz";
  remotePort = 0;
  private readonly handlers = new Map<string, Array<(arg?: unknown) => void>>();
  on(event: string, handler: (arg?: unknown) => void) {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), handler]);
    return this;
  }
  once(event: string, handler: (arg?: unknown) => void) {
    return this.on(event, handler);
  }
  emit(event: string, arg?: unknown) {
    for (const h of this.handlers.get(event) ?? []) h(arg);
  }
  write(b: Buffer) {
    this.written.push(Buffer.from(b));
    return true;
  }
  end() {
    this.ended = true;
  }
  destroy() {
    this.destroyed = true;
  }
  pause() {}
  resume() {}
  cork() {}
  uncork() {}
}

/** The GOAWAY codes a connection sent, from what it wrote. */
function goAwayCodes(written: Buffer[]): number[] {
  const all = Buffer.concat(written);
  const codes: number[] = [];
  for (let at = 0; at + 9 <= all.length; ) {
    const length = all.readUIntBE(at, 3);
    if (all[at + 3] === 7 && at + 17 <= all.length) codes.push(all.readUInt32BE(at + 13));
    at += 9 + length;
  }
  return codes;
}

describe("HTTP/2 frame reader", () => {
  const frameArb = fc.record({
    type: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 10, max: 255 })),
    flags: fc.integer({ min: 0, max: 255 }),
    stream: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 2 ** 31 - 1 })),
    payload: fc.uint8Array({ maxLength: 64 }),
  });
  const encodeFrame = (f: { type: number; flags: number; stream: number; payload: Uint8Array }) => {
    const head = Buffer.alloc(9);
    head.writeUIntBE(f.payload.length, 0, 3);
    head[3] = f.type;
    head[4] = f.flags;
    head.writeUInt32BE(f.stream, 5);
    return Buffer.concat([head, f.payload]);
  };
  const KNOWN_CODES = new Set([0, 1, 2, 3, 5, 6, 7, 8, 9, 11]);

  it("answers any sequence of frames, in any chunking, with service or a GOAWAY of a defined code, holding at most one frame unparsed", () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 12 }), fc.boolean(), (frames, cuts, withSettings) => {
        const socket = new FakeSocket();
        let requests = 0;
        const connection = new H2Connection(socket as never, {
          onRequest: (stream) => {
            requests++;
            stream.respond([[":status", "200"]], true);
          },
          onError: (error) => {
            throw new Error(`an internal failure reached the boundary: ${String(error)}`);
          },
        });
        const settings = withSettings ? [encodeFrame({ type: 4, flags: 0, stream: 0, payload: new Uint8Array(0) })] : [];
        const input = Buffer.concat([PREFACE, ...settings, ...frames.map(encodeFrame)]);
        for (const piece of chunked(input, cuts)) {
          socket.emit("data", piece);
          expect((connection as unknown as { inputBytes: number }).inputBytes).toBeLessThanOrEqual(16_384 + 9 + piece.length);
        }
        for (const code of goAwayCodes(socket.written)) expect(KNOWN_CODES.has(code)).toBe(true);
        expect(requests).toBeLessThanOrEqual(frames.length);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it("serves a valid request whatever the chunking", () => {
    const request = Buffer.concat([
      PREFACE,
      encodeFrame({ type: 4, flags: 0, stream: 0, payload: new Uint8Array(0) }),
      encodeFrame({ type: 1, flags: 5, stream: 1, payload: encodeHeaders([[":method", "GET"], [":scheme", "http"], [":path", "/x"], [":authority", "a"]]) }),
    ]);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 20 }), (cuts) => {
        const socket = new FakeSocket();
        let served = 0;
        new H2Connection(socket as never, { onRequest: () => void served++, onError: () => {} });
        for (const piece of chunked(request, cuts)) socket.emit("data", piece);
        expect(served).toBe(1);
        expect(goAwayCodes(socket.written)).toEqual([]);
      }),
      { numRuns: RUNS },
    );
  });
});

describe("session stream: envelopes and commands", () => {
  const dir = mkdtempSync(join(tmpdir(), "chorus-fuzz-"));
  const node = new ChorusNode({ ...defaultConfig(), dataDir: dir, maxPublishRate: 0 }, { debug() {}, info() {}, warn() {}, error() {} });
  afterAll(async () => {
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  });

  class FakeWire implements Wire {
    listener: WireListener | undefined;
    writes: Buffer[] = [];
    ended: { chunk?: Buffer } | undefined;
    aborted = false;
    respond() {}
    write(chunk: Buffer) {
      this.writes.push(Buffer.from(chunk));
      return true;
    }
    end(chunk?: Buffer) {
      this.ended = { chunk };
    }
    watch(to: WireListener) {
      this.listener = to;
    }
    read(to: WireListener) {
      this.listener = to;
    }
    discard() {}
    pauseReading() {}
    resumeReading() {}
    abort() {
      this.aborted = true;
    }
    probe() {}
  }

  const open = async () => {
    const wire = new FakeWire();
    const stream = serveSessionStream(node, wire, { kind: "connect", protocol: "connect", contentType: "application/connect+proto" }, undefined);
    await new Promise((r) => setImmediate(r));
    return { wire, stream };
  };
  const envelope = (body: Uint8Array, flags = 0) => {
    const head = Buffer.alloc(5);
    head[0] = flags;
    head.writeUInt32BE(body.length, 1);
    return Buffer.concat([head, body]);
  };
  const settle = async () => {
    for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r));
  };
  /** The request ids of the replies a wire received, in order. */
  const replies = (wire: FakeWire) => {
    const ids: bigint[] = [];
    let all = Buffer.concat(wire.writes);
    while (all.length >= 5) {
      const length = all.readUInt32BE(1);
      if (all[0] === 0) for (const f of fromBinary(ConnectResponseSchema, all.subarray(5, 5 + length)).frames) if (f.kind.case === "reply") ids.push(f.kind.value.requestId);
      all = all.subarray(5 + length);
    }
    return ids;
  };

  it("answers every command once, in order, however its envelopes are cut", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.bigInt({ min: 1n, max: 2n ** 40n }), { minLength: 1, maxLength: 40 }), fc.array(fc.nat(), { maxLength: 30 }), async (ids, cuts) => {
        const { wire } = await open();
        const bytes = Buffer.concat(ids.map((requestId) => envelope(toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { requestId, command: { case: "ping", value: {} } })))));
        for (const piece of chunked(bytes, cuts)) wire.listener!.onData(piece);
        wire.listener!.onEnd();
        await settle();
        expect(replies(wire)).toEqual(ids);
        expect(wire.ended).toBeDefined();
      }),
      { numRuns: 100 },
    );
  });

  it("ends random and mutated input in replies or a defined error, holding at most one envelope", async () => {
    const valid = envelope(toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { requestId: 9n, command: { case: "publish", value: { topic: "chat/f", event: "m", data: "1" } } })));
    const inputs = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      fc.array(fc.uint8Array({ maxLength: 60 }), { maxLength: 5 }).map((bodies) => Buffer.concat(bodies.map((b) => envelope(b)))),
      fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 1, max: 255 })).map(([at, xor]) => {
        const b = Buffer.from(valid);
        b[at]! ^= xor;
        return b;
      }),
    );
    const DEFINED = new Set([undefined, "invalid_argument", "resource_exhausted", "unimplemented"]);
    const limit = defaultConfig().maxPayloadBytes * 2 + 64 * 1024;
    await fc.assert(
      fc.asyncProperty(inputs, fc.array(fc.nat(), { maxLength: 8 }), async (input, cuts) => {
        const { wire, stream } = await open();
        for (const piece of chunked(input, cuts)) {
          wire.listener!.onData(piece);
          expect(stream.bufferedBytes).toBeLessThanOrEqual(Math.min(limit + 5, input.length));
        }
        wire.listener!.onEnd();
        await settle();
        if (!wire.ended) return;
        const last = wire.ended.chunk!;
        expect(last[0]).toBe(0x02); // Connect's end-of-stream envelope
        const error = JSON.parse(last.subarray(5).toString()).error?.code as string | undefined;
        expect(DEFINED.has(error)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});
