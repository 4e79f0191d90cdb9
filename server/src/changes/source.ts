/** The row operations a change source reports. */
export type RowOperation = "INSERT" | "UPDATE" | "DELETE";

/** One committed row change, as its table's topic will carry it. */
export interface RowChange {
  /** The table's topic: `orders` for public.orders, `audit.events` for another schema. */
  table: string;
  op: RowOperation;
  /** JSON text: the new row (INSERT, UPDATE) or the deleted row (DELETE). */
  data: string;
  /** JSON text: the previous row (UPDATE, DELETE), when the source has it. */
  old?: string;
  /**
   * Where the change stands in the source's commit order: strictly
   * increasing, comparable as strings among one source's marks, the same
   * when the source hands the change over again (after a crash). Stored
   * with the change (in its message id), so a change already stored is
   * recognised and skipped.
   */
  mark: string;
}

/**
 * Where a source hands committed transactions, whole and in commit order.
 * A source may hand the next transaction over before the last one is
 * durable. Once one is rejected, every later one is too, until the source
 * has waited for all it handed over to settle and calls `resume`: it then
 * hands over again from its last durable point.
 */
export interface ChangeSink {
  /** Stores the changes (those not stored before); settles once they are durable, rejects if they could not be stored. */
  commit(changes: RowChange[], committedAt?: number): Promise<void>;
  /** The source starts again from what it knows is stored. */
  resume(): void;
  /**
   * Changes on these tables were lost (the database dropped them before
   * they were read): a notice goes into each table's history, in order
   * with its changes, so that no subscriber takes its copy for complete.
   */
  lost(tables: string[], reason: string): Promise<void>;
}

export interface QueryResult {
  /** Row objects, values converted as values.ts says. */
  rows: Array<Record<string, unknown>>;
  fields: string[];
  /** Rows returned or affected. */
  rowCount: number;
}

/** A tracked table: its columns and their type OIDs. */
export interface TableInfo {
  columns: Map<string, number>;
}

/**
 * Where database changes come from: an embedded PGlite or a PostgreSQL.
 * A source captures every committed change on its tracked tables and hands
 * it to the sink in commit order, exactly once as far as the sink can tell
 * (by mark); it also runs the back ends' SQL.
 */
export interface ChangeSource {
  /** "pglite" or "postgres": also the prefix of its marks. */
  readonly name: string;
  start(sink: ChangeSink): Promise<void>;
  query(sql: string, params: unknown[]): Promise<QueryResult>;
  /** One or more statements without parameters. */
  exec(sql: string): Promise<void>;
  /** A tracked table by its topic, or undefined when there is none. */
  table(topic: string): Promise<TableInfo | undefined>;
  /** PostgreSQL: how far the replication slot trails the server's WAL, in bytes (undefined where there is no slot). */
  slotLagBytes?(): Promise<number | undefined>;
  close(): Promise<void>;
}

/** A database error as sources report it: its message and SQLSTATE. */
export interface DatabaseError extends Error {
  code?: string;
}

/** Which tables are tracked: `schema.table` patterns where `*` stands for any name (`public.*`, `audit.events`). */
export function tracks(patterns: readonly string[], schema: string, table: string): boolean {
  return patterns.some((p) => {
    const [s, t] = p.includes(".") ? p.split(".", 2) : ["public", p];
    return (s === "*" || s === schema) && (t === "*" || t === table);
  });
}

/** The topic of a table: its name in the public schema, `schema.name` elsewhere. */
export function tableTopic(schema: string, table: string): string {
  return schema === "public" ? table : `${schema}.${table}`;
}

/** The schema and table a table topic names. */
export function topicTable(topic: string): { schema: string; table: string } {
  const dot = topic.indexOf(".");
  return dot < 0 ? { schema: "public", table: topic } : { schema: topic.slice(0, dot), table: topic.slice(dot + 1) };
}
