import { RealtimeClient as BaseClient, type RealtimeClientOptions } from "./client.js";
import { FetchCalls } from "./fetch-calls.js";
import { ListenSessionTransport } from "./listen-session.js";

/**
 * The client for browsers (and any fetch runtime): a Listen stream plus
 * unary calls, since fetch cannot stream a request body.
 */
export class RealtimeClient extends BaseClient {
  constructor(options: RealtimeClientOptions) {
    super(options, new ListenSessionTransport(new FetchCalls(options.url)));
  }
}

export { Channel } from "./channel.js";
export { reconnectDelay, type ChannelOptions, type RealtimeClientOptions, type StatusListener } from "./client.js";
export * from "./types.js";
export { ChorusError, HistoryGapError, NotConnectedError, SessionEndedError, SubscriptionRefusedError, TimeoutError } from "./errors.js";
export type { PresenceEntry } from "./presence.js";
export type { StreamState, StreamStatus, ViewerStream } from "./streams.js";
export type { StreamOptions, StreamResult, StreamWriter } from "./stream-writer.js";
