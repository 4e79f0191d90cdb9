import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { StreamWriteResponseSchema, type StreamWriteRequest, type StreamWriteResponse } from "../../../gen/chorus/v1/realtime_pb.js";
import type { ActiveStream } from "./active-stream.js";
import { addChunk, endingOf, open, type EmitStreamContext } from "./emit-stream.js";

/** Streams one connection may have open at once (a back end's API key may have more: CHORUS_MAX_STREAMS_PER_PRODUCER). */
const MAX_PER_CONNECTION = 16;

/** What a user's StreamWrite needs of its session. */
export interface StreamingSession {
  /** The session's open streams, by the client's stream id. */
  readonly producing: Map<string, ActiveStream>;
  /** Takes one from the user's publish budget: false when spent. */
  takePublish(): boolean;
}

/**
 * One StreamWrite of a user's session: opens the stream on its first
 * write, adds the chunk a write carries (each counts against the user's
 * publish rate), ends it on a status. A refused write ends the stream
 * with an error for its viewers, as for a back end's.
 */
export async function serveStreamWrite(session: StreamingSession, req: StreamWriteRequest, ctx: EmitStreamContext): Promise<StreamWriteResponse> {
  if (req.streamId === "") throw new ConnectError("stream_id is empty: name the stream (the client's own id)", Code.InvalidArgument);
  let stream = session.producing.get(req.streamId);
  if (stream && !ctx.streams.isOpen(stream)) {
    session.producing.delete(req.streamId);
    throw new ConnectError(`stream "${req.streamId}" has ended (its producer fell silent past the idle timeout, or a write was refused)`, Code.FailedPrecondition);
  }
  if (!stream) {
    if (req.event === "") throw new ConnectError(`stream "${req.streamId}" is not open on this session (it ended with its session?): a stream's first write names its event`, Code.FailedPrecondition);
    if (session.producing.size >= MAX_PER_CONNECTION) throw new ConnectError(`this connection already has ${MAX_PER_CONNECTION} streams open, the limit; end one first`, Code.ResourceExhausted);
    stream = open(req, ctx, MAX_PER_CONNECTION);
    session.producing.set(req.streamId, stream);
  } else if (req.topic !== "" && req.topic !== stream.opening.topic) {
    throw new ConnectError(`stream "${req.streamId}" is on "${stream.opening.topic}", not "${req.topic}"`, Code.InvalidArgument);
  } else if (req.event !== "" || req.meta !== "") {
    throw new ConnectError("event and meta belong in a stream's first write only", Code.InvalidArgument);
  }
  try {
    if ((req.text !== "" || req.data !== "") && !session.takePublish()) {
      throw new ConnectError("streaming faster than the publish rate allows; slow down (or send larger chunks)", Code.ResourceExhausted);
    }
    addChunk(stream, req, ctx);
    const ending = endingOf(req);
    if (!ending) return create(StreamWriteResponseSchema, { streamId: stream.id, chunks: BigInt(stream.chunks) });
    session.producing.delete(req.streamId);
    const stored = ctx.streams.end(stream, ending.status, ending.error);
    if (!stored) throw new ConnectError(`stream "${stream.id}" had already ended`, Code.FailedPrecondition);
    const result = await stored;
    return create(StreamWriteResponseSchema, { streamId: stream.id, chunks: BigInt(stream.chunks), position: { seq: BigInt(result.seq), epoch: result.epoch } });
  } catch (error) {
    session.producing.delete(req.streamId);
    void ctx.streams.end(stream, "error", `the stream was refused: ${ConnectError.from(error).rawMessage}`);
    throw error;
  }
}
