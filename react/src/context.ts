import { createContext, createElement, useContext, useEffect, useState, type ReactNode } from "react";
import { RealtimeClient, type RealtimeClientOptions } from "@chorus/client";

const ChorusContext = createContext<RealtimeClient | undefined>(undefined);

export interface ChorusProviderProps extends Partial<RealtimeClientOptions> {
  /** A client made by the app instead (the provider then leaves its lifetime to the app). */
  client?: RealtimeClient;
  children?: ReactNode;
}

/**
 * Makes one RealtimeClient available to the components below it. With
 * `url` (and `token` or `getToken`) it makes the client itself, connects
 * when a component first subscribes, and disconnects when the provider
 * unmounts; a new `token` is handed to the live session (setToken).
 */
export function ChorusProvider({ client, children, ...options }: ChorusProviderProps): ReactNode {
  const [owned] = useState(() => {
    if (client) return undefined;
    if (!options.url) throw new Error("ChorusProvider needs a url (or a client)");
    return new RealtimeClient(options as RealtimeClientOptions);
  });
  const realtime = client ?? owned!;
  useEffect(() => {
    if (!owned) return;
    cancelDisconnect(owned);
    // Deferred: StrictMode unmounts and mounts again at once, and the client is kept across that.
    return () => scheduleDisconnect(owned);
  }, [owned]);
  const [token, setTokenSeen] = useState(options.token);
  useEffect(() => {
    if (options.token === undefined || options.token === token) return;
    setTokenSeen(options.token);
    realtime.setToken(options.token).catch(() => {}); // refused: the SDK reports it and keeps the previous token
  }, [realtime, options.token, token]);
  return createElement(ChorusContext.Provider, { value: realtime }, children);
}

const pendingDisconnects = new WeakMap<RealtimeClient, ReturnType<typeof setTimeout>>();

function scheduleDisconnect(realtime: RealtimeClient): void {
  pendingDisconnects.set(
    realtime,
    setTimeout(() => realtime.disconnect(), 0),
  );
}

function cancelDisconnect(realtime: RealtimeClient): void {
  clearTimeout(pendingDisconnects.get(realtime));
  pendingDisconnects.delete(realtime);
}

/** The provider's client, as `{ realtime }` (the shape the reference components destructure). */
export function useRealtime(): { realtime: RealtimeClient } {
  const realtime = useContext(ChorusContext);
  if (!realtime) throw new Error("useRealtime() must be called inside <ChorusProvider>");
  return { realtime };
}
