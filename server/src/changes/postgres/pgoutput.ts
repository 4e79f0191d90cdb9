/**
 * The pgoutput logical replication protocol (version 1), as PostgreSQL
 * streams it inside CopyData: XLogData ('w') carrying Begin, Relation,
 * Insert, Update, Delete, Truncate and Commit messages, and primary
 * keepalives ('k'); and the standby status update ('r') we answer with.
 * Only what Chorus reads is decoded; Origin, Type and logical messages
 * are recognised and skipped.
 */

/** A column value in a tuple: null, unchanged TOAST (not sent), or its text. */
export type TupleValue = null | { unchanged: true } | string;

export interface RelationColumn {
  name: string;
  typeOid: number;
  /** Part of the replica identity (the key PostgreSQL sends for old rows). */
  key: boolean;
}

export type PgOutputMessage =
  | { tag: "begin"; finalLsn: bigint; xid: number; committedAt: number }
  | { tag: "commit"; commitLsn: bigint; endLsn: bigint }
  | { tag: "relation"; relationId: number; schema: string; name: string; replicaIdentity: string; columns: RelationColumn[] }
  | { tag: "insert"; relationId: number; row: TupleValue[] }
  | { tag: "update"; relationId: number; old: TupleValue[] | undefined; keyOnly: boolean; row: TupleValue[] }
  | { tag: "delete"; relationId: number; old: TupleValue[]; keyOnly: boolean }
  | { tag: "truncate"; relationIds: number[] }
  | { tag: "other"; code: string };

export type ReplicationMessage =
  | { kind: "xlog"; walStart: bigint; walEnd: bigint; message: PgOutputMessage }
  | { kind: "keepalive"; walEnd: bigint; replyRequested: boolean };

class Reader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}
  u8(): number {
    return this.buf.readUInt8(this.pos++);
  }
  u16(): number {
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  i32(): number {
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  string(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new Error("pgoutput: unterminated string");
    const s = this.buf.toString("utf8", this.pos, end);
    this.pos = end + 1;
    return s;
  }
  bytes(n: number): string {
    const s = this.buf.toString("utf8", this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  tuple(): TupleValue[] {
    const count = this.u16();
    const values: TupleValue[] = [];
    for (let i = 0; i < count; i++) {
      const kind = String.fromCharCode(this.u8());
      if (kind === "n") values.push(null);
      else if (kind === "u") values.push({ unchanged: true });
      else if (kind === "t" || kind === "b") values.push(this.bytes(this.i32()));
      else throw new Error(`pgoutput: unknown tuple value kind "${kind}"`);
    }
    return values;
  }
}

/** 2000-01-01T00:00:00Z in milliseconds since 1970. */
const POSTGRES_EPOCH_MS = 946_684_800_000;

function decodePgOutput(buf: Buffer): PgOutputMessage {
  const r = new Reader(buf);
  const code = String.fromCharCode(r.u8());
  switch (code) {
    case "B": {
      const finalLsn = r.u64();
      // Microseconds since 2000-01-01 (PostgreSQL's epoch), as milliseconds since 1970.
      const committedAt = Number(r.u64() / 1000n) + POSTGRES_EPOCH_MS;
      return { tag: "begin", finalLsn, xid: r.u32(), committedAt };
    }
    case "C": {
      r.u8(); // flags
      const commitLsn = r.u64();
      return { tag: "commit", commitLsn, endLsn: r.u64() };
    }
    case "R": {
      const relationId = r.u32();
      const schema = r.string();
      const name = r.string();
      const replicaIdentity = String.fromCharCode(r.u8());
      const columns: RelationColumn[] = [];
      for (let n = r.u16(), i = 0; i < n; i++) {
        const flags = r.u8();
        const columnName = r.string();
        const typeOid = r.u32();
        r.i32(); // type modifier
        columns.push({ name: columnName, typeOid, key: (flags & 1) === 1 });
      }
      return { tag: "relation", relationId, schema, name, replicaIdentity, columns };
    }
    case "I": {
      const relationId = r.u32();
      r.u8(); // 'N'
      return { tag: "insert", relationId, row: r.tuple() };
    }
    case "U": {
      const relationId = r.u32();
      let kind = String.fromCharCode(r.u8());
      let old: TupleValue[] | undefined;
      let keyOnly = false;
      if (kind === "K" || kind === "O") {
        keyOnly = kind === "K";
        old = r.tuple();
        kind = String.fromCharCode(r.u8());
      }
      return { tag: "update", relationId, old, keyOnly, row: r.tuple() };
    }
    case "D": {
      const relationId = r.u32();
      const kind = String.fromCharCode(r.u8());
      return { tag: "delete", relationId, keyOnly: kind === "K", old: r.tuple() };
    }
    case "T": {
      const count = r.u32();
      r.u8(); // options
      const relationIds: number[] = [];
      for (let i = 0; i < count; i++) relationIds.push(r.u32());
      return { tag: "truncate", relationIds };
    }
    default:
      return { tag: "other", code };
  }
}

/** One CopyData payload of a replication stream. */
export function decodeReplication(buf: Buffer): ReplicationMessage | undefined {
  const kind = String.fromCharCode(buf[0]!);
  if (kind === "w") {
    const walStart = buf.readBigUInt64BE(1);
    const walEnd = buf.readBigUInt64BE(9);
    return { kind: "xlog", walStart, walEnd, message: decodePgOutput(buf.subarray(25)) };
  }
  if (kind === "k") return { kind: "keepalive", walEnd: buf.readBigUInt64BE(1), replyRequested: buf[17] === 1 };
  return undefined;
}

/** Microseconds since 2000-01-01, PostgreSQL's clock. */
function pgNow(): bigint {
  return (BigInt(Date.now()) - 946_684_800_000n) * 1000n;
}

/** A standby status update: everything up to `lsn` is written, flushed and applied (stored) here. */
export function standbyStatus(lsn: bigint, replyRequested = false): Buffer {
  const out = Buffer.alloc(34);
  out.write("r", 0);
  out.writeBigUInt64BE(lsn, 1);
  out.writeBigUInt64BE(lsn, 9);
  out.writeBigUInt64BE(lsn, 17);
  out.writeBigUInt64BE(pgNow(), 25);
  out.writeUInt8(replyRequested ? 1 : 0, 33);
  return out;
}

/** `16/B374D848` ⇄ 64-bit LSN. */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}
