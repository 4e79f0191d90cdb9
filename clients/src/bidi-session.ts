import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import {
  ConnectRequestSchema,
  RealtimeService,
  type ConnectRequest,
  type ServerFrame,
} from "../../gen/chorus/v1/realtime_pb.js";
import { sessionEnded, type CommandCase, type CommandInit, type CommandResult, type SessionConnection, type SessionTransport } from "./session.js";

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/**
 * A session on the bidirectional `Connect` stream (HTTP/2): commands are
 * frames with a request id, answered by Reply frames on the same stream, so
 * they are handled by the server strictly in the order they were sent.
 */
export class BidiSessionTransport implements SessionTransport {
  private readonly client: Client<typeof RealtimeService>;

  constructor(
    transport: Transport,
    /** Closes the HTTP/2 connection (the next call opens a new one). */
    private readonly closeConnection: () => void = () => {},
  ) {
    this.client = createClient(RealtimeService, transport);
  }

  open(headers: Record<string, string>): SessionConnection {
    return new BidiSession(this.client, headers);
  }

  dispose(): void {
    this.closeConnection();
  }

  reset(): void {
    this.closeConnection();
  }
}

class BidiSession implements SessionConnection {
  readonly frames: AsyncIterable<ServerFrame>;
  private readonly outgoing = createWritableIterable<ConnectRequest>();
  private readonly pending = new Map<bigint, Pending>();
  private readonly abort = new AbortController();
  private nextRequestId = 1n;
  private ended = false;

  constructor(client: Client<typeof RealtimeService>, headers: Record<string, string>) {
    const responses = client.connect(this.outgoing, { headers, signal: this.abort.signal });
    this.frames = this.pump(responses);
  }

  command<K extends CommandCase>(kind: K, value: CommandInit<K>): Promise<CommandResult<K>> {
    if (this.ended) return Promise.reject(sessionEnded());
    const requestId = this.nextRequestId++;
    const frame = create(ConnectRequestSchema, { requestId, command: { case: kind, value } as ConnectRequest["command"] });
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, { resolve: resolve as (v: unknown) => void, reject });
      this.outgoing.write(frame).catch(() => {
        // The stream is gone; the pump rejects everything pending.
      });
    });
  }

  close(): void {
    if (this.ended) return;
    this.outgoing.close();
    this.abort.abort();
    this.finish(sessionEnded());
  }

  private async *pump(responses: AsyncIterable<{ frames: ServerFrame[] }>): AsyncGenerator<ServerFrame> {
    try {
      for await (const response of responses) {
        for (const frame of response.frames) {
          if (frame.kind.case === "reply") this.settle(frame.kind.value);
          else yield frame;
        }
      }
      this.finish(sessionEnded());
    } catch (error) {
      const e = ConnectError.from(error);
      this.finish(e);
      // Our own close() aborts the call: that is an end, not a failure.
      if (!(this.abort.signal.aborted && e.code === Code.Canceled)) throw e;
    }
  }

  private settle(reply: { requestId: bigint; result: { case: string | undefined; value?: unknown } }): void {
    const pending = this.pending.get(reply.requestId);
    if (!pending) return;
    this.pending.delete(reply.requestId);
    if (reply.result.case === "error") {
      const e = reply.result.value as { code: number; message: string };
      pending.reject(new ConnectError(e.message, e.code as Code));
    } else {
      pending.resolve(reply.result.value);
    }
  }

  private finish(error: ConnectError): void {
    this.ended = true;
    this.outgoing.close();
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}
