import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { Operation, PayloadType, RealtimePayloadSchema, type RealtimePayload } from "../../../gen/chorus/v1/payload_pb.js";
import { encodeFrame, frameOf, type OutboundFrame } from "../frames.js";
import { filterKey, matches, parseFilter, type Condition } from "./filter.js";
import type { TableInfo } from "./source.js";

/**
 * What one subscription to a table topic may see: its own filter and the
 * table's row rule for its user, both as conditions on a row. Identical
 * views share a key, so a change is judged once per distinct view, not
 * once per subscriber.
 *
 * An UPDATE judged by its old and new row: in and in is the UPDATE; out and
 * in is an INSERT (the row came into view); in and out is a DELETE (it
 * left); out and out is nothing. Without the old row (a table whose
 * replica identity is not FULL) the new row decides.
 */
export class RowView {
  readonly key: string;

  constructor(readonly conditions: readonly Condition[]) {
    this.key = filterKey(conditions);
  }

  /** The operation this view sees for a DB change: its own, INSERT or DELETE (a row coming into or leaving view), or none. */
  judge(payload: RealtimePayload): Operation | undefined {
    const change = rowsOf(payload);
    const now = matches(this.conditions, change.data);
    switch (payload.operation) {
      case Operation.INSERT:
        return now ? Operation.INSERT : undefined;
      case Operation.DELETE:
        return matches(this.conditions, change.old ?? change.data) ? Operation.DELETE : undefined;
      case Operation.UPDATE: {
        const before = change.old ? matches(this.conditions, change.old) : now;
        if (now) return before ? Operation.UPDATE : Operation.INSERT;
        return before ? Operation.DELETE : undefined;
      }
    }
    return payload.operation;
  }

  /**
   * What this view sees of a DB change: the change itself, the change as
   * another operation (a row coming into view is an INSERT of the new row;
   * one leaving it a DELETE of the row as it was), or nothing.
   */
  see(payload: RealtimePayload): { operation: Operation; event: string; data: string; old: string } | undefined {
    const seen = this.judge(payload);
    if (seen === undefined) return undefined;
    if (seen === payload.operation) return { operation: seen, event: payload.event, data: payload.data, old: payload.old };
    const [data, old] = seen === Operation.INSERT ? [payload.data, ""] : [payload.old, payload.old];
    return { operation: seen, event: OPERATION_EVENT[seen]!, data, old };
  }

  /** The frame this view sees for a DB change frame: the same, one with another operation, or none. */
  apply(frame: OutboundFrame): OutboundFrame | undefined {
    const payload = frame.frame.kind.value as RealtimePayload;
    const seen = this.see(payload);
    if (!seen) return undefined;
    if (seen.operation === payload.operation) return frame;
    const changed = create(RealtimePayloadSchema, { ...payload, ...seen });
    return encodeFrame(frameOf({ kind: { case: "payload", value: changed } }), frame.droppable, frame.topic, frame.seq);
  }
}

export const OPERATION_EVENT: Partial<Record<Operation, string>> = { [Operation.INSERT]: "INSERT", [Operation.UPDATE]: "UPDATE", [Operation.DELETE]: "DELETE" };

/** A subscription's view: its filter and its user's row rule on the table, checked against the table's columns. */
export function viewFor(topic: string, filter: string, rule: readonly Condition[] | undefined, userId: string, table: TableInfo): RowView | undefined {
  const own = parseFilter(filter);
  const ruled = (rule ?? []).map((c) => ({ ...c, values: c.values.map((v) => v.split("{sub}").join(userId)) }));
  for (const c of [...own, ...ruled]) {
    if (!table.columns.has(c.column)) {
      throw new ConnectError(`filter: "${c.column}" is not a column of "${topic}" (its columns: ${[...table.columns.keys()].join(", ")})`, Code.InvalidArgument);
    }
  }
  const conditions = [...own, ...ruled];
  return conditions.length > 0 ? new RowView(conditions) : undefined;
}

/** Parsed rows of a change payload, once per payload however many views judge it. */
const parsed = new WeakMap<RealtimePayload, { data: Record<string, unknown>; old: Record<string, unknown> | undefined }>();

function rowsOf(payload: RealtimePayload): { data: Record<string, unknown>; old: Record<string, unknown> | undefined } {
  let rows = parsed.get(payload);
  if (!rows) {
    const object = (text: string) => {
      const value = text === "" ? undefined : (JSON.parse(text) as unknown);
      return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
    };
    rows = { data: object(payload.data) ?? {}, old: object(payload.old) };
    parsed.set(payload, rows);
  }
  return rows;
}

/** Whether a frame is a DB change (the only frames views judge). */
export function isChangeFrame(frame: OutboundFrame): boolean {
  const kind = frame.frame.kind;
  return kind.case === "payload" && kind.value.type === PayloadType.DB_CHANGE;
}
