import type { ServiceImpl } from "@connectrpc/connect";
import type { ServerService } from "../../../gen/chorus/v1/server_pb.js";
import type { ChorusNode } from "../node.js";

/** ServerService: trusted back ends, authenticated by API key. */
export function serverService(node: ChorusNode): Partial<ServiceImpl<typeof ServerService>> {
  return {
    async emit(req, ctx) {
      return node.emit(req, node.apiKeys.check(ctx.requestHeader));
    },
    async emitMany(req, ctx) {
      return node.emitMany(req, node.apiKeys.check(ctx.requestHeader));
    },
    // Batches answered one after another, in order (transport/emit-session.ts serves plain binary streams without connect).
    async *emitSession(requests, ctx) {
      const scope = node.apiKeys.check(ctx.requestHeader);
      for await (const batch of requests) yield { results: await node.emitBatch(batch, scope) };
    },
    async emitStream(requests, ctx) {
      return node.emitStream(requests, node.apiKeys.check(ctx.requestHeader));
    },
    async sendToUser(req, ctx) {
      return node.sendToUser(req, node.apiKeys.check(ctx.requestHeader));
    },
    async listConnections(req, ctx) {
      node.apiKeys.check(ctx.requestHeader);
      return node.listConnections(req);
    },
    async disconnectUser(req, ctx) {
      node.apiKeys.check(ctx.requestHeader);
      return node.disconnectUser(req);
    },
    async listPresence(req, ctx) {
      node.apiKeys.check(ctx.requestHeader);
      return node.listPresence(req.topic);
    },
    // SQL on the tracked database: back ends only (a user token never reaches it).
    async query(req, ctx) {
      node.apiKeys.check(ctx.requestHeader);
      return node.query(req);
    },
    async exec(req, ctx) {
      node.apiKeys.check(ctx.requestHeader);
      return node.exec(req);
    },
  };
}
