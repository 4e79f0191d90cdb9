import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { EmitSessionRequestSchema, EmitSessionResponseSchema, type EmitSessionResponse } from "../../gen/chorus/v1/server_pb.js";
import type { EmitRequestInit } from "./emit-batcher.js";
import { ConnectStream, type ConnectStreamHandler } from "./connect-stream.js";
import { envelope } from "./envelopes.js";
import type { H2Target } from "./h2-target.js";

const METHOD = "chorus.v1.ServerService/EmitSession";
/** A stream with nothing to answer for this long is ended: a script that emitted and is done can exit. */
const IDLE_MS = 200;

interface Waiter {
  resolve(response: EmitSessionResponse): void;
  reject(error: ConnectError): void;
}

/**
 * The server SDK's emit path: batches of emits written, as they are made,
 * into one long-lived EmitSession stream (Connect's streaming protocol,
 * binary), each answered in order. No stream, call or round trip per
 * batch: the cost per event is its bytes. A stream that fails rejects the
 * batches it had not answered (as a failed call would) and the next batch
 * opens a new one; an idle one is ended.
 */
export class EmitSession {
  private current: EmitStream | undefined;

  constructor(
    private readonly target: H2Target,
    private readonly headers: Readonly<Record<string, string>>,
  ) {}

  send(events: EmitRequestInit[]): Promise<EmitSessionResponse> {
    const message = envelope(0, toBinary(EmitSessionRequestSchema, create(EmitSessionRequestSchema, { events })));
    return new Promise((resolve, reject) => {
      const stream = (this.current ??= new EmitStream(this.target, this.headers, (gone) => {
        if (this.current === gone) this.current = undefined;
      }));
      stream.send(message, { resolve, reject });
    });
  }

  close(): void {
    this.current?.end();
  }
}

/** One EmitSession stream: writes batches, reads answers, hands each to the batch it answers. */
class EmitStream implements ConnectStreamHandler {
  private readonly call: ConnectStream;
  private readonly pending: Waiter[] = [];
  private gone = false;
  private ended = false;
  private idle: NodeJS.Timeout | undefined;

  constructor(
    target: H2Target,
    headers: Readonly<Record<string, string>>,
    private readonly onGone: (stream: EmitStream) => void,
  ) {
    this.call = new ConnectStream(target, METHOD, headers, this);
  }

  send(envelope: Buffer, waiter: Waiter): void {
    if (this.gone || this.ended) return waiter.reject(new ConnectError("the emit stream is closed", Code.Unavailable));
    clearTimeout(this.idle);
    this.pending.push(waiter);
    this.call.write(envelope);
  }

  /** Ends our side: the server answers what it has, then ends its own. */
  end(): void {
    if (this.ended || this.gone) return;
    this.ended = true;
    clearTimeout(this.idle);
    this.onGone(this); // new batches open a new stream
    this.call.end();
  }

  // ---- ConnectStreamHandler ----

  onMessage(body: Buffer): boolean {
    let response: EmitSessionResponse;
    try {
      response = fromBinary(EmitSessionResponseSchema, body);
    } catch (error) {
      this.call.close(new ConnectError(`the server's answer does not decode: ${String(error)}`, Code.Internal));
      return false;
    }
    this.pending.shift()?.resolve(response);
    if (this.pending.length === 0 && !this.ended) this.idle = setTimeout(() => this.end(), IDLE_MS);
    return true;
  }

  /** The stream is over: batches it had not answered fail with why (as a failed call would). */
  onEnd(error: ConnectError | undefined): void {
    this.gone = true;
    clearTimeout(this.idle);
    this.onGone(this);
    const reason = error ?? new ConnectError("the server ended the emit stream", Code.Unavailable);
    for (const waiter of this.pending.splice(0)) waiter.reject(reason);
  }
}
