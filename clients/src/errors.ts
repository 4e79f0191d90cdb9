import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The SDK's errors: each is a ConnectError (its `code` says what happened,
 * `rawMessage` why, `cause` what was behind it), and the common conditions
 * have a class of their own to test with `instanceof`:
 *
 * ```ts
 * try { await channel.ready() } catch (e) { if (e instanceof SubscriptionRefusedError) … }
 * ```
 *
 * Their `name` stays "ConnectError": Connect recognises its errors by that
 * name (and by shape), and an error it did not recognise would be wrapped
 * again, losing its code.
 */
export class ChorusError extends ConnectError {
  constructor(message: string, code: Code, cause?: unknown) {
    super(message, code, undefined, undefined, cause);
  }

  // ConnectError matches any ConnectError-shaped object; these classes match their own instances only.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/** A command found no session with the server within its deadline (the client was connecting or reconnecting): DEADLINE_EXCEEDED. */
export class NotConnectedError extends ChorusError {
  constructor(message: string) {
    super(message, Code.DeadlineExceeded);
  }
}

/** A command was sent and got no answer within its deadline (the connection is then replaced): DEADLINE_EXCEEDED. */
export class TimeoutError extends ChorusError {
  constructor(message: string) {
    super(message, Code.DeadlineExceeded);
  }
}

/** The server refused a subscription for good (permission, a bad topic or filter, a join hook's no), with its code and message. */
export class SubscriptionRefusedError extends ChorusError {
  constructor(
    readonly topic: string,
    refusal: ConnectError,
  ) {
    super(refusal.rawMessage, refusal.code, refusal);
  }
}

/** The session ended before the command was answered (connection lost, server going away): UNAVAILABLE. */
export class SessionEndedError extends ChorusError {
  constructor() {
    super("the session has ended", Code.Unavailable);
  }
}

/**
 * Messages of a topic were missed and cannot be recovered: while this
 * client was away they went past the topic's retention (`older_than_retained`),
 * the topic's history was reset (`history_reset`), or they are older than the
 * recovery window and this user may not read history (`not_permitted`):
 * DATA_LOSS. The channel carries on with what is there; an app that keeps
 * state from the messages should reload it. Reported to `onError` unless the
 * channel has a listener for `system:history_gap`, which receives the
 * server's notice itself.
 */
export class HistoryGapError extends ChorusError {
  constructor(
    readonly topic: string,
    readonly reason: string,
    /** The first and last positions missed, when the server knows them. */
    readonly missedFrom?: number,
    readonly missedTo?: number,
  ) {
    const range = missedFrom !== undefined && missedTo !== undefined ? ` (positions ${missedFrom} to ${missedTo})` : "";
    super(`messages of ${topic} were missed and cannot be recovered${range}: ${reason}`, Code.DataLoss);
  }
}
