import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ServerService, type EmitResponse } from "../../gen/chorus/v1/server_pb.js";
import { positionOf } from "./convert.js";
import { toPresenceEntry, type PresenceEntry } from "./presence.js";
import { EmitBatcher, MAX_BATCH, settleAll, type EmitRequestInit } from "./emit-batcher.js";
import { EmitSession } from "./emit-session.js";
import { H2Target } from "./h2-target.js";
import { UnaryClient } from "./unary-client.js";
import { chunkOf, openStream, type StreamOptions, type StreamResult, type StreamWriter } from "./stream-writer.js";
import type { PublishResult } from "./types.js";

export type { StreamOptions, StreamResult, StreamWriter } from "./stream-writer.js";

/** A connection as the admin API lists it. */
export interface ConnectionInfo {
  connectionId: string;
  userId: string;
  nodeId: string;
  /** Milliseconds since the Unix epoch. */
  connectedAt: number;
  topics: string[];
  /** "connect" (a bidirectional session), "listen" (a browser) or "sse". */
  kind: string;
}

export interface ServerSdkOptions {
  /** The Chorus server, e.g. http://localhost:8080. */
  url: string;
  /** An API key from the server's CHORUS_API_KEYS. */
  apiKey?: string;
  /**
   * Hears every failed call (they also reject for callers who await them);
   * without it, failures go to console.error. A call nobody awaits never
   * becomes an unhandled rejection.
   */
  onError?: (error: ConnectError, context: string) => void;
}

export interface EmitOptions {
  /** Store the event in the topic's history. */
  persist?: boolean;
  /** Your own id: a retried emit with the same id is stored once. */
  id?: string;
  /** Attribute the event to this user (payload.userId). */
  userId?: string;
}

export interface ServerSdk {
  socket: {
    /**
     * Broadcasts `event` with `data` to every subscriber of `topic`. Emits
     * made while a call is out travel together in the next call (each
     * still answered on its own), so emitting in a loop is cheap.
     */
    emit(event: string, data: unknown, topic: string, options?: EmitOptions): Promise<PublishResult>;
    /** Many emits in one go, in order; each settles on its own, like Promise.allSettled. */
    emitMany(events: Array<{ event: string; data: unknown; topic: string } & EmitOptions>): Promise<Array<PromiseSettledResult<PublishResult>>>;
    /** Sends `event` with `data` to every connection of one user, which receives it with realtime.on(event). */
    sendTo(userId: string, event: string, data: unknown): Promise<{ id: string }>;
    /**
     * Opens a token stream into `topic`: write() its chunks as they come,
     * then end() it (or error(message), or cancel()). Viewers see it with
     * channel.onStream / channel.streams(); history keeps the finished response.
     */
    stream(topic: string, options?: StreamOptions): StreamWriter;
    /**
     * Streams everything `source` yields (strings, objects with a `text`,
     * or chat completion chunks) into `topic`, then ends the stream. If
     * `source` throws, the stream ends with status "error" and its message
     * for every viewer, and pipe() rejects with what `source` threw.
     */
    pipe(topic: string, source: AsyncIterable<unknown> | Iterable<unknown>, options?: StreamOptions): Promise<StreamResult>;
  };
  /** SQL on the tracked database; writes reach table subscribers as INSERT, UPDATE and DELETE events by themselves. */
  db: {
    /** Runs one statement with `?` (or `$1`) parameters; resolves to its rows. */
    query<Row = Record<string, any>>(sql: string, params?: unknown[]): Promise<Row[]>;
    /** Runs one or more statements without parameters (schema, scripts). */
    exec(sql: string): Promise<void>;
  };
  /** Who is present on a topic: every member (one per tracking connection) and how many distinct users. */
  presence(topic: string): Promise<{ members: Array<PresenceEntry & { joinedAt: number; updatedAt: number }>; users: number }>;
  /** The same as socket.sendTo. */
  sendTo(userId: string, event: string, data: unknown): Promise<{ id: string }>;
  /** The connections of every node, and ending a user's. */
  connections: {
    /** One page of connections (of one user, with `userId`), oldest first; `nextPageToken` ("" at the end) asks for the next. */
    list(options?: { userId?: string; pageSize?: number; pageToken?: string }): Promise<{ connections: ConnectionInfo[]; nextPageToken: string }>;
    /** Ends every connection of a user on every node; with `reconnect: false` its clients stop trying. Resolves to how many were ended. */
    disconnectUser(userId: string, options?: { reason?: string; reconnect?: boolean }): Promise<number>;
  };
  /** Closes the connection to the server. */
  close(): void;
}

/** The SDK for trusted back ends (ServerService, authenticated by API key). */
export function createServerSdk(options: ServerSdkOptions): ServerSdk {
  const target = new H2Target(options.url);
  const sessionManager = target.sessions;
  const transport = createConnectTransport({ baseUrl: options.url, httpVersion: "2", sessionManager });
  const client: Client<typeof ServerService> = createClient(ServerService, transport);
  const headers: Record<string, string> = options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {};
  // The hot calls skip connect's client: same session, same wire, a fraction of the cost per call.
  const unary = new UnaryClient(target, headers);
  const guard = <T>(promise: Promise<T>, context: string): Promise<T> => {
    promise.catch((error: unknown) => {
      const e = ConnectError.from(error);
      if (options.onError) options.onError(e, context);
      else console.error(`chorus: ${context}: ${e.rawMessage} (${Code[e.code]})`);
    });
    return promise;
  };
  const sendTo = (userId: string, event: string, data: unknown) =>
    guard(
      unary.call(ServerService.method.sendToUser, { userId, event, data: data === undefined ? "" : JSON.stringify(data) }).then((reply) => ({ id: reply.id })),
      `sendTo ${userId}`,
    );
  const emits = new EmitSession(target, headers);
  const batcher = new EmitBatcher((events) => emits.send(events));
  const emitRequest = (event: string, data: unknown, topic: string, opts: EmitOptions): EmitRequestInit => ({
    topic,
    event,
    data: data === undefined ? "" : JSON.stringify(data),
    persist: opts.persist ?? false,
    id: opts.id ?? "",
    userId: opts.userId ?? "",
  });
  const publishResult = (reply: EmitResponse): PublishResult => {
    const result: PublishResult = { id: reply.id, timestamp: Number(reply.timestamp) };
    const position = positionOf(reply.position);
    if (position) result.position = position;
    return result;
  };
  const stream = (topic: string, opts: StreamOptions = {}): StreamWriter => {
    const writer = openStream(topic, opts, (requests) => client.emitStream(requests, { headers }));
    guard(writer.done, `stream to ${topic}`);
    return writer;
  };
  return {
    sendTo,
    db: {
      query: <Row>(sql: string, params: unknown[] = []) =>
        guard(
          client.query({ sql, params: JSON.stringify(params, (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value)) }, { headers }).then((reply) => JSON.parse(reply.rows) as Row[]),
          "db.query",
        ),
      exec: (sql) => guard(client.exec({ sql }, { headers }).then(() => undefined), "db.exec"),
    },
    connections: {
      list: (opts = {}) =>
        guard(
          client.listConnections({ userId: opts.userId ?? "", pageSize: opts.pageSize ?? 0, pageToken: opts.pageToken ?? "" }, { headers }).then((reply) => ({
            connections: reply.connections.map((c) => ({ connectionId: c.connectionId, userId: c.userId, nodeId: c.nodeId, connectedAt: Number(c.connectedAt), topics: c.topics, kind: c.kind })),
            nextPageToken: reply.nextPageToken,
          })),
          "connections.list",
        ),
      disconnectUser: (userId, opts = {}) =>
        guard(
          client.disconnectUser({ userId, reason: opts.reason ?? "", reconnect: opts.reconnect ?? true }, { headers }).then((reply) => reply.disconnected),
          `disconnectUser ${userId}`,
        ),
    },
    presence: (topic) =>
      guard(
        client.listPresence({ topic }, { headers }).then((reply) => ({ members: reply.members.map(toPresenceEntry), users: reply.users })),
        `presence of ${topic}`,
      ),
    socket: {
      sendTo,
      stream,
      async pipe(topic, source, opts = {}) {
        const writer = stream(topic, opts);
        try {
          for await (const item of source) {
            const chunk = chunkOf(item);
            if (chunk !== "" && chunk !== undefined) writer.write(chunk);
          }
        } catch (error) {
          await writer.error(error instanceof Error ? error.message : String(error)).catch(() => {});
          throw error;
        }
        return writer.end();
      },
      emit(event, data, topic, opts = {}) {
        return guard(batcher.emit(emitRequest(event, data, topic, opts)).then(publishResult), `emit to ${topic}`);
      },
      emitMany(events) {
        const settled: Array<Promise<PublishResult>> = [];
        for (let i = 0; i < events.length; i += MAX_BATCH) {
          const slice = events.slice(i, i + MAX_BATCH);
          const waiting = slice.map(() => {
            let resolve!: (reply: EmitResponse) => void;
            let reject!: (error: unknown) => void;
            const promise = new Promise<EmitResponse>((res, rej) => ((resolve = res), (reject = rej)));
            return { promise, resolve, reject };
          });
          settled.push(...waiting.map((w) => w.promise.then(publishResult)));
          // One stream carries every batch, in order: the events are stored in the order given.
          void settleAll(emits.send(slice.map((e) => emitRequest(e.event, e.data, e.topic, e))), waiting);
        }
        return Promise.allSettled(settled);
      },
    },
    close: () => {
      emits.close();
      sessionManager.abort();
    },
  };
}
