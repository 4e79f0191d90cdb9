import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import type { ConnectResponseSchema, ListenResponseSchema } from "../../../gen/chorus/v1/realtime_pb.js";
import type { Session } from "../session.js";
import { abortStream } from "../transport/universal/abort.js";

type FrameBatchSchema = typeof ConnectResponseSchema | typeof ListenResponseSchema;

/** JSON clients cannot take pre-encoded frames; binary ones always do. */
function wantsJson(ctx: HandlerContext): boolean {
  return (ctx.requestHeader.get("content-type") ?? "").includes("json");
}

/**
 * A session's outbox as a response stream: everything queued since the last
 * write leaves as one response message. For binary clients the frames are
 * spliced in already encoded (as field 1 entries), so no frame is encoded
 * twice, whatever the number of subscribers.
 */
export async function* sessionStream<S extends FrameBatchSchema>(
  schema: S,
  session: Session,
  ctx: HandlerContext,
): AsyncGenerator<MessageShape<S>> {
  const json = wantsJson(ctx);
  // A client that does not read is cut off at the HTTP layer: this generator may be parked in a write.
  session.outbox.onAbort = ctx.values.get(abortStream);
  for (;;) {
    const batch = await session.outbox.next(ctx.signal);
    if (!batch) return;
    const message = create(schema as DescMessage) as MessageShape<S>;
    if (json) {
      message.frames = batch.map((f) => f.frame);
    } else {
      message.$unknown = batch.map((f) => f.field);
    }
    yield message;
  }
}
