import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString, errorToJson } from "@connectrpc/connect/protocol-connect";
import { StreamPositionSchema } from "../../../gen/chorus/v1/payload_pb.js";
import { SubscribeRequestSchema } from "../../../gen/chorus/v1/realtime_pb.js";
import { systemNotice, type OutboundFrame } from "../frames.js";
import type { ChorusNode } from "../node.js";
import type { FrameSink } from "../outbox.js";
import type { Session } from "../session.js";
import { checkTopic } from "../topic.js";
import type { Wire } from "../transport/session-stream.js";
import { formatPositions, parsePositions, payloadEvent, systemEvent, type TopicPosition } from "./events.js";

/** What a `GET /sse` asks for, read from its URL and headers. */
export interface SseRequest {
  topics: string[];
  /** `Authorization`, or `Bearer <?token=>` for clients that cannot set headers (EventSource). */
  authorization: string | undefined;
  /** `Last-Event-ID` (or `?lastEventId=`): where a reconnecting client is. */
  lastEventId: string | undefined;
}

export const SSE_PATH = "/sse";

/**
 * The request when `url` is the SSE endpoint (undefined for any other
 * path). Topics come as `?topics=a,b` and/or `?topic=a&topic=b` (the form
 * for a topic with a comma in it).
 */
export function sseRequest(method: string | undefined, url: string, headers: Record<string, string | string[] | undefined>): SseRequest | undefined {
  const query = url.indexOf("?");
  if ((query < 0 ? url : url.slice(0, query)) !== SSE_PATH || method !== "GET") return undefined;
  const params = new URLSearchParams(query < 0 ? "" : url.slice(query + 1));
  const topics = new Set<string>();
  for (const list of params.getAll("topics")) for (const topic of list.split(",")) if (topic !== "") topics.add(topic);
  for (const topic of params.getAll("topic")) if (topic !== "") topics.add(topic);
  const header = (name: string) => (typeof headers[name] === "string" ? (headers[name] as string) : undefined);
  const token = params.get("token");
  return {
    topics: [...topics],
    authorization: header("authorization") ?? (token ? `Bearer ${token}` : undefined),
    lastEventId: header("last-event-id") ?? params.get("lastEventId") ?? undefined,
  };
}

/** How the route answers a refused request: an HTTP status and a JSON body, before any event. */
export type Refuse = (status: number, headers: Record<string, string>, body: string) => void;

/**
 * Serves one SSE stream: refuses what is wrong with the request as HTTP
 * (400, 401, 403, 429 with Connect's JSON error), then opens a session like
 * any other, subscribed to the topics, and writes what it receives as
 * events. `headers` go on the response either way (CORS).
 */
export function serveSse(node: ChorusNode, wire: Wire, refuse: Refuse, request: SseRequest, headers: Record<string, string>): void {
  new SseStream(node, wire, request).start(refuse, headers).catch((error: unknown) => {
    node.logError("an SSE stream failed to start", error);
    wire.abort();
  });
}

/** A stream's positions after `Last-Event-ID`, checked before anything else. */
function resumeFrom(request: SseRequest, maxTopicLength: number, maxTopics: number): Map<string, TopicPosition> {
  if (request.topics.length > maxTopics) {
    throw new ConnectError(`${request.topics.length} topics asked for; one stream takes at most ${maxTopics}`, Code.ResourceExhausted);
  }
  for (const topic of request.topics) checkTopic(topic, maxTopicLength);
  if (request.lastEventId === undefined || request.lastEventId === "") return new Map();
  const known = parsePositions(request.lastEventId);
  if (!known) throw new ConnectError("Last-Event-ID is not an id this server sent (topic:epoch:seq, separated by spaces)", Code.InvalidArgument);
  const wanted = new Set(request.topics);
  for (const topic of known.keys()) if (!wanted.has(topic)) known.delete(topic);
  return known;
}

class SseStream implements FrameSink {
  private session: Session | undefined;
  private finished = false;
  /** The position reached in each topic, as written: what the next `id:` says. */
  private positions = new Map<string, TopicPosition>();
  /** The `system:subscribed` event, and the positions it brings (applied when it is written, in order). */
  private subscribed: { frame: OutboundFrame; positions: Map<string, TopicPosition> } | undefined;

  constructor(
    private readonly node: ChorusNode,
    private readonly wire: Wire,
    private readonly request: SseRequest,
  ) {}

  async start(refuse: Refuse, headers: Record<string, string>): Promise<void> {
    const { config, permissions } = this.node;
    let session: Session;
    try {
      this.positions = resumeFrom(this.request, config.maxTopicLength, config.maxSubscriptionsPerSession);
      let header: Headers;
      try {
        header = new Headers(this.request.authorization ? { authorization: this.request.authorization } : {});
      } catch {
        throw new ConnectError("the authorization header holds characters no header may hold", Code.Unauthenticated);
      }
      const identity = await this.node.identify(header);
      for (const topic of this.request.topics) permissions.check(identity, "subscribe", topic);
      session = this.node.openSession(identity, "sse");
    } catch (error) {
      const e = ConnectError.from(error);
      return refuse(codeToHttpStatus(e.code), { ...headers, "content-type": "application/json" }, JSON.stringify(errorToJson(e, undefined)));
    }
    this.session = session;
    this.wire.respond("text/event-stream; charset=utf-8", { ...headers, "cache-control": "no-cache, no-transform", "x-accel-buffering": "no" });
    this.wire.watch(this);
    // How long a browser waits before it reconnects; then a comment, so proxies see bytes at once.
    this.wire.write(Buffer.from(`retry: ${config.sseRetryMs}\n: chorus\n\n`));
    session.outbox.attach(this);
    await this.subscribeAll(session);
  }

  /** Each topic in turn, from where the client is; a topic refused now (a join hook, a missing table) is told as an event. */
  private async subscribeAll(session: Session): Promise<void> {
    const reached = new Map<string, TopicPosition>();
    const topics: Array<{ topic: string; position?: TopicPosition; recovered?: boolean; error?: { code: string; message: string } }> = [];
    for (const topic of this.request.topics) {
      if (session.isClosed) return;
      const since = this.positions.get(topic);
      try {
        const reply = await session.subscribe(
          create(SubscribeRequestSchema, { topic, since: since && create(StreamPositionSchema, { seq: BigInt(since.seq), epoch: since.epoch }) }),
        );
        const position = { seq: Number(reply.position?.seq ?? 0n), epoch: reply.position?.epoch ?? "" };
        reached.set(topic, position);
        topics.push({ topic, position, ...(since ? { recovered: reply.recovered } : {}) });
      } catch (error) {
        const e = ConnectError.from(error);
        topics.push({ topic, error: { code: codeToString(e.code), message: e.rawMessage } });
      }
    }
    // Queued behind every replayed message: when it is written, the client has all of them.
    const frame = systemNotice("", "system:subscribed", { topics });
    this.subscribed = { frame, positions: reached };
    session.send(frame);
  }

  // ---- FrameSink: the outbox writes here ----

  write(batch: OutboundFrame[]): boolean {
    if (this.finished) return true;
    // Called from the fan-out's flush: a throw here would leave that loop, so it ends this stream instead.
    try {
      return this.writeEvents(batch);
    } catch (error) {
      this.node.logError("an SSE stream could not write its events", error);
      this.session?.close(new ConnectError("internal error", Code.Internal));
      this.abort();
      return true;
    }
  }

  private writeEvents(batch: OutboundFrame[]): boolean {
    let text = "";
    let lagged = false;
    for (const f of batch) {
      const kind = f.frame.kind;
      switch (kind.case) {
        case "payload": {
          const p = kind.value;
          if (this.subscribed?.frame === f) {
            for (const [topic, position] of this.subscribed.positions) this.advance(topic, position);
            this.subscribed = undefined;
            text += `id: ${formatPositions(this.positions)}\n${payloadEvent(f, p)}`;
            break;
          }
          if (p.seq > 0n && p.topic !== "") {
            this.advance(p.topic, { epoch: p.epoch, seq: Number(p.seq) });
            text += `id: ${formatPositions(this.positions, p.topic)}\n`;
          }
          text += payloadEvent(f, p);
          if (p.event === "system:lagged") lagged = true;
          break;
        }
        case "welcome": {
          const w = kind.value;
          text += systemEvent("system:welcome", { connectionId: w.connectionId, userId: w.userId, nodeId: w.nodeId, heartbeatIntervalMs: w.heartbeatIntervalMs });
          break;
        }
        case "heartbeat":
          text += ": heartbeat\n\n";
          break;
        case "disconnect": {
          const d = kind.value;
          text += systemEvent("system:disconnect", { code: codeToString(d.code), reason: d.reason, reconnect: d.reconnect });
          break;
        }
        default:
          break; // replies: an SSE session sends no commands
      }
    }
    const more = text === "" ? true : this.wire.write(Buffer.from(text));
    if (more && this.session) this.session.lastSeen = Date.now(); // taken: the client reads (see checkHeartbeats)
    // Messages were dropped for this reader (it read too slowly): the stream ends, and the
    // browser's reconnect, with the id of the last event it has, catches up from there.
    if (lagged) queueMicrotask(() => this.session?.close(new ConnectError("this stream fell behind and messages were dropped: reconnect with Last-Event-ID to catch up", Code.ResourceExhausted)));
    return more;
  }

  end(error: ConnectError | undefined): void {
    if (this.finished) return;
    this.finished = true;
    // A client that stopped reading would never take a last event: its connection goes now.
    if (error?.code === Code.DeadlineExceeded) return this.wire.abort();
    this.wire.end(error ? Buffer.from(systemEvent("system:error", { code: codeToString(error.code), message: error.rawMessage })) : undefined);
  }

  abort(): void {
    if (this.finished) return;
    this.finished = true;
    this.wire.abort();
  }

  // ---- WireListener ----

  readonly onClose = (): void => {
    this.finished = true;
    this.session?.close();
  };

  readonly onDrain = (): void => {
    if (!this.session) return;
    this.session.lastSeen = Date.now();
    this.session.outbox.resume();
  };

  readonly onData = (): void => {};
  readonly onEnd = (): void => {};

  /** Positions never go back: a replayed message older than one already written changes nothing. */
  private advance(topic: string, position: TopicPosition): void {
    const known = this.positions.get(topic);
    if (!known || known.epoch !== position.epoch || position.seq > known.seq) this.positions.set(topic, position);
  }
}
