import { ConnectError } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { StreamStatus as WireStatus } from "../../gen/chorus/v1/payload_pb.js";
import type { StreamWriteResponse } from "../../gen/chorus/v1/realtime_pb.js";
import type { EmitStreamRequestSchema, EmitStreamResponse } from "../../gen/chorus/v1/server_pb.js";
import { positionOf } from "./convert.js";
import type { Position } from "./types.js";

type Request = MessageInitShape<typeof EmitStreamRequestSchema>;

export interface StreamOptions {
  /** The name viewers see for the response (default "stream"). */
  event?: string;
  /** Anything JSON describing the response (model, prompt id...), given to viewers with `stream:start`. */
  meta?: unknown;
  /** Your own id for the stream (default: a random one). */
  id?: string;
}

export interface StreamResult {
  id: string;
  /** Chunks the server received. */
  chunks: number;
  status: "done" | "error" | "cancelled";
  /** Where the finished response stands in the topic's history. */
  position?: Position;
}

/** One response being streamed into a topic. */
export interface StreamWriter {
  readonly id: string;
  /** Sends a chunk: a string as text, anything else as a JSON value. */
  write(chunk: unknown): void;
  /** Ends the stream as complete. */
  end(): Promise<StreamResult>;
  /** Ends the stream with an error viewers will read. */
  error(message: string): Promise<StreamResult>;
  /** Ends the stream as given up. */
  cancel(): Promise<StreamResult>;
  /** Settles once the stream has ended, however it ended (rejects if the server refused it). */
  readonly done: Promise<StreamResult>;
}

/**
 * The request side of one EmitStream call: messages queue here and the
 * call reads them as it can send them (writes never wait).
 */
export function openStream(topic: string, options: StreamOptions, call: (requests: AsyncIterable<Request>) => Promise<EmitStreamResponse>): StreamWriter {
  const id = options.id ?? randomId();
  const queue: Request[] = [{ topic, event: options.event ?? "stream", streamId: id, meta: options.meta === undefined ? "" : JSON.stringify(options.meta) }];
  let wake: (() => void) | undefined;
  let closed = false;
  const requests: AsyncIterable<Request> = {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (closed) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    },
  };
  const done = call(requests).then((reply): StreamResult => {
    const result: StreamResult = { id: reply.streamId, chunks: Number(reply.chunks), status: reply.status === WireStatus.ERROR ? "error" : reply.status === WireStatus.CANCELLED ? "cancelled" : "done" };
    const position = positionOf(reply.position);
    if (position) result.position = position;
    return result;
  });
  const send = (request: Request) => {
    if (closed) throw new ConnectError(`stream "${id}" has already ended`);
    queue.push(request);
    wake?.();
  };
  const finish = (request: Request) => {
    if (!closed) {
      send(request);
      closed = true;
      wake?.();
    }
    return done;
  };
  return {
    id,
    done,
    write(chunk) {
      send(typeof chunk === "string" ? { text: chunk } : { data: JSON.stringify(chunk ?? null) });
    },
    end: () => finish({ status: WireStatus.DONE }),
    error: (message) => finish({ status: WireStatus.ERROR, error: message || "error" }),
    cancel: () => finish({ status: WireStatus.CANCELLED }),
  };
}

/**
 * The text of one item of a model's stream: a string; an object's `text`;
 * or the delta of the first choice (`choices[0].delta.content`, as chat
 * completion chunks carry it). Anything else is sent as a JSON value.
 */
export function chunkOf(item: unknown): unknown {
  if (typeof item === "string") return item;
  if (item && typeof item === "object") {
    const o = item as { text?: unknown; choices?: Array<{ delta?: { content?: unknown } }> };
    if (typeof o.text === "string") return o.text;
    const delta = o.choices?.[0]?.delta?.content;
    if (typeof delta === "string") return delta;
  }
  return item;
}

type SessionWrite = { topic: string; streamId: string; event?: string; meta?: string; text?: string; data?: string; status?: WireStatus; error?: string };

/**
 * A user's token stream over its session (StreamWrite): one write in
 * flight at a time, in order; text written meanwhile goes out together in
 * the next one, so a fast producer is never held to one round trip per
 * chunk. JSON values go one per write.
 */
export function openSessionStream(
  topic: string,
  options: StreamOptions,
  send: (request: SessionWrite) => Promise<StreamWriteResponse>,
): StreamWriter {
  const id = options.id ?? randomId();
  const queue: Array<{ text: string } | { data: string }> = [];
  let ending: { status: WireStatus; error?: string } | undefined;
  let failure: unknown;
  let sending = false;
  let settle!: (result: StreamResult) => void;
  let fail!: (error: unknown) => void;
  const done = new Promise<StreamResult>((resolve, reject) => ((settle = resolve), (fail = reject)));
  done.catch(() => {});
  let first: SessionWrite | undefined = { topic, streamId: id, event: options.event ?? "stream", meta: options.meta === undefined ? "" : JSON.stringify(options.meta) };

  const pump = async () => {
    if (sending) return;
    sending = true;
    try {
      while (first || queue.length > 0 || ending) {
        const request: SessionWrite = first ?? { topic, streamId: id };
        first = undefined;
        const head = queue.shift();
        if (head && "text" in head) {
          // Text queued behind it goes in the same write.
          let text = head.text;
          while (queue[0] && "text" in queue[0]) text += (queue.shift() as { text: string }).text;
          request.text = text;
        } else if (head) request.data = head.data;
        const last = queue.length === 0 && ending;
        if (last) Object.assign(request, ending), (ending = undefined);
        const reply = await send(request);
        if (last) {
          const result: StreamResult = { id, chunks: Number(reply.chunks), status: last.status === WireStatus.ERROR ? "error" : last.status === WireStatus.CANCELLED ? "cancelled" : "done" };
          const position = positionOf(reply.position);
          if (position) result.position = position;
          settle(result);
          return;
        }
      }
    } catch (error) {
      failure = error;
      queue.length = 0;
      fail(error);
    } finally {
      sending = false;
    }
  };
  let closed = false;
  const push = (item: { text: string } | { data: string }) => {
    if (closed || failure) throw failure ?? new ConnectError(`stream "${id}" has already ended`);
    queue.push(item);
    void pump();
  };
  const finish = (status: WireStatus, error?: string) => {
    if (!closed && !failure) {
      closed = true;
      ending = error === undefined ? { status } : { status, error };
      void pump();
    }
    return done;
  };
  void pump();
  return {
    id,
    done,
    write(chunk) {
      push(typeof chunk === "string" ? { text: chunk } : { data: JSON.stringify(chunk ?? null) });
    },
    end: () => finish(WireStatus.DONE),
    error: (message) => finish(WireStatus.ERROR, message || "error"),
    cancel: () => finish(WireStatus.CANCELLED),
  };
}

/**
 * A random stream id. crypto.randomUUID exists only in secure contexts (a
 * page on plain http from another host has none); getRandomValues always.
 */
function randomId(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
