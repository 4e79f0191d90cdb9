import { Code, ConnectError } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { EmitRequestSchema, EmitResponse, EmitResult } from "../../gen/chorus/v1/server_pb.js";

export type EmitRequestInit = MessageInitShape<typeof EmitRequestSchema>;

/** Events per batch: what every server takes (CHORUS_MAX_EMIT_BATCH is at least this), and plenty to spread a batch's cost. */
export const MAX_BATCH = 100;
/**
 * A batch's text (data, topics, event names, ids), in UTF-16 units: with
 * up to three bytes each, a batch stays under what a server reads as one
 * message by default (twice the 64 KiB payload limit plus 64 KiB). An
 * event larger than this travels alone.
 */
export const MAX_BATCH_CHARS = 48 * 1024;
/** Batches sent and not yet answered; past it, emits wait in the queue (and gather into fuller batches). */
const MAX_IN_FLIGHT = 8;

/**
 * Gathers a back end's emits into batches, in the order they are made:
 * every emit made in one turn goes in one batch, sent at the end of that
 * turn without waiting for the batches before it (their order is kept by
 * the stream they travel on). A loop that emits without awaiting costs a
 * batch per hundred events; each emit still gets its own answer.
 */
export class EmitBatcher {
  private queue: Array<{ request: EmitRequestInit; resolve(reply: EmitResponse): void; reject(error: unknown): void }> = [];
  private scheduled = false;
  private inFlight = 0;

  constructor(private readonly send: (requests: EmitRequestInit[]) => Promise<{ results: EmitResult[] }>) {}

  emit(request: EmitRequestInit): Promise<EmitResponse> {
    return new Promise((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(this.flush);
      }
    });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    while (this.queue.length > 0 && this.inFlight < MAX_IN_FLIGHT) {
      const batch = this.queue.splice(0, batchLength(this.queue));
      this.inFlight++;
      void settleAll(this.send(batch.map((b) => b.request)), batch).finally(this.answered);
    }
  };

  private readonly answered = (): void => {
    this.inFlight--;
    if (this.queue.length > 0 && !this.scheduled) this.flush();
  };
}

/** How many queued events the next batch takes: up to MAX_BATCH, and MAX_BATCH_CHARS of text (at least one). */
function batchLength(queue: ReadonlyArray<{ request: EmitRequestInit }>): number {
  let chars = 0;
  let n = 0;
  while (n < queue.length && n < MAX_BATCH) {
    const r = queue[n]!.request;
    chars += (r.data?.length ?? 0) + (r.topic?.length ?? 0) + (r.event?.length ?? 0) + (r.id?.length ?? 0) + (r.userId?.length ?? 0) + 32;
    if (n > 0 && chars > MAX_BATCH_CHARS) break;
    n++;
  }
  return n;
}

/** Hands each event of a batch its own result (or the batch's failure). */
export function settleAll(call: Promise<{ results: EmitResult[] }>, batch: ReadonlyArray<{ resolve(reply: EmitResponse): void; reject(error: unknown): void }>): Promise<void> {
  return call.then(
    (reply) =>
      batch.forEach((b, i) => {
        const result = reply.results[i]?.result;
        if (result?.case === "emitted") b.resolve(result.value);
        else if (result?.case === "error") b.reject(new ConnectError(result.value.message, result.value.code as Code));
        else b.reject(new ConnectError("the server answered fewer events than were sent", Code.Internal));
      }),
    (error: unknown) => batch.forEach((b) => b.reject(error)),
  );
}
