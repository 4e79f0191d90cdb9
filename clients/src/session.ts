import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import type { Reply } from "../../gen/chorus/v1/realtime_pb.js";
import type { ConnectRequestSchema } from "../../gen/chorus/v1/realtime_pb.js";
import { SessionEndedError, TimeoutError } from "./errors.js";
import type { InboundFrame } from "./frames.js";

/** The commands a session carries, keyed as in ConnectRequest's oneof. */
type CommandUnion = NonNullable<MessageInitShape<typeof ConnectRequestSchema>["command"]>;
export type CommandCase = NonNullable<CommandUnion["case"]>;
export type CommandInit<K extends CommandCase> = Extract<CommandUnion, { case: K }>["value"];
export type CommandResult<K extends CommandCase> = Extract<Reply["result"], { case: K }>["value"];

/**
 * One open session, whatever carries it. `frames` yields every server frame
 * except replies (a Welcome first), a server message's frames at a time (a
 * busy session receives them in dozens: one await each would cost more than
 * decoding them); it ends when the session ends and throws if it failed.
 */
export interface SessionConnection {
  readonly frames: AsyncIterable<InboundFrame[]>;
  /** Sends a command; past `deadline.at` it fails with `deadline.expired()` (answered or not). */
  command<K extends CommandCase>(kind: K, value: CommandInit<K>, deadline: Deadline): Promise<CommandResult<K>>;
  close(): void;
}

/**
 * When a command gives up, and what it then fails with. A plain time rather
 * than an AbortSignal: an AbortController, its timer and its listeners per
 * command were a fifth of a Node client's CPU per publish; the bidi session
 * keeps one timer for all its commands' deadlines (a browser's fetch still
 * needs a signal per call).
 */
export interface Deadline {
  /** The time (Date.now()) past which the command gives up. */
  readonly at: number;
  /** The error the command then fails with. */
  expired(): ConnectError;
}

/** A command's deadline `ms` from now; it remembers whether it fired, and says what got no answer within `withinMs`. */
export class CommandDeadline implements Deadline {
  readonly at: number;
  fired = false;

  constructor(
    ms: number,
    private readonly what: string,
    private readonly withinMs = ms,
  ) {
    this.at = Date.now() + ms;
  }

  expired(): ConnectError {
    this.fired = true;
    return new TimeoutError(`${this.what} got no answer within ${this.withinMs} ms`);
  }
}

export interface SessionTransport {
  open(headers: Record<string, string>): SessionConnection;
  /** Releases sockets so the process (or tab) can let go of them. */
  dispose(): void;
  /** Forgets connections found dead, so the next session opens a fresh one. */
  reset(): void;
}

const UNSENT = Symbol("chorus.unsent");

/**
 * Thrown by commands on a session that has ended. `sent` tells whether the
 * command may have reached the server: one that did not can be sent again
 * on the next session without being applied twice. (Marked by a symbol:
 * ConnectError's instanceof matches any ConnectError-shaped object.)
 */
export function sessionEnded(sent = false): ConnectError {
  const error = new SessionEndedError();
  if (!sent) Object.defineProperty(error, UNSENT, { value: true });
  return error;
}

/** Whether a command failed before it could reach the server (its session had ended). */
export function unsent(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { [UNSENT]?: boolean })[UNSENT] === true;
}
