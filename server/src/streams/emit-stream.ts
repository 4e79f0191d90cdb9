import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { StreamStatus } from "../../../gen/chorus/v1/payload_pb.js";
import { EmitStreamResponseSchema, type EmitStreamRequest, type EmitStreamResponse } from "../../../gen/chorus/v1/server_pb.js";
import { checkTopic } from "../topic.js";
import { checkData, checkEvent, checkMessageId, type MessageLimits } from "../validate.js";
import type { ActiveStream, StreamEnding } from "./active-stream.js";
import type { StreamRegistry } from "./registry.js";

const ENDINGS: Partial<Record<StreamStatus, StreamEnding>> = {
  [StreamStatus.DONE]: "done",
  [StreamStatus.ERROR]: "error",
  [StreamStatus.CANCELLED]: "cancelled",
};

export interface EmitStreamContext {
  streams: StreamRegistry;
  limits: MessageLimits & { maxTopicLength: number };
  /** Who produces (for the per-producer limit). */
  producer: string;
  /** Reserved event names and table topics are refused here. */
  checkTarget(topic: string, event: string): void;
}

/**
 * Serves one EmitStream call: the first message opens the stream, every
 * message may add a chunk, a status ends it (or the end of the request
 * stream: done). Whatever else ends the call (the producer goes away, a
 * refused chunk, a malformed message) ends the stream with an error for
 * every viewer: no stream is left open.
 */
export async function serveEmitStream(requests: AsyncIterable<EmitStreamRequest>, ctx: EmitStreamContext): Promise<EmitStreamResponse> {
  let stream: ActiveStream | undefined;
  let ending: { status: StreamEnding; code: StreamStatus; error: string } | undefined;
  try {
    for await (const req of requests) {
      if (ending) throw new ConnectError("a message after the stream's status: the status must come last", Code.InvalidArgument);
      if (!stream) stream = open(req, ctx);
      else if (req.topic !== "" || req.event !== "" || req.meta !== "" || req.streamId !== "") {
        throw new ConnectError("topic, event, meta and stream_id belong in the first message only", Code.InvalidArgument);
      }
      addChunk(stream, req, ctx);
      ending = endingOf(req);
    }
  } catch (error) {
    if (stream) void ctx.streams.end(stream, "error", producerGone(error));
    throw error;
  }
  if (!stream) throw new ConnectError("the request stream was empty: its first message opens the stream (topic, event)", Code.InvalidArgument);
  const stored = ctx.streams.end(stream, ending?.status ?? "done", ending?.error ?? "");
  if (!stored) throw new ConnectError(`stream "${stream.id}" was ended by the server before its producer ended it (it fell silent past the idle timeout)`, Code.DeadlineExceeded);
  const result = await stored;
  return create(EmitStreamResponseSchema, {
    streamId: stream.id,
    chunks: BigInt(stream.chunks),
    status: ending?.code ?? StreamStatus.DONE,
    position: result.seq > 0 ? { seq: BigInt(result.seq), epoch: result.epoch } : undefined,
  });
}

/** The chunk a message carries, if any, added to the stream (throws if refused). */
export function addChunk(stream: ActiveStream, req: { text: string; data: string }, ctx: Pick<EmitStreamContext, "streams" | "limits">): boolean {
  if (req.text !== "" && req.data !== "") throw new ConnectError("a message carries one chunk: text or data, not both", Code.InvalidArgument);
  if (req.text !== "") ctx.streams.add(stream, { text: req.text });
  else if (req.data !== "") ctx.streams.add(stream, { value: checkData(req.data, { ...ctx.limits, maxPayloadBytes: ctx.streams.limits.maxChunkBytes }) });
  else return false;
  return true;
}

/** How a message ends the stream, if it does. */
export function endingOf(req: { status: StreamStatus; error: string }): { status: StreamEnding; code: StreamStatus; error: string } | undefined {
  if (req.status === StreamStatus.UNSPECIFIED) {
    if (req.error !== "") throw new ConnectError("error goes with status ERROR", Code.InvalidArgument);
    return undefined;
  }
  const status = ENDINGS[req.status];
  if (!status) throw new ConnectError(`status ${req.status} is not a stream status`, Code.InvalidArgument);
  if (status !== "error" && req.error !== "") throw new ConnectError("error goes with status ERROR only", Code.InvalidArgument);
  return { status, code: req.status, error: req.error.slice(0, 1024) || (status === "error" ? "the producer reported an error" : "") };
}

/** Opens a stream from its first message (topic, event, meta, id). */
export function open(req: { topic: string; event: string; meta: string; streamId: string }, ctx: EmitStreamContext, maxPerProducer?: number): ActiveStream {
  if (req.topic === "") throw new ConnectError("the first message names the topic", Code.InvalidArgument);
  checkTopic(req.topic, ctx.limits.maxTopicLength);
  const event = req.event || "stream";
  checkEvent(event, ctx.limits);
  ctx.checkTarget(req.topic, event);
  checkMessageId(req.streamId);
  const meta = req.meta === "" ? "" : checkData(req.meta, ctx.limits, "meta");
  return ctx.streams.open({ id: req.streamId, topic: req.topic, event, meta }, ctx.producer, maxPerProducer);
}

/** What viewers read when a stream ends because its call failed. */
export function producerGone(error: unknown): string {
  const e = ConnectError.from(error);
  if (e.code === Code.Canceled || e.code === Code.Unavailable || e.code === Code.Unknown) return "the producer went away before ending the stream";
  return `the stream was refused: ${e.rawMessage}`;
}
