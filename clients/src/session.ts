import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Reply, ServerFrame } from "../../gen/chorus/v1/realtime_pb.js";
import type { ConnectRequestSchema } from "../../gen/chorus/v1/realtime_pb.js";

/** The commands a session carries, keyed as in ConnectRequest's oneof. */
type CommandUnion = NonNullable<MessageInitShape<typeof ConnectRequestSchema>["command"]>;
export type CommandCase = NonNullable<CommandUnion["case"]>;
export type CommandInit<K extends CommandCase> = Extract<CommandUnion, { case: K }>["value"];
export type CommandResult<K extends CommandCase> = Extract<Reply["result"], { case: K }>["value"];

/**
 * One open session, whatever carries it. `frames` yields every server frame
 * except replies (a Welcome first); it ends when the session ends and throws
 * if it failed.
 */
export interface SessionConnection {
  readonly frames: AsyncIterable<ServerFrame>;
  command<K extends CommandCase>(kind: K, value: CommandInit<K>): Promise<CommandResult<K>>;
  close(): void;
}

export interface SessionTransport {
  open(headers: Record<string, string>): SessionConnection;
  /** Releases sockets so the process (or tab) can let go of them. */
  dispose(): void;
  /** Forgets connections found dead, so the next session opens a fresh one. */
  reset(): void;
}

/** Thrown by commands on a session that has ended. */
export function sessionEnded(): ConnectError {
  return new ConnectError("the session has ended", Code.Unavailable);
}
