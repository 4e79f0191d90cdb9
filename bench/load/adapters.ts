// Load-generator connections for Chorus and its peers, one shape for all:
// subscribers count every message exactly from the framing alone and decode
// one in SAMPLE_EVERY fully to measure latency, so the generators (which
// share the machine with the server) cost about the same for every peer.
// HTTP/2 subscribers use a minimal client (h2-client.ts), as Socket.IO's use
// a bare websocket. Publishers use each server's stock client.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as http from "node:http";
import * as http2 from "node:http2";
import { io } from "socket.io-client";
import WebSocket from "ws";
import { ConnectRequestSchema, PingRequestSchema, PublishRequestSchema, ServerFrameSchema, SubscribeRequestSchema } from "../../gen/chorus/v1/realtime_pb.js";
import { RealtimeClient } from "../../clients/src/node.js";
import { leanConnect, type LeanStream } from "./h2-client.js";

/**
 * `chorus-listen` is Chorus reached the way browsers reach it: a Listen
 * stream over HTTP/1.1. `chorus-node-h2` is Chorus with CHORUS_HTTP2=node
 * (Node's http2 module instead of Chorus' own HTTP/2), reached like `chorus`.
 */
export type ServerKind = "chorus" | "chorus-listen" | "chorus-node-h2" | "socketio" | "h2";

export const SAMPLE_EVERY = 8;

export interface Counter {
  /** Counts one delivered message; returns true when this one should be sampled. */
  count(): boolean;
  /** Records the latency of a sampled message from its send time (ms since the epoch). */
  sampled(sentAt: number): void;
}

export interface Subscriber {
  /** Publishes on this same connection without waiting for an acknowledgement. */
  send(json: string): void;
  close(): void;
}

export interface Publisher {
  /** Resolves when the server accepted the message. */
  publish(topic: string, json: string): Promise<void>;
  close(): void;
}

export function subscribe(kind: ServerKind, url: string, topic: string, counter: Counter): Promise<Subscriber> {
  return { chorus: chorusSubscriber, "chorus-listen": chorusListenSubscriber, "chorus-node-h2": chorusSubscriber, socketio: socketioSubscriber, h2: h2Subscriber }[kind](url, topic, counter);
}

export function publisher(kind: ServerKind, url: string): Promise<Publisher> {
  return { chorus: chorusPublisher, "chorus-listen": chorusPublisher, "chorus-node-h2": chorusPublisher, socketio: socketioPublisher, h2: h2Publisher }[kind](url);
}

function connectH2(url: string): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(url);
  return new Promise((resolve, reject) => {
    session.once("connect", () => resolve(session));
    session.once("error", reject);
  });
}

/** Splits a byte stream into [5-byte prefix][body] envelopes (Connect/gRPC) or [4-byte length][body] frames. */
export function framer(prefix: 4 | 5, onFrame: (flags: number, body: Buffer) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= prefix) {
      const length = pending.readUInt32BE(prefix - 4);
      if (pending.length < prefix + length) break;
      onFrame(prefix === 5 ? pending[0]! : 0, pending.subarray(prefix, prefix + length));
      pending = pending.subarray(prefix + length);
    }
  };
}

export function varint(buf: Buffer, pos: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = buf[pos++]!;
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [value, pos];
    shift += 7;
  }
}

// ---- Chorus: the bidi session spoken directly (Connect protocol, binary) ----

/**
 * Calls `onFrame` for each ServerFrame of a ConnectResponse or
 * ListenResponse body (`repeated ServerFrame frames = 1`): the tag byte of
 * its oneof (0x0a welcome, 0x12 payload, 0x1a reply, 0x22 heartbeat …) and
 * where the frame's bytes start and end.
 */
export function eachServerFrame(body: Buffer, onFrame: (kind: number, start: number, end: number) => void): void {
  for (let pos = 0; pos < body.length; ) {
    const [, afterTag] = varint(body, pos);
    const [length, start] = varint(body, afterTag);
    onFrame(body[start]!, start, start + length);
    pos = start + length;
  }
}

/**
 * The `data` (field 5) of the RealtimePayload inside a ServerFrame, read
 * straight from the bytes: the same work as the raw peer's JSON slice,
 * rather than decoding every string of the payload for one timestamp.
 */
export function payloadData(buf: Buffer, frameStart: number, frameEnd: number): string {
  const [, payloadStart] = varint(buf, frameStart + 1); // ServerFrame field 2 (payload): skip its length
  for (let pos = payloadStart; pos < frameEnd; ) {
    const [tag, afterTag] = varint(buf, pos);
    if ((tag & 7) === 0) {
      pos = varint(buf, afterTag)[1];
      continue;
    }
    const [length, start] = varint(buf, afterTag); // length-delimited: every other field of RealtimePayload
    if (tag >>> 3 === 5) return buf.toString("utf8", start, start + length);
    pos = start + length;
  }
  throw new Error("payload without data");
}

async function chorusSubscriber(url: string, topic: string, counter: Counter): Promise<Subscriber> {
  const envelope = (bytes: Uint8Array) => {
    const head = Buffer.alloc(5);
    head.writeUInt32BE(bytes.length, 1);
    return Buffer.concat([head, bytes]);
  };
  const command = (value: Parameters<typeof create<typeof ConnectRequestSchema>>[1]) => stream.write(envelope(toBinary(ConnectRequestSchema, create(ConnectRequestSchema, value))));
  let subscribed: (subscriber: Subscriber) => void = () => {};
  const connection = await leanConnect(url);
  const stream = connection.request(
    "POST",
    "/chorus.v1.RealtimeService/Connect",
    { "content-type": "application/connect+proto", "connect-protocol-version": "1" },
    framer(5, (flags, body) => {
      if (flags !== 0) return; // end of stream
      eachServerFrame(body, (kind, start, end) => {
        if (kind === 0x12) {
          if (counter.count()) counter.sampled((JSON.parse(payloadData(body, start, end)) as { t: number }).t);
        } else if (kind === 0x1a) {
          // The subscribe reply (publishes below ask for none).
          subscribed({ send: (json) => command({ command: { case: "publish", value: { topic, event: "m", data: json } } }), close: () => connection.close() });
        } else if (kind === 0x22) {
          command({ command: { case: "ping", value: {} } }); // heartbeat
        }
      });
    }),
  );
  return new Promise((resolve) => {
    subscribed = resolve;
    command({ requestId: 1n, command: { case: "subscribe", value: { topic } } });
  });
}

/** A browser-shaped session: Listen over HTTP/1.1, commands as unary Connect calls. */
async function chorusListenSubscriber(url: string, topic: string, counter: Counter): Promise<Subscriber> {
  const unary = (method: string, body: Uint8Array) =>
    fetch(`${url}/chorus.v1.RealtimeService/${method}`, { method: "POST", headers: { "content-type": "application/proto" }, body: Buffer.from(body) });
  const listenRequest = Buffer.alloc(5); // an empty ListenRequest, enveloped
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/chorus.v1.RealtimeService/Listen`, { method: "POST", agent: false, headers: { "content-type": "application/connect+proto" } });
    req.on("error", reject);
    req.end(listenRequest);
    req.on("response", (res) => {
      let sessionId = "";
      res.on(
        "data",
        framer(5, (flags, body) => {
          if (flags !== 0) return;
          eachServerFrame(body, (kind, start, end) => {
            if (kind === 0x12) {
              if (counter.count()) counter.sampled((JSON.parse(payloadData(body, start, end)) as { t: number }).t);
            } else if (kind === 0x0a && !sessionId) {
              const frame = fromBinary(ServerFrameSchema, body.subarray(start, end));
              if (frame.kind.case !== "welcome") return;
              sessionId = frame.kind.value.sessionId;
              unary("Subscribe", toBinary(SubscribeRequestSchema, create(SubscribeRequestSchema, { sessionId, topic }))).then(
                (r) => (r.ok ? resolve({ send: (json) => void unary("Publish", toBinary(PublishRequestSchema, create(PublishRequestSchema, { sessionId, topic, event: "m", data: json }))).catch(() => {}), close: () => req.destroy() }) : reject(new Error(`subscribe: HTTP ${r.status}`))),
                reject,
              );
            } else if (kind === 0x22) {
              void unary("Ping", toBinary(PingRequestSchema, create(PingRequestSchema, { sessionId }))).catch(() => {});
            }
          });
        }),
      );
    });
  });
}

async function chorusPublisher(url: string): Promise<Publisher> {
  const client = new RealtimeClient({ url, reconnect: false });
  await client.connect();
  return {
    async publish(topic, json) {
      await client.channel(topic).publish("m", JSON.parse(json));
    },
    close: () => client.disconnect(),
  };
}

// ---- Socket.IO: engine.io packets over a plain websocket ----

async function socketioSubscriber(url: string, topic: string, counter: Counter): Promise<Subscriber> {
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`);
  return new Promise((resolve, reject) => {
    ws.once("error", reject);
    ws.on("message", (data: Buffer) => {
      const first = data[0];
      if (first === 0x34 && data[1] === 0x32) {
        // "42[\"m\",\"…\"]": an event
        if (counter.count()) counter.sampled((JSON.parse((JSON.parse(data.toString("utf8", 2)) as [string, string])[1]) as { t: number }).t);
      } else if (first === 0x30) {
        ws.send("40"); // engine.io open → connect to the default namespace
      } else if (first === 0x34 && data[1] === 0x30) {
        ws.send(`421${JSON.stringify(["sub", topic])}`); // connected → subscribe, ack id 1
      } else if (first === 0x34 && data[1] === 0x33) {
        // "431[]": the ack
        resolve({ send: (json) => ws.send(`42${JSON.stringify(["pub", topic, json])}`), close: () => ws.close() });
      } else if (first === 0x32) {
        ws.send("3"); // ping → pong
      }
    });
  });
}

async function socketioPublisher(url: string): Promise<Publisher> {
  const socket = io(url, { transports: ["websocket"], forceNew: true, reconnection: false });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("connect_error", reject);
  });
  return {
    async publish(topic, json) {
      // A dropped connection fails at once (not buffered for a reconnection that never comes); a lost ack in 10 s.
      if (!socket.connected) throw new Error("socket.io publisher disconnected");
      await socket.timeout(10_000).emitWithAck("pub", topic, json);
    },
    close: () => socket.disconnect(),
  };
}

// ---- raw HTTP/2: [u32 length][bytes] frames ----

async function h2Subscriber(url: string, topic: string, counter: Counter): Promise<Subscriber> {
  let subscribed: (subscriber: Subscriber) => void = () => {};
  const connection = await leanConnect(url);
  connection.request(
    "GET",
    `/sub/${encodeURIComponent(topic)}`,
    {},
    framer(4, (_flags, body) => {
      if (body.length === 0) {
        // Publishes go on a second stream, opened on first use (acknowledgements are not awaited).
        let pub: LeanStream | undefined;
        return subscribed({
          send(json) {
            pub ??= connection.request("POST", `/pub/${encodeURIComponent(topic)}`, {}, () => {});
            const bytes = Buffer.from(json);
            const frame = Buffer.alloc(4 + bytes.length);
            frame.writeUInt32BE(bytes.length, 0);
            bytes.copy(frame, 4);
            pub.write(frame);
          },
          close: () => connection.close(),
        });
      }
      if (counter.count()) counter.sampled((JSON.parse(body.toString("utf8")) as { t: number }).t);
    }),
  );
  return new Promise((resolve) => (subscribed = resolve));
}

async function h2Publisher(url: string): Promise<Publisher> {
  const session = await connectH2(url);
  const streams = new Map<string, { stream: http2.ClientHttp2Stream; waiting: Array<() => void> }>();
  const open = (topic: string) => {
    const stream = session.request({ ":method": "POST", ":path": `/pub/${encodeURIComponent(topic)}` });
    const state = { stream, waiting: [] as Array<() => void> };
    stream.on("data", (acks: Buffer) => {
      for (let k = 0; k < acks.length; k++) state.waiting.shift()?.();
    });
    streams.set(topic, state);
    return state;
  };
  return {
    publish(topic, json) {
      const p = streams.get(topic) ?? open(topic);
      const body = Buffer.from(json);
      const frame = Buffer.alloc(4 + body.length);
      frame.writeUInt32BE(body.length, 0);
      body.copy(frame, 4);
      return new Promise<void>((resolve) => {
        p.waiting.push(resolve);
        p.stream.write(frame);
      });
    },
    close: () => session.destroy(),
  };
}
