// Bad input is the caller's error: undecodable protobuf, bad JSON, a wrong
// content type or a truncated envelope is answered INVALID_ARGUMENT (or the
// protocol's own equivalent, such as 415), never INTERNAL, over Connect,
// gRPC and gRPC-Web on both HTTP versions. And gRPC-Web's text mode (what
// Google's grpc-web client sends by default) works for unary and
// server-streaming calls.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import * as http from "node:http";
import * as http2 from "node:http2";
import { describe, expect, it } from "vitest";
import { GetHistoryRequestSchema, GetHistoryResponseSchema, ListenResponseSchema } from "../../gen/chorus/v1/realtime_pb.js";
import { EmitRequestSchema, EmitStreamRequestSchema } from "../../gen/chorus/v1/server_pb.js";
import { serverForSuite } from "../helpers/server.js";

const server = serverForSuite({ CHORUS_MAX_PUBLISH_RATE: "0", CHORUS_MAX_EMIT_RATE: "0" });

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  trailers: Record<string, string>;
}

let session: http2.ClientHttp2Session | undefined;
function h2(path: string, contentType: string, body: Buffer, extra: Record<string, string> = {}): Promise<Answer> {
  if (!session || session.destroyed || session.closed) {
    session = http2.connect(server.url);
    session.on("error", () => {});
  }
  const s = session;
  return new Promise((resolve, reject) => {
    const stream = s.request({ ":method": "POST", ":path": path, "content-type": contentType, ...extra });
    const answer: Answer = { status: 0, headers: {}, body: Buffer.alloc(0), trailers: {} };
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      answer.status = Number(h[":status"]);
      answer.headers = h as Record<string, string>;
    });
    stream.on("trailers", (t) => (answer.trailers = t as Record<string, string>));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve({ ...answer, body: Buffer.concat(chunks) }));
    stream.on("error", reject);
    stream.end(body);
  });
}

function h1(path: string, contentType: string, body: Buffer, extra: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${server.url}${path}`, { method: "POST", headers: { "content-type": contentType, ...extra } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers as Record<string, string>, body: Buffer.concat(chunks), trailers: res.trailers as Record<string, string> }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const envelope = (body: Uint8Array, flags = 0, length = body.length) => {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(length, 1);
  return Buffer.concat([head, body]);
};

/** The status an answer carries, as a Connect code name, whichever protocol. */
function codeOf(protocol: "connect" | "grpc" | "grpc-web", a: Answer): string {
  if (protocol === "connect") {
    if (a.status === 200) return "ok";
    return a.headers["content-type"]?.startsWith("application/json") ? (JSON.parse(a.body.toString()).code as string) : `http ${a.status}`;
  }
  if (protocol === "grpc") return grpcName(a.trailers["grpc-status"] ?? a.headers["grpc-status"] ?? `http ${a.status}`);
  // gRPC-Web: the trailer is the last envelope of the body (flag 0x80), or trailers-only headers.
  let body = a.body;
  while (body.length >= 5) {
    const length = body.readUInt32BE(1);
    if (body[0]! & 0x80) return grpcName(/grpc-status: *(\d+)/.exec(body.subarray(5, 5 + length).toString())?.[1] ?? "?");
    body = body.subarray(5 + length);
  }
  return grpcName(a.headers["grpc-status"] ?? `http ${a.status}`);
}

const GRPC_NAMES = ["ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists", "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated"];
const grpcName = (status: string) => GRPC_NAMES[Number(status)] ?? status;

const EMIT = "/chorus.v1.ServerService/Emit";
const HISTORY = "/chorus.v1.RealtimeService/GetHistory";
const validEmit = Buffer.from(toBinary(EmitRequestSchema, create(EmitRequestSchema, { topic: "chat/fuzz", event: "m", data: '{"a":1}' })));

/** Random bytes, and valid requests with bytes flipped, dropped or added. */
const bodies = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.tuple(fc.nat({ max: validEmit.length - 1 }), fc.integer({ min: 1, max: 255 }), fc.nat({ max: 4 })).map(([at, xor, cut]) => {
    const b = Buffer.from(validEmit);
    b[at]! ^= xor;
    return b.subarray(0, b.length - cut);
  }),
);

const transports = [
  { name: "HTTP/2", send: h2, protocols: ["connect", "grpc", "grpc-web"] as const },
  { name: "HTTP/1.1", send: h1, protocols: ["connect", "grpc-web"] as const },
];
const CONTENT_TYPE = { connect: "application/proto", grpc: "application/grpc", "grpc-web": "application/grpc-web+proto" } as const;

describe("malformed token stream messages (EmitStream, client streaming over gRPC)", () => {
  const chunk = Buffer.from(toBinary(EmitStreamRequestSchema, create(EmitStreamRequestSchema, { text: "token" })));
  const broken = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.tuple(fc.nat({ max: chunk.length - 1 }), fc.integer({ min: 1, max: 255 })).map(([at, xor]) => {
      const b = Buffer.from(chunk);
      b[at]! ^= xor;
      return b;
    }),
  );

  it("a valid opening, then fuzzed messages: never INTERNAL or UNKNOWN", { timeout: 60_000 }, async () => {
    const codes = new Map<string, number>();
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(broken, { minLength: 1, maxLength: 4 }), async (messages) => {
        const first = Buffer.from(toBinary(EmitStreamRequestSchema, create(EmitStreamRequestSchema, { topic: "ai/fuzz", event: "answer", streamId: `fuzz-${n++}` })));
        const body = Buffer.concat([envelope(first), envelope(chunk), ...messages.map((m) => envelope(m))]);
        const code = codeOf("grpc", await h2("/chorus.v1.ServerService/EmitStream", "application/grpc", body, { te: "trailers" }));
        codes.set(code, (codes.get(code) ?? 0) + 1);
        expect(["internal", "unknown"]).not.toContain(code);
      }),
      { numRuns: 150 },
    );
    console.log(`EmitStream fuzz: ${[...codes].map(([c, k]) => `${c} ${k}`).join(", ")}`);
    expect(codes.get("invalid_argument")).toBeGreaterThan(0);
  });
});

for (const t of transports) {
  describe(`malformed input over ${t.name}`, () => {
    for (const protocol of t.protocols) {
      it(`${protocol}: no fuzzed body gets INTERNAL or UNKNOWN`, { timeout: 60_000 }, async () => {
        const codes = new Map<string, number>();
        await fc.assert(
          fc.asyncProperty(bodies, async (body) => {
            const bytes = protocol === "connect" ? Buffer.from(body) : envelope(body);
            const code = codeOf(protocol, await t.send(EMIT, CONTENT_TYPE[protocol], bytes));
            codes.set(code, (codes.get(code) ?? 0) + 1);
            expect(["internal", "unknown", "http 500"]).not.toContain(code);
          }),
          { numRuns: 250 },
        );
        console.log(`${t.name} ${protocol} fuzz: ${[...codes].map(([c, n]) => `${c} ${n}`).join(", ")}`);
        expect(codes.get("invalid_argument")).toBeGreaterThan(0);
      });
    }

    it("answers a body that is not protobuf, bad JSON, a truncated envelope and a wrong content type", async () => {
      const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]);
      expect(codeOf("connect", await t.send(EMIT, "application/proto", garbage))).toBe("invalid_argument");
      expect(codeOf("connect", await t.send(EMIT, "application/json", Buffer.from("{not json")))).toBe("invalid_argument");
      expect(codeOf("grpc-web", await t.send(EMIT, "application/grpc-web+proto", envelope(garbage)))).toBe("invalid_argument");
      expect(codeOf("grpc-web", await t.send(EMIT, "application/grpc-web+proto", envelope(validEmit, 0, validEmit.length + 10)))).toBe("invalid_argument");
      expect(codeOf("grpc-web", await t.send(EMIT, "application/grpc-web+proto", envelope(validEmit, 0x01)))).not.toMatch(/internal|unknown/);
      expect((await t.send(EMIT, "text/plain", validEmit)).status).toBe(415);
      if (t.name === "HTTP/2") {
        expect(codeOf("grpc", await t.send(EMIT, "application/grpc", envelope(garbage)))).toBe("invalid_argument");
        expect(codeOf("grpc", await t.send(EMIT, "application/grpc", envelope(validEmit, 0, validEmit.length + 10)))).toBe("invalid_argument");
      }
    });

    it("speaks gRPC-Web text mode, unary and server-streaming", async () => {
      const emit = Buffer.from(toBinary(EmitRequestSchema, create(EmitRequestSchema, { topic: "chat/text", event: "m", data: '"hello"', persist: true })));
      const emitted = await t.send(EMIT, "application/grpc-web-text", Buffer.from(envelope(emit).toString("base64")));
      expect(emitted.headers["content-type"]).toBe("application/grpc-web-text+proto");
      expect(codeOf("grpc-web", { ...emitted, body: decodeTextBody(emitted.body) })).toBe("ok");
      // The request in two base64 pieces, each padded, as text clients may send it.
      const request = envelope(Buffer.from(toBinary(GetHistoryRequestSchema, create(GetHistoryRequestSchema, { topic: "chat/text", limit: 5 }))));
      const text = request.subarray(0, 4).toString("base64") + request.subarray(4).toString("base64");
      const history = await t.send(HISTORY, "application/grpc-web-text+proto", Buffer.from(text));
      const decoded = decodeTextBody(history.body);
      const message = fromBinary(GetHistoryResponseSchema, decoded.subarray(5, 5 + decoded.readUInt32BE(1)));
      expect(message.messages.map((m) => m.data)).toContain('"hello"');
      expect(codeOf("grpc-web", { ...history, body: decoded })).toBe("ok");
      // Listen (server-streaming): the first message, a Welcome, arrives base64 encoded.
      const welcome = await firstTextMessage(t.name, "/chorus.v1.RealtimeService/Listen", envelope(new Uint8Array(0)).toString("base64"));
      expect(fromBinary(ListenResponseSchema, welcome).frames[0]!.kind.case).toBe("welcome");
      // Undecodable base64 is the caller's error.
      expect(codeOf("grpc-web", { ...(await t.send(EMIT, "application/grpc-web-text", Buffer.from("!!!!"))), body: Buffer.alloc(0) })).not.toMatch(/internal|unknown/);
    });
  });
}

/** A text-mode body: base64 chunks, each padded, concatenated. */
function decodeTextBody(body: Buffer): Buffer {
  const text = body.toString();
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i += 4) {
    if (text[i + 3] === "=" || i + 4 >= text.length) {
      parts.push(Buffer.from(text.slice(start, i + 4), "base64"));
      start = i + 4;
    }
  }
  return Buffer.concat(parts);
}

/** Opens a server-streaming call in text mode and returns its first message's bytes. */
function firstTextMessage(transport: string, path: string, body: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let text = "";
    const done = (close: () => void) => (chunk: Buffer) => {
      text += chunk.toString();
      const bytes = decodeTextBody(Buffer.from(text.slice(0, text.length - (text.length % 4))));
      if (bytes.length >= 5 && bytes.length >= 5 + bytes.readUInt32BE(1)) {
        close();
        resolve(bytes.subarray(5, 5 + bytes.readUInt32BE(1)));
      }
    };
    if (transport === "HTTP/2") {
      const s = http2.connect(server.url);
      s.on("error", () => {});
      const stream = s.request({ ":method": "POST", ":path": path, "content-type": "application/grpc-web-text" });
      stream.on("data", done(() => s.destroy()));
      stream.on("error", reject);
      stream.end(body);
    } else {
      const req = http.request(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/grpc-web-text" } }, (res) => res.on("data", done(() => req.destroy())));
      req.on("error", () => {});
      req.end(body);
    }
  });
}
