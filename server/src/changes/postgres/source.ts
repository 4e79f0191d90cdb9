import pg from "pg";
import type { Logger } from "../../log.js";
import { CONVERTED_TYPES, fromPgText } from "../values.js";
import { tableTopic, topicTable, tracks, type ChangeSink, type ChangeSource, type QueryResult, type RowChange, type TableInfo } from "../source.js";
import { decodeReplication, formatLsn, standbyStatus, type PgOutputMessage, type RelationColumn, type TupleValue } from "./pgoutput.js";

/** How often a node that does not hold the slot asks for it again; and how long after a failure replication restarts. */
const RETRY_MS = 1000;
/** A status update at least this often (PostgreSQL drops a silent receiver after wal_sender_timeout, 60 s by default). */
const STATUS_MS = 10_000;
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_$]*$/;

const converted = new Set(CONVERTED_TYPES);
/** node-postgres reads every value through values.ts, as the replication stream is read. */
const types = {
  getTypeParser: (oid: number) => (converted.has(oid) ? (text: string) => fromPgText(oid, text) : (text: string) => text),
};

interface Relation {
  topic: string | undefined;
  columns: RelationColumn[];
  full: boolean;
}

/**
 * Any PostgreSQL ≥ 13 with wal_level=logical: changes by any client of the
 * database, read from a persistent, named replication slot (pgoutput) of a
 * publication Chorus owns, both named by CHORUS_DB_SLOT ("chorus"). A
 * transaction is acknowledged at exactly its commit's end LSN once its
 * changes are stored, so a restart resumes after the last stored one; what
 * was stored but not yet acknowledged comes again and is skipped by mark.
 * One Chorus node reads the slot (an advisory lock); the others wait and
 * take over when it goes. Tracked tables get REPLICA IDENTITY FULL where
 * permitted, so UPDATE and DELETE carry the whole previous row.
 */
export class PostgresSource implements ChangeSource {
  readonly name = "postgres";
  private readonly pool: pg.Pool;
  private sink: ChangeSink | undefined;
  private closed = false;
  private lockClient: pg.Client | undefined;
  private replication: pg.Client | undefined;
  private retry: NodeJS.Timeout | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private readonly relations = new Map<number, Relation>();
  private readonly warned = new Set<string>();
  /** The transaction being received. */
  private current: RowChange[] | undefined;
  /** Every commit being stored (settles once none is). */
  private storing: Promise<void> = Promise.resolve();
  /** Commits handed over and not yet acknowledged, in commit order. */
  private unacked: Array<{ lsn: bigint; done: boolean }> = [];
  private pendingCommits = 0;
  /** The last LSN acknowledged (everything up to it is stored). */
  private acked = 0n;
  /** When the transaction being read was committed (ms since 1970): for the change lag metric. */
  private committedAt: number | undefined;
  /** Set from a failure until replication is tried again. */
  private restarting = false;

  constructor(
    private readonly url: string,
    private readonly tracked: readonly string[],
    private readonly slot: string,
    private readonly log: Logger,
  ) {
    this.pool = new pg.Pool({ connectionString: url, max: 10, types });
    this.pool.on("error", (error) => this.log.warn(`database: an idle connection failed (${error.message})`));
  }

  async slotLagBytes(): Promise<number | undefined> {
    const result = await this.pool.query<{ lag: string | null }>(
      "select pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text as lag from pg_replication_slots where slot_name = $1",
      [this.slot],
    );
    const lag = result.rows[0]?.lag;
    return lag === undefined || lag === null ? undefined : Number(lag);
  }

  async start(sink: ChangeSink): Promise<void> {
    this.sink = sink;
    const level = await this.pool.query<{ wal_level: string }>("show wal_level");
    if (level.rows[0]?.wal_level !== "logical") {
      throw new Error(`PostgreSQL at DATABASE_URL runs with wal_level=${level.rows[0]?.wal_level}; Chorus reads changes by logical replication: set wal_level=logical and restart it`);
    }
    await this.ensurePublication();
    await this.ensureSlot();
    await this.fullIdentityForAll();
    void this.contend();
  }

  async query(sql: string, params: unknown[]): Promise<QueryResult> {
    const result = await this.pool.query({ text: sql, values: params });
    // Several statements give several results: the last one is the answer.
    const last = Array.isArray(result) ? (result.at(-1) as pg.QueryResult) : result;
    return { rows: last.rows as Array<Record<string, unknown>>, fields: (last.fields ?? []).map((f) => f.name), rowCount: last.rowCount ?? last.rows.length };
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
    // Tables created meanwhile get a full replica identity (the event trigger does it too, where it could be made).
    await this.fullIdentityForAll();
  }

  async table(topic: string): Promise<TableInfo | undefined> {
    const { schema, table } = topicTable(topic);
    if (!tracks(this.tracked, schema, table)) return undefined;
    const result = await this.pool.query<{ name: string; type: number }>(
      `select a.attname as name, a.atttypid::int as type
         from pg_class c join pg_namespace n on n.oid = c.relnamespace join pg_attribute a on a.attrelid = c.oid
        where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped`,
      [schema, table],
    );
    return result.rows.length === 0 ? undefined : { columns: new Map(result.rows.map((r) => [r.name, r.type])) };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    clearInterval(this.statusTimer);
    await this.storing.catch(() => {});
    await this.replication?.end().catch(() => {});
    await this.lockClient?.end().catch(() => {});
    await this.pool.end().catch(() => {});
  }

  // ---- setup ----

  private async ensurePublication(): Promise<void> {
    const exists = await this.pool.query("select 1 from pg_publication where pubname = $1", [this.slot]);
    if (exists.rowCount) return;
    try {
      await this.pool.query(`create publication ${pg.escapeIdentifier(this.slot)} for all tables`);
    } catch (error) {
      throw new Error(`could not create publication "${this.slot}" (${(error as Error).message}); create it as a superuser: CREATE PUBLICATION ${this.slot} FOR ALL TABLES`);
    }
  }

  /**
   * The slot exists before the source is called started: from then on a
   * committed change is captured, whichever node reads the slot and however
   * long it takes to get the lock. (Made by whoever gets here first; the
   * reader under the lock makes it anew only when it was invalidated.)
   */
  private async ensureSlot(): Promise<void> {
    const exists = await this.pool.query("select 1 from pg_replication_slots where slot_name = $1", [this.slot]);
    if (exists.rowCount) return;
    try {
      await this.pool.query("select pg_create_logical_replication_slot($1, 'pgoutput')", [this.slot]);
      this.log.info(`database: created replication slot "${this.slot}" (drop it with SELECT pg_drop_replication_slot('${this.slot}') if Chorus stops tracking this database)`);
    } catch (error) {
      if ((error as { code?: string }).code !== "42710") throw error; // duplicate_object: another node made it meanwhile
    }
  }

  /** REPLICA IDENTITY FULL on every tracked table that lacks it, where permitted; said loudly where not. */
  /** The tracked tables (with their replica identity). */
  private async trackedTables(): Promise<Array<{ schema: string; name: string; full: boolean }>> {
    const tables = await this.pool.query<{ schema: string; name: string; full: boolean }>(
      `select n.nspname as schema, c.relname as name, c.relreplident = 'f' as full from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_'`,
    );
    return tables.rows.filter((t) => tracks(this.tracked, t.schema, t.name) && TABLE_NAME.test(t.schema) && TABLE_NAME.test(t.name));
  }

  private async fullIdentityForAll(): Promise<void> {
    for (const t of await this.trackedTables()) {
      if (t.full) continue;
      try {
        await this.pool.query(`alter table ${pg.escapeIdentifier(t.schema)}.${pg.escapeIdentifier(t.name)} replica identity full`);
      } catch (error) {
        this.warnOnce(
          `identity:${t.schema}.${t.name}`,
          `database: could not set REPLICA IDENTITY FULL on ${t.schema}.${t.name} (${(error as Error).message}): its UPDATE and DELETE events carry only the key as "old"`,
        );
      }
    }
  }

  // ---- who reads the slot ----

  /** Takes the slot's advisory lock (waiting while another node holds it), then replicates until something fails. */
  private async contend(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.lockClient) {
        const client = new pg.Client({ connectionString: this.url });
        client.on("error", (error) => this.lost(`the slot's lock connection failed (${error.message})`));
        await client.connect();
        this.lockClient = client;
      }
      const got = await this.lockClient.query<{ ok: boolean }>("select pg_try_advisory_lock(hashtext($1)) as ok", [`chorus-slot:${this.slot}`]);
      if (!got.rows[0]?.ok) {
        this.retry = setTimeout(() => void this.contend(), RETRY_MS);
        return;
      }
      await this.replicate();
    } catch (error) {
      this.lost(`replication stopped (${(error as Error).message})`);
    }
  }

  /** Something failed: everything is let go, and taken again after a pause (from the last acknowledged change). */
  private lost(why: string): void {
    if (this.closed || this.restarting) return;
    this.restarting = true;
    this.log.warn(`database: ${why}; retrying in ${RETRY_MS} ms`);
    clearInterval(this.statusTimer);
    const replication = this.replication;
    const lock = this.lockClient;
    this.replication = undefined;
    this.lockClient = undefined;
    this.current = undefined;
    void replication?.end().catch(() => {});
    void lock?.end().catch(() => {});
    clearTimeout(this.retry);
    // Stores under way finish first, so nothing is handed over twice within this process.
    void this.storing
      .catch(() => {})
      .then(() => {
        this.storing = Promise.resolve();
        this.pendingCommits = 0;
        this.unacked = [];
        this.restarting = false;
        this.sink?.resume();
        if (!this.closed) this.retry = setTimeout(() => void this.contend(), RETRY_MS);
      });
  }

  private async replicate(): Promise<void> {
    const exists = await this.pool.query<{ lost: boolean }>("select coalesce(wal_status = 'lost', false) as lost from pg_replication_slots where slot_name = $1", [this.slot]);
    const invalidated = exists.rows[0]?.lost === true;
    if (invalidated) {
      this.log.error(`database: replication slot "${this.slot}" was invalidated (it fell behind max_slot_wal_keep_size): changes made meanwhile are lost; it is made anew`);
      // Told before the slot is replaced (a crash in between tells it twice, never not at all), and so before anything the new slot reads.
      const tables = (await this.trackedTables()).map((t) => tableTopic(t.schema, t.name));
      await this.sink!.lost(tables, `replication slot "${this.slot}" was invalidated by max_slot_wal_keep_size`);
      await this.pool.query("select pg_drop_replication_slot($1)", [this.slot]);
    }
    if (!exists.rowCount || invalidated) {
      await this.pool.query("select pg_create_logical_replication_slot($1, 'pgoutput')", [this.slot]);
      this.log.info(`database: created replication slot "${this.slot}" (drop it with SELECT pg_drop_replication_slot('${this.slot}') if Chorus stops tracking this database)`);
    }
    const client = new pg.Client({ connectionString: this.url, replication: "database" } as pg.ClientConfig);
    client.on("error", (error) => this.lost(`the replication connection failed (${error.message})`));
    await client.connect();
    this.replication = client;
    const connection = (client as unknown as { connection: { on(event: string, cb: (msg: { chunk: Buffer }) => void): void; sendCopyFromChunk(chunk: Buffer): void } }).connection;
    connection.on("copyData", ({ chunk }) => {
      try {
        this.receive(chunk);
      } catch (error) {
        this.lost(`a replication message could not be read (${(error as Error).message})`);
      }
    });
    this.statusTimer = setInterval(() => this.sendStatus(), STATUS_MS).unref();
    const publication = this.slot.replace(/'/g, "''");
    this.log.info(`database: reading changes from slot "${this.slot}"`);
    client
      .query(`START_REPLICATION SLOT ${pg.escapeIdentifier(this.slot)} LOGICAL 0/0 (proto_version '1', publication_names '${publication}')`)
      .then(
        () => this.lost("the replication stream ended"),
        (error: Error) => this.lost(`the replication stream failed (${error.message})`),
      );
  }

  // ---- the stream ----

  private receive(chunk: Buffer): void {
    const message = decodeReplication(chunk);
    if (!message) return;
    if (message.kind === "keepalive") {
      // Nothing received is waiting to be stored: everything the server has sent up to here is done with.
      if (this.current === undefined && this.pendingCommits === 0 && message.walEnd > this.acked) this.acked = message.walEnd;
      if (message.replyRequested) this.sendStatus();
      return;
    }
    this.handle(message.message);
  }

  private handle(m: PgOutputMessage): void {
    switch (m.tag) {
      case "begin":
        this.current = [];
        this.committedAt = m.committedAt;
        return;
      case "relation": {
        const topic = tracks(this.tracked, m.schema, m.name) && TABLE_NAME.test(m.schema) && TABLE_NAME.test(m.name) ? tableTopic(m.schema, m.name) : undefined;
        this.relations.set(m.relationId, { topic, columns: m.columns, full: m.replicaIdentity === "f" });
        if (topic && m.replicaIdentity !== "f") {
          this.warnOnce(`identity:${m.schema}.${m.name}`, `database: ${m.schema}.${m.name} has no REPLICA IDENTITY FULL: its UPDATE and DELETE events carry only the key as "old"`);
          void this.fullIdentityForAll().catch(() => {});
        }
        return;
      }
      case "insert":
        return this.add(m.relationId, "INSERT", m.row, undefined);
      case "update":
        return this.add(m.relationId, "UPDATE", m.row, m.old);
      case "delete":
        return this.add(m.relationId, "DELETE", undefined, m.old);
      case "truncate":
        for (const id of m.relationIds) {
          const topic = this.relations.get(id)?.topic;
          if (topic) this.warnOnce(`truncate:${topic}`, `database: TRUNCATE on "${topic}" is not reported to subscribers (the replication stream does not carry the rows it removed)`);
        }
        return;
      case "commit":
        return this.commit(m.endLsn);
    }
  }

  private add(relationId: number, op: RowChange["op"], row: TupleValue[] | undefined, old: TupleValue[] | undefined): void {
    const relation = this.relations.get(relationId);
    if (!relation?.topic || !this.current) return;
    const oldRow = old ? this.object(relation, old, undefined) : undefined;
    const newRow = row ? this.object(relation, row, oldRow) : undefined;
    const change: RowChange = { table: relation.topic, op, data: JSON.stringify(newRow ?? oldRow ?? {}), mark: "" };
    if (oldRow) change.old = JSON.stringify(oldRow);
    this.current.push(change);
  }

  /** A tuple as a row object; unchanged TOASTed values (not sent) are taken from the old row when it has them. */
  private object(relation: Relation, tuple: TupleValue[], old: Record<string, unknown> | undefined): Record<string, unknown> {
    const row: Record<string, unknown> = {};
    relation.columns.forEach((column, i) => {
      const value = tuple[i];
      if (value === undefined) return;
      if (value === null) row[column.name] = null;
      else if (typeof value === "object") {
        if (old && Object.hasOwn(old, column.name)) row[column.name] = old[column.name];
      } else row[column.name] = fromPgText(column.typeOid, value);
    });
    return row;
  }

  private commit(endLsn: bigint): void {
    const changes = this.current ?? [];
    this.current = undefined;
    if (changes.length === 0) {
      if (this.pendingCommits === 0 && endLsn > this.acked) this.acked = endLsn;
      return;
    }
    const lsn = endLsn.toString(16).padStart(16, "0");
    changes.forEach((c, i) => (c.mark = `postgres:${lsn}.${i.toString(16).padStart(6, "0")}`));
    // Handed over at once (the sink keeps the order); acknowledged in commit order once stored.
    const entry = { lsn: endLsn, done: false };
    this.unacked.push(entry);
    this.pendingCommits++;
    const stored = this.sink!.commit(changes, this.committedAt);
    this.storing = Promise.allSettled([this.storing, stored]).then(() => undefined);
    stored.then(
      () => {
        entry.done = true;
        this.pendingCommits--;
        // Exactly the commit's end: acknowledging one past it makes PostgreSQL skip a back-to-back commit on restart.
        while (this.unacked[0]?.done) {
          const next = this.unacked.shift()!;
          if (next.lsn > this.acked) this.acked = next.lsn;
        }
        this.sendStatus();
      },
      (error: unknown) => this.lost(`changes at ${formatLsn(endLsn)} could not be stored (${(error as Error).message})`),
    );
  }

  private sendStatus(): void {
    if (!this.replication || this.acked === 0n) return;
    try {
      (this.replication as unknown as { connection: { sendCopyFromChunk(chunk: Buffer): void } }).connection.sendCopyFromChunk(standbyStatus(this.acked));
    } catch {
      // the connection is going; its error handler restarts replication
    }
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(message);
  }
}
