import { describe, expect, it } from "vitest";
import { filterKey, matches, parseFilter } from "../../server/src/changes/filter.js";
import { numberPlaceholders } from "../../server/src/changes/placeholders.js";
import { decodeReplication, standbyStatus } from "../../server/src/changes/postgres/pgoutput.js";
import type { ChangeSink, ChangeSource, RowChange } from "../../server/src/changes/source.js";
import { ChangeTracker } from "../../server/src/changes/tracker.js";
import { fromPgText, parseArray, safeJsonText } from "../../server/src/changes/values.js";
import type { Engine, PublishInput, PublishResult } from "../../server/src/engine/engine.js";

describe("row filters", () => {
  const row = { id: 7, status: "shipped", total: 99.5, list_id: 2, deleted_at: null, paid: true, big: "9007199254740993" };
  it.each([
    ["status=eq.shipped", true],
    ["status=eq.pending", false],
    ["status=neq.pending", true],
    ["total=gt.99", true],
    ["total=gte.99.5", true],
    ["total=lt.99.5", false],
    ["total=lte.99.5", true],
    ["list_id=in.(1,2)", true],
    ["list_id=in.(3,4)", false],
    ['status=in.("shipped","a,b")', true],
    ["deleted_at=is.null", true],
    ["status=is.null", false],
    ["paid=is.true", true],
    ["paid=eq.true", true],
    ["big=gt.9007199254740992", true],
    ["big=eq.9007199254740993", true],
    ["status=eq.shipped&list_id=in.(1,2)&total=gt.10", true],
    ["status=eq.shipped&list_id=eq.3", false],
    ["missing=eq.1", false],
    ["deleted_at=neq.x", false],
  ])("%s → %s", (filter, expected) => {
    expect(matches(parseFilter(filter), row)).toBe(expected);
  });

  it.each([
    ["status", /not column=op.value/],
    ["status=like.x", /does not start with an operator/],
    ["1bad=eq.x", /not a column name/],
    ["id=in.1,2", /list in parentheses/],
    ["id=is.maybe", /null, true or false/],
    ['id=in.("open)', /unterminated quote/],
    ["a=eq.1&".repeat(20) + "a=eq.1", /conditions; the limit/],
    [`id=in.(${Array.from({ length: 101 }, (_, i) => i).join(",")})`, /101 values/],
  ])("refuses %s, saying what is wrong", (filter, message) => {
    expect(() => parseFilter(filter)).toThrow(message);
  });

  it("gives identical filters one key, whatever their order", () => {
    expect(filterKey(parseFilter("a=eq.1&b=in.(2,3)"))).toBe(filterKey(parseFilter("b=in.(2,3)&a=eq.1")));
    expect(filterKey(parseFilter("a=eq.1"))).not.toBe(filterKey(parseFilter("a=eq.2")));
  });
});

describe("values", () => {
  it("keeps numbers that JSON readers hold exactly, and quotes the others", () => {
    expect(safeJsonText('{"a":1,"b":99.99,"c":"9007199254740993 in a string"}')).toBe('{"a":1,"b":99.99,"c":"9007199254740993 in a string"}');
    expect(safeJsonText('{"big":9007199254740993,"n":[12345678901234567.89,-1]}')).toBe('{"big":"9007199254740993","n":["12345678901234567.89",-1]}');
    expect(safeJsonText('{"max":9007199254740991}')).toBe('{"max":9007199254740991}');
  });

  it("reads PostgreSQL text by type", () => {
    expect(fromPgText(20, "42")).toBe(42);
    expect(fromPgText(20, "9223372036854775807")).toBe("9223372036854775807");
    expect(fromPgText(1700, "99.99")).toBe(99.99);
    expect(fromPgText(1700, "1234567890123456789.5")).toBe("1234567890123456789.5");
    expect(fromPgText(1700, "NaN")).toBe("NaN");
    expect(fromPgText(16, "t")).toBe(true);
    expect(fromPgText(3802, '{"a": {"b": 9007199254740993}}')).toEqual({ a: { b: "9007199254740993" } });
    expect(fromPgText(1184, "2026-12-01 16:24:52.373+00")).toBe("2026-12-01T16:24:52.373+00:00");
    expect(fromPgText(1184, "2026-12-01 16:24:52+05:30")).toBe("2026-12-01T16:24:52+05:30");
    expect(fromPgText(1114, "2026-12-01 16:24:52")).toBe("2026-12-01T16:24:52");
    expect(fromPgText(17, "\\x0102ff")).toBe(Buffer.from([1, 2, 255]).toString("base64"));
    expect(fromPgText(1007, "{1,2,NULL}")).toEqual([1, 2, null]);
    expect(fromPgText(1009, '{"a b","c\\"d",e}')).toEqual(["a b", 'c"d', "e"]);
    expect(parseArray("{{1,2},{3,4}}", Number)).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(fromPgText(25, "plain")).toBe("plain");
  });
});

describe("? placeholders", () => {
  it.each([
    ["UPDATE orders SET status = ? WHERE id = ?", 2, "UPDATE orders SET status = $1 WHERE id = $2"],
    ["SELECT '?' AS q, \"a?\" FROM t WHERE x = ? -- why?\n AND y = ? /* ? */", 2, "SELECT '?' AS q, \"a?\" FROM t WHERE x = $1 -- why?\n AND y = $2 /* ? */"],
    ["SELECT $$?$$, ?", 1, "SELECT $$?$$, $1"],
    ["SELECT $1, ?", 1, "SELECT $1, ?"],
    ["SELECT data ? 'key' FROM t", 0, "SELECT data ? 'key' FROM t"],
    ["SELECT 'it''s ?', ?", 1, "SELECT 'it''s ?', $1"],
  ])("%s", (sql, count, expected) => {
    expect(numberPlaceholders(sql, count)).toBe(expected);
  });
});

describe("pgoutput", () => {
  const xlog = (payload: Buffer) => Buffer.concat([Buffer.from("w"), Buffer.alloc(24), payload]);
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const u16 = (n: number) => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(n);
    return b;
  };
  const u64 = (n: bigint) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(n);
    return b;
  };
  const text = (s: string) => Buffer.concat([Buffer.from("t"), u32(Buffer.byteLength(s)), Buffer.from(s)]);

  it("decodes relations, inserts, updates with old rows, deletes, commits and keepalives", () => {
    const relation = Buffer.concat([Buffer.from("R"), u32(16384), Buffer.from("public\0orders\0"), Buffer.from("f"), u16(2), Buffer.from([1]), Buffer.from("id\0"), u32(20), u32(0xffffffff), Buffer.from([0]), Buffer.from("status\0"), u32(25), u32(0xffffffff)]);
    expect(decodeReplication(xlog(relation))).toMatchObject({
      kind: "xlog",
      message: { tag: "relation", relationId: 16384, schema: "public", name: "orders", replicaIdentity: "f", columns: [{ name: "id", typeOid: 20, key: true }, { name: "status", typeOid: 25, key: false }] },
    });
    const update = Buffer.concat([Buffer.from("U"), u32(16384), Buffer.from("O"), u16(2), text("1"), text("a"), Buffer.from("N"), u16(2), text("1"), Buffer.from("u")]);
    expect(decodeReplication(xlog(update))).toMatchObject({ message: { tag: "update", old: ["1", "a"], keyOnly: false, row: ["1", { unchanged: true }] } });
    const del = Buffer.concat([Buffer.from("D"), u32(16384), Buffer.from("K"), u16(2), text("1"), Buffer.from("n")]);
    expect(decodeReplication(xlog(del))).toMatchObject({ message: { tag: "delete", keyOnly: true, old: ["1", null] } });
    const commit = Buffer.concat([Buffer.from("C"), Buffer.from([0]), u64(0x10n), u64(0x20n), u64(0n)]);
    expect(decodeReplication(xlog(commit))).toMatchObject({ message: { tag: "commit", commitLsn: 0x10n, endLsn: 0x20n } });
    const keepalive = Buffer.concat([Buffer.from("k"), u64(0x99n), u64(0n), Buffer.from([1])]);
    expect(decodeReplication(keepalive)).toEqual({ kind: "keepalive", walEnd: 0x99n, replyRequested: true });
  });

  it("acknowledges exactly the LSN it is given, in all three positions", () => {
    const status = standbyStatus(0x1234n);
    expect(status.toString("latin1", 0, 1)).toBe("r");
    expect([status.readBigUInt64BE(1), status.readBigUInt64BE(9), status.readBigUInt64BE(17)]).toEqual([0x1234n, 0x1234n, 0x1234n]);
  });
});

/** A tracker over an engine whose writes the test settles, and a source that only hands over. */
async function trackerRig() {
  const writes: Array<{ input: PublishInput; settle: (ok: boolean) => void }> = [];
  const engine = {
    publish: (input: PublishInput) =>
      new Promise<PublishResult>((resolve, reject) => {
        writes.push({ input, settle: (ok) => (ok ? resolve({ id: input.id, seq: writes.length, epoch: "e", timestamp: 0 }) : reject(new Error("disk full"))) });
      }),
    history: async () => ({ messages: [], epoch: "", lastSeq: 0, hasMore: false }),
  } as unknown as Engine;
  let sink!: ChangeSink;
  const source = {
    name: "test",
    start: async (s: ChangeSink) => void (sink = s),
    close: async () => {},
    query: async () => ({ rows: [], fields: [], rowCount: 0 }),
  } as unknown as ChangeSource;
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  const tracker = new ChangeTracker(() => source, engine, quiet);
  await tracker.query("select 1", []);
  const change = (n: number): RowChange => ({ table: "orders", op: "INSERT", data: `{"id":${n}}`, mark: `test:${String(n).padStart(4, "0")}` });
  const tick = () => new Promise((r) => setTimeout(r, 5));
  return { writes, sink, change, tick };
}

describe("change tracker", () => {
  it("stores transactions in the order handed over, without waiting for the last one's write", async () => {
    const { writes, sink, change, tick } = await trackerRig();
    const first = sink.commit([change(1), change(2)]);
    const second = sink.commit([change(3)]);
    await tick();
    expect(writes.map((w) => w.input.id)).toEqual(["db:test:0001", "db:test:0002", "db:test:0003"]);
    writes.forEach((w) => w.settle(true));
    await Promise.all([first, second]);
  });

  it("after a failed write, refuses what follows until the source resumes, then skips nothing it hands over again", async () => {
    const { writes, sink, change, tick } = await trackerRig();
    const failed = sink.commit([change(1)]);
    await tick();
    writes[0]!.settle(false);
    await expect(failed).rejects.toThrow("disk full");
    // Handed over before the source noticed: not stored ahead of the failed one.
    await expect(sink.commit([change(2)])).rejects.toThrow("disk full");
    expect(writes).toHaveLength(1);
    sink.resume();
    const again = sink.commit([change(1), change(2)]);
    await tick();
    expect(writes.slice(1).map((w) => w.input.id)).toEqual(["db:test:0001", "db:test:0002"]);
    writes.slice(1).forEach((w) => w.settle(true));
    await again;
  });

  it("stores a changes_lost notice in each table, after the changes handed over before it", async () => {
    const { writes, sink, change, tick } = await trackerRig();
    const before = sink.commit([change(1)]);
    const lost = sink.lost(["orders", "audit.events"], "slot invalidated");
    await tick();
    expect(writes.map((w) => [w.input.topic, w.input.event])).toEqual([
      ["orders", "INSERT"],
      ["orders", "system:history_gap"],
      ["audit.events", "system:history_gap"],
    ]);
    expect(JSON.parse(writes[1]!.input.data)).toMatchObject({ reason: "changes_lost", detail: "slot invalidated" });
    expect(writes[1]!.input.persist).toBe(true);
    writes.forEach((w) => w.settle(true));
    await Promise.all([before, lost]);
  });
});
