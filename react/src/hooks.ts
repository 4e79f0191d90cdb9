import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from "react";
import type { Channel, ConnectionStatus, HistoryMessage, PresenceEntry, PublishOptions, PublishResult, RealtimePayload, StreamState } from "@chorus/client";
import { useRealtime } from "./context.js";
import { hold } from "./subscription.js";

/** The connection's status, re-rendering on each change: idle | connecting | connected | reconnecting | disconnected. */
export function useConnectionStatus(): ConnectionStatus {
  const { realtime } = useRealtime();
  const subscribe = useCallback((changed: () => void) => realtime.onStatusChange(() => changed()), [realtime]);
  return useSyncExternalStore(subscribe, () => realtime.status, () => realtime.status);
}

/** Event names to the payload types they carry: `useChannel<{ message: ChatMessage }>(…)`. */
export type EventMap = Record<string, unknown>;
export type Handlers<Events extends EventMap> = { [E in keyof Events & string]?: (payload: RealtimePayload<Events[E]>) => void } & {
  "*"?: (payload: RealtimePayload) => void;
};

export type ChannelState = "joining" | "subscribed" | "error";

export interface UseChannelResult<Events extends EventMap> {
  channel: Channel;
  /** joining until the server accepted the subscription; error (with `error`) if it refused. */
  state: ChannelState;
  error: Error | undefined;
  publish<E extends keyof Events & string>(event: E, data: Events[E], options?: PublishOptions): Promise<PublishResult>;
}

/**
 * Subscribes to `topic` while the component is mounted and calls
 * `handlers[event]` for each payload. Handlers may change on every render
 * without subscribing again (the latest ones are called); only a change of
 * topic, or of which events are handled, re-subscribes.
 */
export function useChannel<Events extends EventMap = Record<string, any>>(topic: string, handlers: Handlers<Events> = {}): UseChannelResult<Events> {
  const { realtime } = useRealtime();
  const latest = useRef(handlers);
  latest.current = handlers;
  const events = Object.keys(handlers).sort().join("\n");
  const [status, setStatus] = useState<{ topic: string; state: ChannelState; error?: Error }>({ topic, state: "joining" });
  const channel = realtime.channel(topic);

  useEffect(() => {
    const listeners = events
      .split("\n")
      .filter(Boolean)
      .map((event) => [event, (payload: RealtimePayload) => (latest.current as Record<string, ((p: RealtimePayload) => void) | undefined>)[event]?.(payload)] as const);
    const { channel, release } = hold(realtime, topic, (channel) => {
      for (const [event, listener] of listeners) channel.on(event, listener);
    });
    let live = true;
    setStatus((s) => (s.topic === topic && s.state === "subscribed" ? s : { topic, state: "joining" }));
    channel.ready().then(
      () => live && setStatus({ topic, state: "subscribed" }),
      (error: Error) => live && setStatus({ topic, state: "error", error }),
    );
    return () => {
      live = false;
      for (const [event, listener] of listeners) channel.off(event, listener);
      release();
    };
  }, [realtime, topic, events]);

  const publish = useCallback(
    <E extends keyof Events & string>(event: E, data: Events[E], options?: PublishOptions) => realtime.channel(topic).publish(event, data, options),
    [realtime, topic],
  );
  const current = status.topic === topic ? status : { state: "joining" as const, error: undefined };
  return { channel, state: current.state, error: current.error, publish };
}

const PRESENCE_EVENTS = ["presence:join", "presence:update", "presence:leave", "presence:sync"];

/**
 * Who is on `topic`: every member (a connection of a user) with its state,
 * kept current from presence events. With `state`, this client is one of
 * them (tracked under its user id, updated in place when `state` changes,
 * left on unmount).
 */
export function usePresence<T = any>(topic: string, state?: T): { members: Array<PresenceEntry<T>>; users: string[] } {
  const { realtime } = useRealtime();
  const [members, setMembers] = useState<Array<PresenceEntry<T>>>([]);
  useEffect(() => {
    const read = () => setMembers(Object.values(realtime.channel(topic).presence<T>()).flat());
    const { channel, release } = hold(realtime, topic, (channel) => {
      for (const event of PRESENCE_EVENTS) channel.on(event, read);
    });
    read();
    return () => {
      for (const event of PRESENCE_EVENTS) channel.off(event, read);
      release();
    };
  }, [realtime, topic]);

  const tracked = state === undefined ? undefined : JSON.stringify(state);
  useEffect(() => {
    if (tracked === undefined) return;
    const channel = realtime.channel(topic);
    channel.track(JSON.parse(tracked)).catch(() => {}); // refused: the SDK reports it through onError
  }, [realtime, topic, tracked]);
  const tracking = tracked !== undefined;
  useEffect(() => {
    if (!tracking) return;
    const channel = realtime.channel(topic);
    return () => void channel.untrack().catch(() => {});
  }, [realtime, topic, tracking]);

  return { members, users: [...new Set(members.map((m) => m.userId))] };
}

export interface UseHistoryResult<T> {
  /** Oldest first: the loaded page(s), then what arrived live since. */
  messages: Array<HistoryMessage<T>>;
  loading: boolean;
  error: Error | undefined;
  /** Whether older messages may remain (the last page was full). */
  hasMore: boolean;
  /** Loads the `limit` messages before the oldest one shown. */
  loadMore(): Promise<void>;
}

/**
 * The last `limit` persisted messages of `topic`, oldest first, followed
 * by each persisted message published while mounted (once each, whatever
 * the order in which the page and the live ones arrive); `loadMore()`
 * pages back.
 */
export function useHistory<T = any>(topic: string, limit = 50): UseHistoryResult<T> {
  const { realtime } = useRealtime();
  const [view, setView] = useState<{ topic: string; messages: Array<HistoryMessage<T>>; loading: boolean; error?: Error; hasMore: boolean }>({
    topic,
    messages: [],
    loading: true,
    hasMore: true,
  });
  useEffect(() => {
    let live = true;
    const merge = (incoming: Array<HistoryMessage<T>>) =>
      setView((v) => {
        const byId = new Map(v.topic === topic ? v.messages.map((m) => [m.id, m]) : []);
        for (const m of incoming) byId.set(m.id, m);
        return { ...v, topic, messages: [...byId.values()].sort((a, b) => a.seq - b.seq) };
      });
    const onPayload = (p: RealtimePayload<T>) => {
      if (!p.position || p.type === "presence") return;
      merge([{ id: p.id, room_id: topic, user_id: p.userId ?? "", event: p.event, data: p.data, created_at: p.timestamp, seq: p.position.seq, ...(p.old === undefined ? {} : { old: p.old }) }]);
    };
    const { channel, release } = hold(realtime, topic, (channel) => channel.on("*", onPayload));
    setView({ topic, messages: [], loading: true, hasMore: true });
    channel
      .ready()
      .then(() => channel.getHistory(limit))
      .then(
        (page) => {
          if (!live) return;
          merge(page as Array<HistoryMessage<T>>);
          setView((v) => ({ ...v, loading: false, hasMore: page.length === limit }));
        },
        (error: Error) => live && setView((v) => ({ ...v, loading: false, error })),
      );
    return () => {
      live = false;
      channel.off("*", onPayload);
      release();
    };
  }, [realtime, topic, limit]);

  const oldest = view.topic === topic ? view.messages[0]?.created_at : undefined;
  const loadMore = useCallback(async () => {
    if (oldest === undefined) return;
    setView((v) => ({ ...v, loading: true }));
    try {
      const page = (await realtime.channel(topic).getHistory(limit, oldest)) as Array<HistoryMessage<T>>;
      setView((v) => {
        const byId = new Map(v.messages.map((m) => [m.id, m]));
        for (const m of page) byId.set(m.id, m);
        return { ...v, loading: false, hasMore: page.length === limit, messages: [...byId.values()].sort((a, b) => a.seq - b.seq) };
      });
    } catch (error) {
      setView((v) => ({ ...v, loading: false, error: error as Error }));
    }
  }, [realtime, topic, limit, oldest]);

  if (view.topic !== topic) return { messages: [], loading: true, error: undefined, hasMore: true, loadMore };
  return { messages: view.messages, loading: view.loading, error: view.error, hasMore: view.hasMore, loadMore };
}

/**
 * The token streams of `topic` (AI responses): each with its text so far,
 * re-rendered as chunks arrive, in the order they started; `latest` is the
 * newest. A stream joined midway comes with everything before.
 */
export function useStream<Meta = any>(topic: string): { streams: Array<StreamState<Meta>>; latest: StreamState<Meta> | undefined } {
  const { realtime } = useRealtime();
  const [streams, setStreams] = useState<{ topic: string; list: Array<StreamState<Meta>> }>({ topic, list: [] });
  useEffect(() => {
    const seen = (stream: StreamState<Meta>) =>
      setStreams((s) => {
        const list = s.topic === topic ? s.list : [];
        const at = list.findIndex((x) => x.id === stream.id);
        const next = at < 0 ? [...list, { ...stream }] : list.map((x, i) => (i === at ? { ...stream } : x));
        return { topic, list: next };
      });
    const { channel, release } = hold(realtime, topic, (channel) => channel.onStream(seen));
    for (const stream of channel.activeStreams) seen(stream as StreamState<Meta>);
    return () => {
      channel.offStream(seen as (stream: StreamState) => void);
      release();
    };
  }, [realtime, topic]);
  const list = streams.topic === topic ? streams.list : [];
  return { streams: list, latest: list.at(-1) };
}

export interface UseTableOptions<Row> {
  /** Only rows matching this filter (`status=eq.shipped`; ops eq, neq, lt, lte, gt, gte, in, is). */
  filter?: string;
  /** The column that identifies a row (default "id"). */
  key?: keyof Row & string;
  /** The rows to start from (say, loaded by your back end with sdk.db.query); changes are applied to them. */
  initialRows?: Row[];
  /** Without initialRows and filter: how many of the table topic's retained changes to fold into rows (default 1000). */
  historyLimit?: number;
}

/**
 * A table's rows, kept in sync from its INSERT, UPDATE and DELETE events.
 * Rows start from `initialRows` when given; otherwise, without a filter,
 * from the table topic's retained history (its last `historyLimit`
 * changes, folded oldest first: the rows those changes describe, which is
 * the whole table when its history is retained from the start). History
 * is not filtered, so a filtered table starts from `initialRows` (or
 * empty). Changes that arrive while the history loads are applied after
 * it, each once.
 */
export function useTable<Row extends Record<string, any>>(table: string, options: UseTableOptions<Row> = {}): { rows: Row[]; loading: boolean; error: Error | undefined } {
  const { realtime } = useRealtime();
  const { filter, key = "id", historyLimit = 1000 } = options;
  const initial = useRef(options.initialRows);
  initial.current = options.initialRows;
  const [view, setView] = useState<{ table: string; rows: Row[]; loading: boolean; error?: Error }>({ table, rows: options.initialRows ?? [], loading: true });
  const fromHistory = options.initialRows === undefined && !filter;

  useEffect(() => {
    const rows = new Map<unknown, Row>((initial.current ?? []).map((row) => [row[key], row]));
    let loaded = !fromHistory;
    let loadedSeq = 0;
    const early: Array<{ seq: number; event: string; data: Row; old?: Row }> = [];
    let live = true;
    const publish = () => live && setView({ table, rows: [...rows.values()], loading: !loaded });
    const apply = (event: string, data: Row, old: Row | undefined) => {
      if (event === "DELETE") rows.delete((old ?? data)[key]);
      else if (event === "INSERT" || event === "UPDATE") {
        if (old && old[key] !== data[key]) rows.delete(old[key]); // the key itself changed
        rows.set(data[key], data);
      }
    };
    const onChange = (p: RealtimePayload<Row>) => {
      if (p.type !== "db_change") return;
      const change = { seq: p.position?.seq ?? 0, event: p.event, data: p.data, ...(p.old === undefined ? {} : { old: p.old }) };
      if (!loaded) return void early.push(change);
      if (change.seq && change.seq <= loadedSeq) return;
      apply(change.event, change.data, change.old);
      publish();
    };
    const { channel, release } = hold(realtime, table, (channel) => channel.on("*", onChange), filter === undefined ? undefined : { filter });
    publish();
    if (fromHistory) {
      channel
        .ready()
        .then(() => channel.getHistory(historyLimit))
        .then(
          (page) => {
            if (!live) return;
            for (const m of [...page].reverse()) apply(m.event, m.data as Row, m.old as Row | undefined);
            loadedSeq = page[0]?.seq ?? 0;
            loaded = true;
            for (const change of early) if (!change.seq || change.seq > loadedSeq) apply(change.event, change.data, change.old);
            early.length = 0;
            publish();
          },
          (error: Error) => live && setView((v) => ({ ...v, loading: false, error })),
        );
    } else {
      channel.ready().then(
        () => live && setView((v) => ({ ...v, loading: false })),
        (error: Error) => live && setView((v) => ({ ...v, loading: false, error })),
      );
    }
    return () => {
      live = false;
      channel.off("*", onChange);
      release();
    };
  }, [realtime, table, filter, key, historyLimit, fromHistory]);

  if (view.table !== table) return { rows: options.initialRows ?? [], loading: true, error: undefined };
  return { rows: view.rows, loading: view.loading, error: view.error };
}
