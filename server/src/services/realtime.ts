import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  ConnectResponseSchema,
  ListenResponseSchema,
  RealtimeService,
  type ConnectRequest,
} from "../../../gen/chorus/v1/realtime_pb.js";
import type { ChorusNode } from "../node.js";
import type { Session } from "../session.js";
import { checkLength, FIELD_LIMITS } from "../validate.js";
import { sessionStream } from "./stream.js";

/** RealtimeService: end-user clients. */
export function realtimeService(node: ChorusNode): Partial<ServiceImpl<typeof RealtimeService>> {
  const caller = (ctx: HandlerContext) => node.identify(ctx.requestHeader);
  return {
    async *connect(requests: AsyncIterable<ConnectRequest>, ctx: HandlerContext) {
      const session = node.openSession(await caller(ctx), "connect");
      void readCommands(node, session, requests).catch((error: unknown) => {
        node.logError("session command failed", error);
        session.close(new ConnectError("internal error", Code.Internal));
      });
      try {
        yield* sessionStream(ConnectResponseSchema, session, ctx);
      } finally {
        session.close();
      }
    },

    async *listen(req, ctx) {
      checkLength(req.client, FIELD_LIMITS.listenClient, "client");
      const session = node.openSession(await caller(ctx), "listen");
      try {
        yield* sessionStream(ListenResponseSchema, session, ctx);
      } finally {
        session.close();
      }
    },

    subscribe: async (req, ctx) => node.sessionFor(req.sessionId, await caller(ctx)).subscribe(req),
    unsubscribe: async (req, ctx) => node.sessionFor(req.sessionId, await caller(ctx)).unsubscribe(req),

    async publish(req, ctx) {
      const identity = await caller(ctx);
      const session = req.sessionId ? node.sessionFor(req.sessionId, identity) : undefined;
      return node.publish(req, { identity, session });
    },

    async getHistory(req, ctx) {
      const identity = await caller(ctx);
      if (req.sessionId) node.sessionFor(req.sessionId, identity);
      return node.history(req, identity);
    },

    async ping(req, ctx) {
      node.sessionFor(req.sessionId, await caller(ctx));
      return node.pong();
    },

    // The session id proves the caller owns the session; the new token must
    // be for the same user (checked by the node).
    refreshToken: (req) => node.refreshToken(node.sessionFor(req.sessionId, undefined), req),

    track: async (req, ctx) => node.track(node.sessionFor(req.sessionId, await caller(ctx)), req),
    untrack: async (req, ctx) => node.untrack(node.sessionFor(req.sessionId, await caller(ctx)), req),

    async getPresence(req, ctx) {
      const identity = await caller(ctx);
      if (req.sessionId) node.sessionFor(req.sessionId, identity);
      return node.getPresence(req, identity);
    },

    endSession: async (req, ctx) => node.sessionFor(req.sessionId, await caller(ctx)).end(),
    streamWrite: async (req, ctx) => node.streamWrite(node.sessionFor(req.sessionId, await caller(ctx)), req),

    async getPresenceStats(req, ctx) {
      const identity = await caller(ctx);
      if (req.sessionId) node.sessionFor(req.sessionId, identity);
      return node.getPresenceStats(req, identity);
    },
  };
}

/**
 * Runs a bidi session's frames in order (connect's generic path: JSON
 * clients and the like). At most maxInFlightCommands are unsettled at
 * once; past that the request stream is simply not read, which flow
 * control turns into the client waiting.
 */
async function readCommands(node: ChorusNode, session: Session, requests: AsyncIterable<ConnectRequest>): Promise<void> {
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const settled = () => {
    inFlight--;
    wake?.();
  };
  try {
    for await (const frame of requests) {
      if (session.isClosed) return;
      inFlight++;
      await session.handleFrame(frame, settled);
      while (inFlight >= node.config.maxInFlightCommands && !session.isClosed) await new Promise<void>((resolve) => (wake = resolve));
    }
    // The client closed its side: finish what is queued, then end (a clean goodbye: its presence leaves at once).
    session.close(undefined, true);
  } catch (error) {
    session.close(malformed(error));
  }
}

/** A frame that fails to decode ends its session with INVALID_ARGUMENT. */
function malformed(error: unknown): ConnectError {
  const e = ConnectError.from(error);
  if (e.code === Code.Internal || e.code === Code.Unknown) {
    return new ConnectError(`malformed frame: ${e.rawMessage}`, Code.InvalidArgument);
  }
  return e;
}
