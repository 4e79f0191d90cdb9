import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { BidiSessionTransport } from "./bidi-session.js";
import { RealtimeClient as BaseClient, type RealtimeClientOptions } from "./client.js";

/**
 * The client for Node: the whole session on one bidirectional HTTP/2
 * stream. disconnect() closes the HTTP/2 connection, so the process can exit.
 */
export class RealtimeClient extends BaseClient {
  constructor(options: RealtimeClientOptions) {
    const sessionManager = new Http2SessionManager(options.url);
    const transport = createConnectTransport({ baseUrl: options.url, httpVersion: "2", sessionManager });
    super(options, new BidiSessionTransport(transport, () => sessionManager.abort()));
  }
}

export { Channel } from "./channel.js";
export { reconnectDelay, type RealtimeClientOptions, type StatusListener } from "./client.js";
export * from "./types.js";
