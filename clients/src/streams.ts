import type { RealtimePayload } from "./types.js";

export type StreamStatus = "streaming" | "done" | "error" | "cancelled";

/** A token stream as a viewer has it so far. */
export interface StreamState<Meta = any> {
  id: string;
  /** The producer's name for the response. */
  event: string;
  meta: Meta | null;
  /** All text so far (the whole response once done). */
  text: string;
  /** Chunks sent as JSON values, in order. */
  values: unknown[];
  /** Chunks received so far (text and values). */
  chunks: number;
  done: boolean;
  status: StreamStatus;
  /** With status "error": what went wrong. */
  error?: string;
}

/** A stream to read as it arrives: its chunks (text) one by one, or all of its text at once. */
export interface ViewerStream<Meta = any> extends AsyncIterable<string> {
  readonly id: string;
  readonly event: string;
  readonly meta: Meta | null;
  /** The state now. */
  readonly state: StreamState<Meta>;
  /** The whole text once the stream has ended (whatever its status). */
  text(): Promise<string>;
  /** Settles with the final state once the stream has ended. */
  readonly ended: Promise<StreamState<Meta>>;
}

interface Tracked {
  state: StreamState;
  /** Text pieces not yet taken by the stream's iterator (kept once someone reads it), and who waits for the next. */
  reading: boolean;
  unread: string[];
  wake: (() => void) | undefined;
  ended: Promise<StreamState>;
  settle: (state: StreamState) => void;
  viewer: ViewerStream;
}

/** Ended streams remembered, so a late duplicate of their frames is recognised. */
const REMEMBER_ENDED = 256;

/**
 * Puts a topic's token streams together from `stream:start`,
 * `stream:chunk` and `stream:end` payloads, each chunk once: a late
 * joiner's catch-up chunk and the live chunks after it overlap by chunk
 * index, and the end carries the whole response (so a viewer that missed
 * the beginning, or recovers the end from history, still has all of it).
 */
export class StreamAssembler {
  private readonly streams = new Map<string, Tracked>();
  private readonly ended: string[] = [];

  constructor(
    /** Hears every change of any stream. */
    private readonly changed: (state: StreamState) => void,
    /** Hears each stream once, when it is first seen. */
    private readonly started: (stream: ViewerStream) => void,
  ) {}

  apply(payload: RealtimePayload): void {
    const data = payload.data as { id?: unknown } | null;
    if (!data || typeof data.id !== "string") return;
    const id = data.id;
    let tracked = this.streams.get(id);
    if (!tracked) {
      // A stream that ended is not started again by a duplicate frame (a replay overlapping the live end).
      if (this.ended.includes(id)) return;
      tracked = this.track(id, payload.data);
    }
    const state = tracked.state;
    if (state.done) return;
    switch (payload.event) {
      case "stream:start":
        return;
      case "stream:chunk": {
        const chunk = payload.data as { index: number; count: number; text?: string; values?: unknown[] };
        // Already had (a catch-up chunk covering live ones, or the other way round).
        if (chunk.index + chunk.count <= state.chunks) return;
        // Past a gap (chunks dropped while this client read too slowly): the catch-up that follows the
        // resubscription, or the end, brings the whole text.
        if (chunk.index > state.chunks) return;
        // Overlapping part of what this viewer has (the server never cuts it so; the end repairs it if it did).
        if (chunk.index > 0 && chunk.index < state.chunks) return;
        if (chunk.index === 0 && state.chunks > 0) {
          // A catch-up holding more than this viewer has: it is the whole text so far.
          const more = chunk.text ?? "";
          if (tracked.reading && more.startsWith(state.text)) tracked.unread.push(more.slice(state.text.length));
          state.text = more;
          state.values = [...(chunk.values ?? [])];
        } else {
          if (chunk.text) {
            state.text += chunk.text;
            if (tracked.reading) tracked.unread.push(chunk.text);
          }
          if (chunk.values) state.values.push(...chunk.values);
        }
        state.chunks = chunk.index + chunk.count;
        tracked.wake?.();
        this.changed({ ...state, values: [...state.values] });
        return;
      }
      case "stream:end": {
        const end = payload.data as { status: "done" | "error" | "cancelled"; error?: string; text?: string; values?: unknown[]; chunks: number };
        // The end is the whole response (unless it could not be stored): what this viewer missed, if anything, is in it.
        if (end.text !== undefined) {
          if (tracked.reading && end.text.length > state.text.length && end.text.startsWith(state.text)) tracked.unread.push(end.text.slice(state.text.length));
          state.text = end.text;
        }
        state.values = end.values ?? state.values;
        state.chunks = end.chunks;
        state.done = true;
        state.status = end.status;
        if (end.error !== undefined) state.error = end.error;
        this.streams.delete(id);
        this.ended.push(id);
        if (this.ended.length > REMEMBER_ENDED) this.ended.shift();
        tracked.wake?.();
        tracked.settle({ ...state });
        this.changed({ ...state, values: [...state.values] });
        return;
      }
    }
  }

  /** Streams under way, as they are now. */
  current(): StreamState[] {
    return [...this.streams.values()].map((t) => ({ ...t.state, values: [...t.state.values] }));
  }

  private track(id: string, data: any): Tracked {
    let settle!: (state: StreamState) => void;
    const ended = new Promise<StreamState>((resolve) => (settle = resolve));
    const state: StreamState = { id, event: String(data.event ?? ""), meta: data.meta ?? null, text: "", values: [], chunks: 0, done: false, status: "streaming" };
    const tracked: Tracked = { state, reading: false, unread: [], wake: undefined, ended, settle, viewer: undefined as unknown as ViewerStream };
    tracked.viewer = {
      id,
      event: state.event,
      meta: state.meta,
      get state() {
        return { ...state, values: [...state.values] };
      },
      text: () => ended.then((s) => s.text),
      ended,
      [Symbol.asyncIterator]: () => {
        // One reader: it starts with the text so far, then each chunk as it comes.
        if (!tracked.reading) {
          tracked.reading = true;
          if (state.text) tracked.unread.push(state.text);
        }
        return {
        next: async (): Promise<IteratorResult<string>> => {
          for (;;) {
            const piece = tracked.unread.shift();
            if (piece !== undefined) return { value: piece, done: false };
            if (state.done) return { value: undefined, done: true };
            await new Promise<void>((resolve) => (tracked.wake = resolve));
            tracked.wake = undefined;
          }
        },
        };
      },
    };
    this.streams.set(id, tracked);
    this.started(tracked.viewer);
    return tracked;
  }
}
