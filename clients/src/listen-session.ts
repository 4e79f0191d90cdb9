import type { DescMethodUnary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { RealtimeService, type ServerFrame } from "../../gen/chorus/v1/realtime_pb.js";
import type { FetchCalls } from "./fetch-calls.js";
import { delayUntil, MAX_TIMER_DELAY, unref } from "./timers.js";
import { sessionEnded, unsent, type CommandCase, type CommandInit, type CommandResult, type Deadline, type SessionConnection, type SessionTransport } from "./session.js";

/** Commands that change session state run one at a time, in call order, like frames on a stream. */
const ORDERED: ReadonlySet<CommandCase> = new Set(["subscribe", "unsubscribe", "publish", "track", "untrack", "refreshToken", "endSession", "streamWrite"]);

/**
 * A browser session: a `Listen` server stream (fetch can stream responses,
 * not requests) driven by unary calls that name the session. Ordered
 * commands are chained so the server sees them in the order the app made
 * them, exactly as on the bidirectional stream.
 */
export class ListenSessionTransport implements SessionTransport {
  constructor(private readonly calls: FetchCalls) {}

  open(headers: Record<string, string>): SessionConnection {
    return new ListenSession(this.calls, headers);
  }

  dispose(): void {
    // fetch keeps no sockets of ours.
  }

  reset(): void {
    // The fetch runtime owns its connections; a session that never answers
    // is given up by the client's connect timeout instead.
  }
}

class ListenSession implements SessionConnection {
  readonly frames: AsyncIterable<ServerFrame[]>;
  private readonly abort = new AbortController();
  private readonly sessionId: Promise<string>;
  /**
   * The commands' headers: the caller's, plus `chorus-node` naming the
   * node that holds this session (from its Welcome), so a load balancer
   * can send each command where its session is (see the README's
   * "Running several nodes").
   */
  private commandHeaders: Record<string, string>;
  private resolveSessionId!: (id: string) => void;
  private rejectSessionId!: (e: unknown) => void;
  private chain: Promise<unknown> = Promise.resolve();
  private ended = false;

  constructor(
    private readonly calls: FetchCalls,
    private readonly headers: Record<string, string>,
  ) {
    this.sessionId = new Promise((resolve, reject) => {
      this.resolveSessionId = resolve;
      this.rejectSessionId = (error) => reject(unsent(error) ? error : sessionEnded(false));
    });
    this.sessionId.catch(() => {});
    this.commandHeaders = headers;
    this.frames = this.pump();
  }

  command<K extends CommandCase>(kind: K, value: CommandInit<K>, deadline: Deadline): Promise<CommandResult<K>> {
    if (this.ended) return Promise.reject(sessionEnded(false));
    // The deadline runs from now, the wait behind earlier ordered commands included.
    const expired = new AbortController();
    // A deadline past what a timer takes (a timeout of weeks, or Infinity) is not watched.
    const timer = deadline.at - Date.now() <= MAX_TIMER_DELAY ? setTimeout(() => expired.abort(deadline.expired()), delayUntil(deadline.at)) : undefined;
    unref(timer);
    const call = async () => {
      // Until the call starts, nothing was sent: a session that ended meanwhile leaves the command free to go to the next.
      if (this.ended) throw sessionEnded(false);
      if (expired.signal.aborted) throw ConnectError.from(expired.signal.reason);
      const sessionId = await this.sessionId;
      const method = RealtimeService.method[kind] as DescMethodUnary;
      // The deadline aborts the request itself: a connection that stopped answering is let go with it.
      // (An aborted call fails with the signal's reason: the deadline's error.)
      const reply = await this.calls.unary(method, { ...(value as object), sessionId }, this.commandHeaders, AbortSignal.any([this.abort.signal, expired.signal]));
      return reply as CommandResult<K>;
    };
    const ordered = ORDERED.has(kind);
    const result = ordered ? this.chain.then(call, call) : call();
    if (ordered) this.chain = result.catch(() => {});
    void result.then(
      () => clearTimeout(timer),
      () => clearTimeout(timer),
    );
    return result;
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.abort.abort();
    this.rejectSessionId(sessionEnded());
  }

  private async *pump(): AsyncGenerator<ServerFrame[]> {
    try {
      const responses = this.calls.serverStream(RealtimeService.method.listen, { client: "chorus-js" }, this.headers, this.abort.signal);
      for await (const response of responses) {
        for (const frame of response.frames) {
          if (frame.kind.case !== "welcome") continue;
          if (frame.kind.value.nodeId) this.commandHeaders = { ...this.headers, "chorus-node": frame.kind.value.nodeId };
          this.resolveSessionId(frame.kind.value.sessionId);
        }
        yield response.frames;
      }
    } catch (error) {
      if (!this.ended) {
        this.ended = true;
        this.rejectSessionId(error);
        throw ConnectError.from(error);
      }
    } finally {
      this.ended = true;
      this.rejectSessionId(sessionEnded());
    }
  }
}
