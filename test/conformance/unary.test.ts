// The lean unary path (server/src/transport/unary/) against connect's own
// handlers: the same calls, sent once as the lean path takes them and once
// with a content type connect accepts and the lean path leaves to it (the
// same media type in upper case), must get the same status, content type,
// protocol status and message. Then stock clients of every protocol and
// both HTTP versions, and the refusals only the lean path makes early.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as http from "node:http";
import * as http2 from "node:http2";
import { afterAll, describe, expect, it } from "vitest";
import { GetHistoryRequestSchema, GetHistoryResponseSchema } from "../../gen/chorus/v1/realtime_pb.js";
import { EmitRequestSchema, EmitResponseSchema, ServerService } from "../../gen/chorus/v1/server_pb.js";
import { ERROR, FRAME, RawConnection } from "../helpers/h2-raw.js";
import { codeOf, serverForSuite } from "../helpers/server.js";

const server = serverForSuite({ CHORUS_API_KEYS: "lean-key", CHORUS_MAX_PAYLOAD_BYTES: "4096" });

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  trailers: Record<string, string>;
}

const sessions: http2.ClientHttp2Session[] = [];
afterAll(() => sessions.forEach((s) => s.close()));

function h2(path: string, headers: Record<string, string>, body: Buffer): Promise<Answer> {
  const session = http2.connect(server.url);
  sessions.push(session);
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    const chunks: Buffer[] = [];
    let head: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    stream.on("response", (h) => (head = h as Record<string, string>));
    stream.on("trailers", (t) => (trailers = t as Record<string, string>));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve({ status: Number(head[":status"]), headers: head, body: Buffer.concat(chunks), trailers }));
    stream.on("error", reject);
    stream.end(body);
  });
}

function h1(path: string, headers: Record<string, string>, body: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${server.url}${path}`, { method: "POST", headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers as Record<string, string>, body: Buffer.concat(chunks), trailers: {} }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const envelope = (flags: number, bytes: Uint8Array) => Buffer.concat([Buffer.from([flags, ...[3, 2, 1, 0].map((i) => (bytes.length >>> (8 * i)) & 0xff)]), bytes]);

/** What the protocol says happened: the status code and message, wherever the protocol carries them. */
function outcome(protocol: string, a: Answer): { http: number; type: string; code: string; message: string; body?: string } {
  const type = a.headers["content-type"] ?? "";
  if (protocol === "connect") {
    if (a.status === 200) return { http: 200, type, code: "ok", message: "", body: a.body.toString("hex") };
    const error = JSON.parse(a.body.toString()) as { code: string; message: string };
    return { http: a.status, type, code: error.code, message: error.message };
  }
  if (protocol === "grpc") {
    const status = a.trailers["grpc-status"] ?? a.headers["grpc-status"];
    const message = decodeURIComponent(a.trailers["grpc-message"] ?? a.headers["grpc-message"] ?? "");
    return { http: a.status, type, code: status!, message, body: status === "0" ? a.body.toString("hex") : undefined };
  }
  // gRPC-Web: data envelopes, then the trailer envelope (0x80).
  let pos = 0;
  let data = "";
  let trailer = "";
  while (pos + 5 <= a.body.length) {
    const length = a.body.readUInt32BE(pos + 1);
    const part = a.body.subarray(pos + 5, pos + 5 + length);
    if (a.body[pos]! & 0x80) trailer = part.toString();
    else data += part.toString("hex");
    pos += 5 + length;
  }
  const code = /grpc-status: *(\d+)/.exec(trailer)?.[1] ?? "";
  const message = decodeURIComponent(/grpc-message: *(.*?)\r/.exec(trailer)?.[1] ?? "");
  return { http: a.status, type, code, message, body: code === "0" ? data : undefined };
}

const PROTOCOLS = [
  { name: "Connect over HTTP/2", protocol: "connect", type: "application/proto", send: h2 },
  { name: "Connect over HTTP/1.1", protocol: "connect", type: "application/proto", send: h1 },
  { name: "gRPC over HTTP/2", protocol: "grpc", type: "application/grpc+proto", send: h2 },
  { name: "gRPC (plain content type)", protocol: "grpc", type: "application/grpc", send: h2 },
  { name: "gRPC-Web over HTTP/2", protocol: "grpc-web", type: "application/grpc-web+proto", send: h2 },
  { name: "gRPC-Web over HTTP/1.1", protocol: "grpc-web", type: "application/grpc-web+proto", send: h1 },
] as const;

const emit = (init: Parameters<typeof create<typeof EmitRequestSchema>>[1]) => toBinary(EmitRequestSchema, create(EmitRequestSchema, init));
const CALLS = [
  { what: "an Emit", path: "/chorus.v1.ServerService/Emit", key: true, message: emit({ topic: "feed/lean", event: "m", data: '{"n":1}' }) },
  { what: "an Emit to a bad topic", path: "/chorus.v1.ServerService/Emit", key: true, message: emit({ topic: "bad topic", event: "m", data: "1" }) },
  { what: "an Emit without a key", path: "/chorus.v1.ServerService/Emit", key: false, message: emit({ topic: "feed/lean", event: "m", data: "1" }) },
  { what: "an Emit with a payload over the limit", path: "/chorus.v1.ServerService/Emit", key: true, message: emit({ topic: "feed/lean", event: "m", data: JSON.stringify("x".repeat(5000)) }) },
  { what: "a body that is not protobuf", path: "/chorus.v1.ServerService/Emit", key: true, message: Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]) },
  { what: "a GetHistory", path: "/chorus.v1.RealtimeService/GetHistory", key: false, message: toBinary(GetHistoryRequestSchema, create(GetHistoryRequestSchema, { topic: "feed/none", limit: 5 })) },
];

describe.each(PROTOCOLS)("$name", ({ protocol, type, send }) => {
  it.each(CALLS)("answers $what as connect's own handler does", async ({ path, key, message }) => {
    const body = protocol === "connect" ? Buffer.from(message) : envelope(0, message);
    const headers = (contentType: string) => ({ "content-type": contentType, ...(key ? { authorization: "Bearer lean-key" } : {}) });
    const lean = outcome(protocol, await send(path, headers(type), body));
    const stock = outcome(protocol, await send(path, headers(type.toUpperCase()), body));
    // Two Emits get two message ids; the rest must be equal byte for byte.
    if (path.endsWith("/Emit") && lean.code === (protocol === "connect" ? "ok" : "0")) {
      const decode = (hex: string) => fromBinary(EmitResponseSchema, Buffer.from(hex, "hex").subarray(protocol === "grpc" ? 5 : 0));
      expect(decode(lean.body!).id).toMatch(/\S/);
      expect(decode(stock.body!).id).toMatch(/\S/);
      lean.body = stock.body = "";
    }
    stock.type = stock.type.toLowerCase();
    expect(lean).toEqual(stock);
    if (path.endsWith("GetHistory")) expect(fromBinary(GetHistoryResponseSchema, Buffer.from(lean.body!, "hex").subarray(protocol === "grpc" ? 5 : 0)).messages).toEqual([]);
  });
});

describe("stock clients on the lean path", () => {
  const transports = [
    ["Connect, HTTP/1.1", () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })],
    ["Connect, HTTP/2", () => createConnectTransport({ baseUrl: server.url, httpVersion: "2" })],
    ["gRPC", () => createGrpcTransport({ baseUrl: server.url })],
    ["gRPC-Web, HTTP/1.1", () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" })],
    ["gRPC-Web, HTTP/2", () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2" })],
  ] as const;
  it.each(transports)("%s: emits, with a deadline, and gets each refusal's code", async (_name, transport) => {
    const client = createClient(ServerService, transport());
    const headers = { authorization: "Bearer lean-key" };
    const reply = await client.emit({ topic: "feed/stock", event: "m", data: "1", persist: true }, { headers, timeoutMs: 5000 });
    expect(reply.position?.seq).toBeGreaterThan(0n);
    expect(await codeOf(client.emit({ topic: "feed/stock", event: "", data: "1" }, { headers }))).toBe("InvalidArgument");
    expect(await codeOf(client.emit({ topic: "feed/stock", event: "m", data: "1" }))).toBe("Unauthenticated");
  });
});

describe("refusals the lean path makes itself", () => {
  it("a gRPC body without a message, or with two, is UNIMPLEMENTED; a cut envelope INVALID_ARGUMENT", async () => {
    const message = emit({ topic: "feed/lean", event: "m", data: "1" });
    const headers = { "content-type": "application/grpc+proto", authorization: "Bearer lean-key" };
    const path = "/chorus.v1.ServerService/Emit";
    expect(outcome("grpc", await h2(path, headers, Buffer.alloc(0))).code).toBe("12");
    expect(outcome("grpc", await h2(path, headers, Buffer.concat([envelope(0, message), envelope(0, message)]))).code).toBe("12");
    expect(outcome("grpc", await h2(path, headers, envelope(0, message).subarray(0, 9))).code).toBe("3");
    expect(outcome("grpc", await h2(path, headers, envelope(1, message))).code).toBe("3");
  });

  it("a body larger than a message may be is RESOURCE_EXHAUSTED before it is read to its end, over both HTTP versions", async () => {
    // HTTP/2, frame by frame: the answer comes while the body is still being sent, and the stream is then reset (NO_ERROR).
    const raw = await RawConnection.connect(server.port);
    raw.request(1, "/chorus.v1.ServerService/Emit", { method: "POST", endStream: false, extra: [["content-type", "application/proto"], ["authorization", "Bearer lean-key"]] });
    const chunk = Buffer.alloc(16_000, 0x41);
    for (let i = 0; i < 6; i++) {
      raw.send(FRAME.DATA, 0, 1, chunk);
      await raw.roundTrip(); // the server's WINDOW_UPDATEs arrive
    }
    const head = await raw.headers(1);
    expect(head.get(":status")).toBe("429");
    expect(JSON.parse(raw.body(1).toString())).toMatchObject({ code: "resource_exhausted" });
    const reset = await raw.next((f) => f.type === FRAME.RST_STREAM && f.stream === 1, "RST_STREAM");
    expect(reset.payload.readUInt32BE(0)).toBe(ERROR.NO_ERROR);
    raw.socket.destroy();
    // HTTP/1.1: the answer, and the connection is closed rather than read to the end of a 20 MB body.
    const answer = await h1("/chorus.v1.ServerService/Emit", { "content-type": "application/proto", authorization: "Bearer lean-key" }, Buffer.alloc(20 * 1024 * 1024, 0x41)).catch((error: NodeJS.ErrnoException) => ({ error }));
    if ("error" in answer) expect(answer.error.code).toMatch(/EPIPE|ECONNRESET/);
    else expect(outcome("connect", answer)).toMatchObject({ http: 429, code: "resource_exhausted" });
  });
});
