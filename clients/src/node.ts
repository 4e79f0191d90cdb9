import { BidiSessionTransport } from "./bidi-session.js";
import { H2Target } from "./h2-target.js";
import { RealtimeClient as BaseClient, type RealtimeClientOptions } from "./client.js";

/**
 * The client for Node: the whole session on one bidirectional HTTP/2
 * stream. disconnect() closes the HTTP/2 connection, so the process can exit.
 */
export class RealtimeClient extends BaseClient {
  constructor(options: RealtimeClientOptions) {
    super(options, new BidiSessionTransport(new H2Target(options.url)));
  }
}

export { Channel } from "./channel.js";
export { reconnectDelay, type ChannelOptions, type RealtimeClientOptions, type StatusListener } from "./client.js";
export * from "./types.js";
export { ChorusError, HistoryGapError, NotConnectedError, SessionEndedError, SubscriptionRefusedError, TimeoutError } from "./errors.js";
export type { PresenceEntry } from "./presence.js";
export type { StreamState, StreamStatus, ViewerStream } from "./streams.js";
export type { StreamOptions, StreamResult, StreamWriter } from "./stream-writer.js";
