import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as http2 from "node:http2";
import { describe, expect, it } from "vitest";
import { ConnectRequestSchema, ConnectResponseSchema, RealtimeService } from "../../gen/chorus/v1/realtime_pb.js";
import { ServerService } from "../../gen/chorus/v1/server_pb.js";
import { NodeClient } from "../helpers/clients.js";
import { codeOf, eventually, serverForSuite } from "../helpers/server.js";

const server = serverForSuite({ CHORUS_API_KEYS: "test-key-1,test-key-2" });

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

/** Opens a Listen session with a stock Connect client and returns its Welcome. */
async function listen(token: string, useBinaryFormat = true) {
  const client = createClient(RealtimeService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat }));
  const abort = new AbortController();
  const stream = client.listen({}, { ...bearer(token), signal: abort.signal })[Symbol.asyncIterator]();
  const first = await stream.next();
  const welcome = first.value.frames[0].kind;
  expect(welcome.case).toBe("welcome");
  return { client, stream, welcome: welcome.value, close: () => abort.abort() };
}

describe("sessions", () => {
  it("names unknown sessions NOT_FOUND, empty ones INVALID_ARGUMENT, others' PERMISSION_DENIED", async () => {
    const client = createClient(RealtimeService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    expect(await codeOf(client.subscribe({ sessionId: "no-such-session", topic: "chat/a" }))).toBe("NotFound");
    expect(await codeOf(client.subscribe({ sessionId: "", topic: "chat/a" }))).toBe("InvalidArgument");
    const mine = await listen("owner");
    expect(await codeOf(client.subscribe({ sessionId: mine.welcome.sessionId, topic: "chat/a" }, bearer("intruder")))).toBe("PermissionDenied");
    const ok = await client.subscribe({ sessionId: mine.welcome.sessionId, topic: "chat/a" }, bearer("owner"));
    expect(ok.topic).toBe("chat/a");
    mine.close();
  });

  it("serves presence to a stock client: Track, GetPresence grouped by user, stats, ListPresence, and EndSession's immediate leave", async () => {
    const client = createClient(RealtimeService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const tabs = [await listen("pia"), await listen("pia"), await listen("quin")];
    for (const [i, tab] of tabs.entries()) {
      const token = i < 2 ? "pia" : "quin";
      const reply = await client.track({ sessionId: tab.welcome.sessionId, topic: "chat/present", state: JSON.stringify({ tab: i }) }, bearer(token));
      expect(reply.member).toMatchObject({ userId: token, connectionId: tab.welcome.connectionId, state: `{"tab":${i}}` });
    }
    const grouped = await client.getPresence({ topic: "chat/present", groupByUser: true });
    expect(grouped.members).toHaveLength(3);
    expect(grouped.users.map((u) => [u.userId, u.members.map((m) => m.state).sort()]).sort()).toEqual([
      ["pia", ['{"tab":0}', '{"tab":1}']],
      ["quin", ['{"tab":2}']],
    ]);
    expect(await client.getPresenceStats({ topic: "chat/present" })).toMatchObject({ connections: 3, users: 2 });
    const backEnd = createClient(ServerService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    expect((await backEnd.listPresence({ topic: "chat/present" }, bearer("test-key-1"))).users).toBe(2);

    // A goodbye ends the session cleanly: its member is gone at once, not after the grace period.
    await client.endSession({ sessionId: tabs[2]!.welcome.sessionId }, bearer("quin"));
    expect(await client.getPresenceStats({ topic: "chat/present" })).toMatchObject({ connections: 2, users: 1 });
    expect(await codeOf(client.ping({ sessionId: tabs[2]!.welcome.sessionId }, bearer("quin")))).toBe("NotFound");
    for (const tab of tabs) tab.close();
  });

  it("delivers to JSON clients too (frames are re-encoded only for them)", async () => {
    const session = await listen("json-user", false);
    await session.client.subscribe({ sessionId: session.welcome.sessionId, topic: "chat/json" }, bearer("json-user"));
    const pub = new NodeClient({ url: server.url, token: "pub" });
    await pub.channel("chat/json").publish("m", { hello: "json" });
    // Frames: the subscribe reply went over unary, so the next frame is the payload.
    let payload;
    for (;;) {
      const next = await session.stream.next();
      const frame = next.value.frames.find((f: { kind: { case: string } }) => f.kind.case === "payload");
      if (frame) {
        payload = frame.kind.value;
        break;
      }
    }
    expect(payload).toMatchObject({ topic: "chat/json", event: "m", data: '{"hello":"json"}', userId: "pub" });
    pub.disconnect();
    session.close();
  });
});

describe("one port, three protocols", () => {
  const publishVia = async (transport: Parameters<typeof createClient>[1]) => {
    const client = createClient(RealtimeService, transport);
    const reply = await client.publish({ topic: "chat/protocols", event: "m", data: "1", persist: true });
    expect(reply.position?.seq).toBeGreaterThan(0n);
    const history = await client.getHistory({ topic: "chat/protocols", limit: 1 });
    expect(history.messages[0]!.id).toBe(reply.id);
  };

  it("serves Connect over HTTP/1.1 and HTTP/2", async () => {
    await publishVia(createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    await publishVia(createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
  });

  it("serves gRPC over HTTP/2", async () => {
    await publishVia(createGrpcTransport({ baseUrl: server.url }));
  });

  it("serves gRPC-Web over HTTP/1.1 and HTTP/2", async () => {
    await publishVia(createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    await publishVia(createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2" }));
  });

  it("runs the bidirectional session over gRPC", async () => {
    const client = createClient(RealtimeService, createGrpcTransport({ baseUrl: server.url }));
    async function* frames() {
      yield { requestId: 1n, command: { case: "ping" as const, value: {} } };
    }
    const kinds: string[] = [];
    for await (const res of client.connect(frames())) for (const f of res.frames) kinds.push(f.kind.case!);
    // Welcome, the ping's reply, then the stream ends because the client closed its side.
    expect(kinds).toEqual(["welcome", "reply"]);
  });

  it("runs the Listen session over gRPC, and over gRPC-Web on HTTP/1.1 and HTTP/2", async () => {
    const transports = [
      createGrpcTransport({ baseUrl: server.url }),
      createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
      createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2" }),
    ];
    for (const transport of transports) {
      const client = createClient(RealtimeService, transport);
      const abort = new AbortController();
      const stream = client.listen({}, { signal: abort.signal, headers: { authorization: "Bearer listener" } })[Symbol.asyncIterator]();
      const welcome = (await stream.next()).value.frames[0].kind;
      expect(welcome.case).toBe("welcome");
      await client.subscribe({ sessionId: welcome.value.sessionId, topic: "chat/listen" }, { headers: { authorization: "Bearer listener" } });
      await client.publish({ topic: "chat/listen", event: "m", data: "42" });
      const next = (await stream.next()).value.frames[0].kind;
      expect(next.case).toBe("payload");
      expect(next.value.data).toBe("42");
      abort.abort();
    }
  });

  it("runs the bidirectional session for JSON clients too (connect-node's path)", async () => {
    const client = createClient(RealtimeService, createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: false }));
    async function* frames() {
      yield { requestId: 1n, command: { case: "subscribe" as const, value: { topic: "chat/json-bidi" } } };
      yield { requestId: 2n, command: { case: "publish" as const, value: { topic: "chat/json-bidi", event: "m", data: '{"json":true}' } } };
    }
    const seen: string[] = [];
    for await (const res of client.connect(frames(), { headers: { authorization: "Bearer json-bidi" } })) {
      for (const f of res.frames) seen.push(f.kind.case === "payload" ? `payload:${f.kind.value.data}` : f.kind.case === "reply" ? `reply:${f.kind.value.requestId}` : f.kind.case!);
    }
    expect(seen).toEqual(["welcome", "reply:1", 'payload:{"json":true}', "reply:2"]);
  });

  it("refuses the bidirectional session over HTTP/1.1", async () => {
    const client = createClient(RealtimeService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    async function* none() {}
    const err = await (async () => {
      try {
        for await (const _ of client.connect(none()));
      } catch (e) {
        return ConnectError.from(e);
      }
    })();
    expect(err).toBeInstanceOf(ConnectError);
  });
});

/** An envelope: [flags][u32 length][body] (the same for Connect, gRPC and gRPC-Web). */
function envelope(body: Uint8Array, flags = 0, length = body.length): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(length, 1);
  return Buffer.concat([head, body]);
}

/**
 * Sends raw bytes as the request of a Connect-protocol session stream, then
 * (optionally) ends the request, and returns the response envelopes once
 * the server has ended its side.
 */
async function rawSession(method: "Connect" | "Listen", request: Buffer, endRequest: boolean): Promise<Array<{ flags: number; body: Buffer }>> {
  const session = http2.connect(server.url);
  const stream = session.request({ ":method": "POST", ":path": `/chorus.v1.RealtimeService/${method}`, "content-type": "application/connect+proto" });
  const chunks: Buffer[] = [];
  stream.on("data", (c: Buffer) => chunks.push(c));
  // The server ends its side while ours may still be open: wait for 'end', not 'close'.
  const ended = new Promise<void>((resolve) => stream.on("end", () => resolve()));
  if (endRequest) stream.end(request);
  else stream.write(request);
  await ended;
  session.close();
  const envelopes: Array<{ flags: number; body: Buffer }> = [];
  for (let body = Buffer.concat(chunks); body.length >= 5; ) {
    const length = body.readUInt32BE(1);
    envelopes.push({ flags: body[0]!, body: body.subarray(5, 5 + length) });
    body = body.subarray(5 + length);
  }
  return envelopes;
}

/** The Connect error code of a stream's end-of-stream envelope (flag 0x02), after a Welcome. */
function endCode(envelopes: Array<{ flags: number; body: Buffer }>): string | undefined {
  expect(envelopes.map((e) => e.flags)).toEqual([0, 2]);
  return JSON.parse(envelopes[1]!.body.toString()).error?.code;
}

describe("malformed frames", () => {
  it("end only the offending session", async () => {
    const bystander = new NodeClient({ url: server.url, token: "bystander" });
    const got: unknown[] = [];
    bystander.channel("chat/bystander").on("m", ({ data }) => got.push(data)).subscribe();
    await bystander.channel("chat/bystander").ready();

    // A bidi stream whose envelope is not a ConnectRequest: field 1 with a length past the end.
    expect(endCode(await rawSession("Connect", envelope(new Uint8Array([0x0a, 0xff, 0xff, 0xff])), false))).toBe("invalid_argument");

    await bystander.channel("chat/bystander").publish("m", "still here");
    await eventually(() => got.length === 1, "bystander delivery");
    bystander.disconnect();
  });

  it("refuse a command larger than the read limit with a reply error, keeping the session", async () => {
    // 2 x 64 KiB + 64 KiB by default: this one is refused from its length, its bytes skipped as they come.
    const big = toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { requestId: 7n, command: { case: "publish", value: { topic: "chat/big", event: "m", data: JSON.stringify("x".repeat(300_000)) } } }));
    const ping = toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { requestId: 8n, command: { case: "ping", value: {} } }));
    const envelopes = await rawSession("Connect", Buffer.concat([envelope(big), envelope(ping)]), true);
    const replies = envelopes
      .filter((e) => e.flags === 0)
      .flatMap((e) => fromBinary(ConnectResponseSchema, e.body).frames)
      .filter((f) => f.kind.case === "reply")
      .map((f) => f.kind.value as { requestId: bigint; result: { case: string; value: { code?: number } } });
    expect(replies.map((r) => [r.requestId, r.result.case])).toEqual([[7n, "error"], [8n, "ping"]]);
    expect(replies[0]!.result.value.code).toBe(Code.ResourceExhausted);
    // The session ended only because the request did, and cleanly.
    expect(JSON.parse(envelopes.at(-1)!.body.toString()).error).toBeUndefined();
  });

  it("answer each framing violation with its code", async () => {
    // Compressed, though this server offers no compression.
    expect(endCode(await rawSession("Connect", envelope(new Uint8Array([0x08, 0x01]), 0x01), false))).toBe("unimplemented");
    // The request ends inside a message.
    expect(endCode(await rawSession("Connect", envelope(new Uint8Array([0x08]), 0, 4), true))).toBe("invalid_argument");
    // Listen takes exactly one request message.
    expect(endCode(await rawSession("Listen", Buffer.concat([envelope(new Uint8Array(0)), envelope(new Uint8Array(0))]), true))).toBe("invalid_argument");
  });
});

describe("ServerService API keys", () => {
  const server2 = () => createClient(ServerService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
  const emit = { topic: "chat/keys", event: "m", data: "{}" };

  it("accepts a configured key", async () => {
    expect((await server2().emit(emit, bearer("test-key-2"))).id).not.toBe("");
  });

  it("refuses a missing key, a wrong key and a user token, with UNAUTHENTICATED", async () => {
    expect(await codeOf(server2().emit(emit))).toBe("Unauthenticated");
    expect(await codeOf(server2().emit(emit, bearer("test-key-3")))).toBe("Unauthenticated");
    const jwt = ["e30", Buffer.from(JSON.stringify({ sub: "someone" })).toString("base64url"), "sig"].join(".");
    expect(await codeOf(server2().emit(emit, bearer(jwt)))).toBe("Unauthenticated");
    // Nothing was emitted by the refused calls.
    const history = await createClient(RealtimeService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })).getHistory({ topic: "chat/keys" });
    expect(history.messages).toHaveLength(0);
  });

  it("validates emits like publishes", async () => {
    expect(await codeOf(server2().emit({ ...emit, topic: "nope" + "/".repeat(2) }, bearer("test-key-1")))).toBe("InvalidArgument");
    expect(await codeOf(server2().emit({ ...emit, data: "{not json" }, bearer("test-key-1")))).toBe("InvalidArgument");
  });
});
