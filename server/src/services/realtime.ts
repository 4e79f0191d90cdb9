import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  ConnectResponseSchema,
  ListenResponseSchema,
  RealtimeService,
  type ConnectRequest,
} from "../../../gen/chorus/v1/realtime_pb.js";
import type { ChorusNode } from "../node.js";
import { sessionStream } from "./stream.js";

const presenceLater = async (): Promise<never> => {
  throw new ConnectError("presence is not available on this server yet", Code.Unimplemented);
};

/** RealtimeService: end-user clients. */
export function realtimeService(node: ChorusNode): Partial<ServiceImpl<typeof RealtimeService>> {
  const caller = (ctx: HandlerContext) => node.identify(ctx.requestHeader);
  return {
    async *connect(requests: AsyncIterable<ConnectRequest>, ctx: HandlerContext) {
      const session = node.openSession(await caller(ctx), "connect");
      void (async () => {
        try {
          for await (const frame of requests) {
            if (session.isClosed) return;
            await session.handleFrame(frame);
          }
          // The client closed its side: finish what is queued, then end.
          session.close();
        } catch (error) {
          session.close(malformed(error));
        }
      })();
      try {
        yield* sessionStream(ConnectResponseSchema, session, ctx);
      } finally {
        session.close();
      }
    },

    async *listen(_req, ctx) {
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

    track: presenceLater,
    untrack: presenceLater,
    getPresence: presenceLater,
  };
}

/** A frame that fails to decode ends its session with INVALID_ARGUMENT. */
function malformed(error: unknown): ConnectError {
  const e = ConnectError.from(error);
  if (e.code === Code.Internal || e.code === Code.Unknown) {
    return new ConnectError(`malformed frame: ${e.rawMessage}`, Code.InvalidArgument);
  }
  return e;
}
