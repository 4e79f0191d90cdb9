import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { ServerService } from "../../gen/chorus/v1/server_pb.js";
import { positionOf } from "./convert.js";
import type { PublishResult } from "./types.js";

export interface ServerSdkOptions {
  /** The Chorus server, e.g. http://localhost:8080. */
  url: string;
  /** An API key from the server's CHORUS_API_KEYS. */
  apiKey?: string;
}

export interface EmitOptions {
  /** Store the event in the topic's history. */
  persist?: boolean;
  /** Your own id: a retried emit with the same id is stored once. */
  id?: string;
  /** Attribute the event to this user (payload.userId). */
  userId?: string;
}

export interface ServerSdk {
  socket: {
    /** Broadcasts `event` with `data` to every subscriber of `topic`. */
    emit(event: string, data: unknown, topic: string, options?: EmitOptions): Promise<PublishResult>;
    /** Sends `event` with `data` to every connection of one user, which receives it with realtime.on(event). */
    sendTo(userId: string, event: string, data: unknown): Promise<{ id: string }>;
  };
  /** The same as socket.sendTo. */
  sendTo(userId: string, event: string, data: unknown): Promise<{ id: string }>;
  /** Closes the connection to the server. */
  close(): void;
}

/** The SDK for trusted back ends (ServerService, authenticated by API key). */
export function createServerSdk(options: ServerSdkOptions): ServerSdk {
  const sessionManager = new Http2SessionManager(options.url);
  const transport = createConnectTransport({ baseUrl: options.url, httpVersion: "2", sessionManager });
  const client: Client<typeof ServerService> = createClient(ServerService, transport);
  const headers: Record<string, string> = options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {};
  const sendTo = async (userId: string, event: string, data: unknown) => {
    const reply = await client.sendToUser({ userId, event, data: data === undefined ? "" : JSON.stringify(data) }, { headers });
    return { id: reply.id };
  };
  return {
    sendTo,
    socket: {
      sendTo,
      async emit(event, data, topic, opts = {}) {
        const reply = await client.emit(
          {
            topic,
            event,
            data: data === undefined ? "" : JSON.stringify(data),
            persist: opts.persist ?? false,
            id: opts.id ?? "",
            userId: opts.userId ?? "",
          },
          { headers },
        );
        const result: PublishResult = { id: reply.id, timestamp: Number(reply.timestamp) };
        const position = positionOf(reply.position);
        if (position) result.position = position;
        return result;
      },
    },
    close: () => sessionManager.abort(),
  };
}
