import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { PGlite } from "@electric-sql/pglite";
import { lockDataDir, type DataDirLock } from "../../engine/store/lock.js";
import type { Logger } from "../../log.js";
import { CONVERTED_TYPES, fromPgText, safeJsonText } from "../values.js";
import { topicTable, type ChangeSink, type ChangeSource, type QueryResult, type TableInfo } from "../source.js";
import { CAPTURE_SQL } from "./capture.js";
import { ChangeLogDrain } from "./change-log.js";

/** How often the log is read even without an announcement that asks for it. */
const POLL_MS = 1000;
const BYTEA = 17;
const BYTEA_ARRAY = 1001;

/**
 * The embedded database: PGlite in `<data dir>/database/pgdata`, locked
 * (two processes would corrupt it), opened on first use. Changes are
 * captured by triggers into a log table and announced (capture.ts), and
 * handed to the sink from there (change-log.ts). A query settles once the
 * changes it made are stored.
 */
export class PGliteSource implements ChangeSource {
  readonly name = "pglite";
  private db: PGlite | undefined;
  private lock: DataDirLock | undefined;
  private timer: NodeJS.Timeout | undefined;
  private changes: ChangeLogDrain | undefined;
  private readonly tables = new Map<string, TableInfo>();
  private closed = false;

  constructor(
    private readonly dataDir: string,
    private readonly tracked: readonly string[],
    private readonly log: Logger,
  ) {}

  async start(sink: ChangeSink): Promise<void> {
    const dir = join(this.dataDir, "database");
    mkdirSync(dir, { recursive: true });
    this.lock = lockDataDir(dir, "pglite");
    const started = performance.now();
    const { PGlite } = await import("@electric-sql/pglite");
    const parsers = Object.fromEntries(CONVERTED_TYPES.map((oid) => [oid, (text: string) => fromPgText(oid, text)]));
    try {
      // Parameters arrive as JSON values: a string for a bytea is its text form ('\x0102'), as PostgreSQL reads it.
      const serializers = { [BYTEA]: (v: unknown) => (typeof v === "string" ? v : `\\x${Buffer.from(v as Uint8Array).toString("hex")}`) };
      this.db = await PGlite.create({ dataDir: join(dir, "pgdata"), parsers, serializers });
      await this.db.exec(CAPTURE_SQL);
      await this.db.transaction(async (tx) => {
        await tx.query("delete from chorus.tracked");
        for (const pattern of this.tracked) await tx.query("insert into chorus.tracked (pattern) values ($1)", [pattern.includes(".") ? pattern : `public.${pattern}`]);
      });
      await this.db.query("select chorus.track_all()");
      const changes = new ChangeLogDrain(this.db, sink, (topic, text) => this.json(topic, text), this.log);
      this.changes = changes;
      await this.db.listen("chorus_changes", (payload) => changes.announced(payload));
    } catch (error) {
      this.lock.release();
      throw error;
    }
    this.timer = setInterval(() => void this.changes?.drain(true), POLL_MS).unref();
    this.log.info(`database: embedded PGlite ready in ${Math.round(performance.now() - started)} ms (${dir})`);
    await this.changes?.drain(true);
  }

  async query(sql: string, params: unknown[]): Promise<QueryResult> {
    const result = await this.open().query<Record<string, unknown>>(sql, params);
    // The statement's changes were announced before its call returned: stored once this settles.
    await this.changes?.drain();
    return { rows: result.rows, fields: result.fields.map((f) => f.name), rowCount: result.affectedRows || result.rows.length };
  }

  async exec(sql: string): Promise<void> {
    await this.open().exec(sql);
    this.tables.clear(); // DDL may have changed any table
    await this.changes?.drain();
  }

  async table(topic: string): Promise<TableInfo | undefined> {
    const known = this.tables.get(topic);
    if (known) return known;
    const { schema, table } = topicTable(topic);
    const result = await this.open().query<{ name: string; type: number; tracked: boolean }>(
      `select a.attname as name, a.atttypid::int as type, chorus.is_tracked(n.nspname, c.relname) as tracked
         from pg_class c join pg_namespace n on n.oid = c.relnamespace join pg_attribute a on a.attrelid = c.oid
        where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped`,
      [schema, table],
    );
    if (result.rows.length === 0 || !result.rows[0]!.tracked) return undefined;
    const info = { columns: new Map(result.rows.map((r) => [r.name, r.type])) };
    this.tables.set(topic, info);
    return info;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.changes?.close();
    await this.db?.close();
    this.lock?.release();
  }

  private open(): PGlite {
    if (!this.db || this.closed) throw new Error("the embedded database is closed");
    return this.db;
  }

  /** A logged row as the JSON subscribers get: big numbers as strings, bytea as base64. */
  private async json(topic: string, text: string): Promise<string> {
    const safe = safeJsonText(text);
    const info = await this.table(topic).catch(() => undefined);
    const binary = info ? [...info.columns].filter(([, type]) => type === BYTEA || type === BYTEA_ARRAY).map(([name]) => name) : [];
    if (binary.length === 0) return safe;
    const row = JSON.parse(safe) as Record<string, unknown>;
    const base64 = (v: unknown): unknown => (typeof v === "string" ? fromPgText(BYTEA, v) : Array.isArray(v) ? v.map(base64) : v);
    for (const name of binary) if (Object.hasOwn(row, name)) row[name] = base64(row[name]);
    return JSON.stringify(row);
  }
}
