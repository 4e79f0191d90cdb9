import { PayloadType, type RealtimePayload } from "../../../gen/chorus/v1/payload_pb.js";
import type { Engine } from "../engine/engine.js";
import { storedFrame, type OutboundFrame } from "../frames.js";
import type { Logger } from "../log.js";
import type { SharedStream } from "./active-stream.js";

/** What this node learnt of another node's stream from its payloads. */
interface Mirrored {
  id: string;
  node: string;
  event: string;
  /** JSON text, "null" for none. */
  meta: string;
  text: string[];
  values: string[];
  chunks: number;
  /** False once a chunk was missed: then only the producer's end has the whole text. */
  whole: boolean;
  lastActivity: number;
}

/** Streams end with this publisher and message id whichever node ends them: stored once. */
const PUBLISHER = "streams";

/**
 * Other nodes' streams, as this node sees them go by on the topics its
 * subscribers watch: so a late joiner here gets the text so far as it
 * would on the producer's node, and so that a stream whose node dies is
 * ended by the nodes that remain (each ends it under the same message id,
 * which the engine stores once).
 */
export class StreamMirror {
  private readonly byTopic = new Map<string, Map<string, Mirrored>>();

  constructor(
    private readonly nodeId: string,
    private readonly engine: Engine,
    private readonly log: Logger,
  ) {}

  /** A payload delivered on a topic this node watches. */
  observe(topic: string, payload: RealtimePayload): void {
    if (payload.type !== PayloadType.STREAM) return;
    let data: { id?: unknown; node?: unknown; event?: unknown; meta?: unknown; index?: number; count?: number; text?: string; values?: unknown[] };
    try {
      data = JSON.parse(payload.data);
    } catch {
      return;
    }
    if (typeof data.id !== "string") return;
    let streams = this.byTopic.get(topic);
    const known = streams?.get(data.id);
    switch (payload.event) {
      case "stream:start": {
        if (data.node === this.nodeId || typeof data.node !== "string" || known) return;
        if (!streams) this.byTopic.set(topic, (streams = new Map()));
        streams.set(data.id, { id: data.id, node: data.node, event: String(data.event ?? ""), meta: JSON.stringify(data.meta ?? null), text: [], values: [], chunks: 0, whole: true, lastActivity: Date.now() });
        return;
      }
      case "stream:chunk": {
        if (!known) return;
        known.lastActivity = Date.now();
        const index = data.index ?? 0;
        const count = data.count ?? 0;
        if (index + count <= known.chunks) return;
        if (index !== known.chunks) known.whole = false;
        if (data.text) known.text.push(data.text);
        if (Array.isArray(data.values)) known.values.push(...data.values.map((v) => JSON.stringify(v)));
        known.chunks = index + count;
        return;
      }
      case "stream:end":
        if (known) this.forget(topic, known.id);
        return;
    }
  }

  /** What another node said of a stream of its own, when this node started watching the topic. */
  seed(topic: string, s: SharedStream): void {
    const valid = typeof s?.id === "string" && typeof s.node === "string" && typeof s.event === "string" && typeof s.meta === "string" && typeof s.text === "string" && Array.isArray(s.values) && Number.isInteger(s.chunks);
    if (!valid || s.node === this.nodeId) return;
    let streams = this.byTopic.get(topic);
    const known = streams?.get(s.id);
    if (known && known.whole && known.chunks >= s.chunks) return;
    if (!streams) this.byTopic.set(topic, (streams = new Map()));
    streams.set(s.id, { id: s.id, node: s.node, event: s.event, meta: s.meta, text: [s.text], values: s.values.map(String), chunks: s.chunks, whole: true, lastActivity: Date.now() });
  }

  /** Each mirrored stream's `stream:start` and text so far, for a subscriber joining the topic here. */
  snapshotFrames(topic: string): OutboundFrame[] {
    const frames: OutboundFrame[] = [];
    const now = Date.now();
    for (const m of this.byTopic.get(topic)?.values() ?? []) {
      if (!m.whole) continue;
      frames.push(storedFrame(topic, "", { seq: 0, id: `${m.id}:start`, event: "stream:start", data: `{"id":${JSON.stringify(m.id)},"event":${JSON.stringify(m.event)},"meta":${m.meta},"node":${JSON.stringify(m.node)}}`, userId: "", connectionId: "", createdAt: now }));
      if (m.chunks === 0) continue;
      const text = m.text.length > 0 ? `,"text":${JSON.stringify(m.text.join(""))}` : "";
      const values = m.values.length > 0 ? `,"values":[${m.values.join(",")}]` : "";
      frames.push(storedFrame(topic, "", { seq: 0, id: `${m.id}:so-far`, event: "stream:chunk", data: `{"id":${JSON.stringify(m.id)},"index":0,"count":${m.chunks}${text}${values}}`, userId: "", connectionId: "", createdAt: now }));
    }
    return frames;
  }

  /** No subscriber here watches the topic any more: its streams no longer come by. */
  unwatch(topic: string): void {
    this.byTopic.delete(topic);
  }

  /** A node is gone: its streams end, with an error, for every viewer. */
  nodeGone(node: string): void {
    for (const [topic, streams] of [...this.byTopic]) {
      for (const m of [...streams.values()]) if (m.node === node) this.end(topic, m, "the node producing the stream stopped");
    }
  }

  /** Streams whose producer's node went silent about them for `ms`: ended here (an end that was lost, say). */
  sweep(ms: number): void {
    const since = Date.now() - ms;
    for (const [topic, streams] of [...this.byTopic]) {
      for (const m of [...streams.values()]) if (m.lastActivity < since) this.end(topic, m, "the stream's producer fell silent");
    }
  }

  private end(topic: string, m: Mirrored, why: string): void {
    this.forget(topic, m.id);
    const text = m.whole ? `,"text":${JSON.stringify(m.text.join(""))}` : "";
    const values = m.whole && m.values.length > 0 ? `,"values":[${m.values.join(",")}]` : "";
    const data = `{"id":${JSON.stringify(m.id)},"event":${JSON.stringify(m.event)},"meta":${m.meta},"status":"error","error":${JSON.stringify(why)},"chunks":${m.chunks}${text}${values}}`;
    this.engine
      .publish({ topic, event: "stream:end", data, persist: true, id: `stream:${m.id}`, publisher: PUBLISHER, userId: "", connectionId: "" })
      .catch((e: unknown) => this.log.error(`stream "${m.id}" on "${topic}": its end could not be stored (${(e as Error).message})`));
  }

  private forget(topic: string, id: string): void {
    const streams = this.byTopic.get(topic);
    streams?.delete(id);
    if (streams?.size === 0) this.byTopic.delete(topic);
  }
}
