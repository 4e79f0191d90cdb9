import type { ServiceImpl } from "@connectrpc/connect";
import type { ServerService } from "../../../gen/chorus/v1/server_pb.js";
import type { ChorusNode } from "../node.js";

/** ServerService: trusted back ends, authenticated by API key. */
export function serverService(node: ChorusNode): Partial<ServiceImpl<typeof ServerService>> {
  return {
    async emit(req, ctx) {
      node.apiKeys.check(ctx.requestHeader);
      return node.emit(req);
    },
    async sendToUser(req, ctx) {
      node.apiKeys.check(ctx.requestHeader);
      return node.sendToUser(req);
    },
  };
}
