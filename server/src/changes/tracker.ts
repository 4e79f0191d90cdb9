import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Engine } from "../engine/engine.js";
import type { Logger } from "../log.js";
import { numberPlaceholders } from "./placeholders.js";
import type { ChangeSource, DatabaseError, QueryResult, RowChange, TableInfo } from "./source.js";

/** Changes are stored under this publisher, with message ids `db:<mark>`. */
const PUBLISHER = "changes";
const ID_PREFIX = "db:";
/** Notices of lost changes: not marks, so never taken for the last change stored. */
const GAP_ID_PREFIX = "db-gap:";
/** How far back a table's history is searched for its last stored change after a start. */
const MARK_SEARCH = 1000;

/**
 * Turns a change source's committed transactions into persisted messages
 * of the tables' topics (so positions, history and recovery are the
 * engine's), and runs back ends' SQL. The source is opened on first use
 * (a query, or a subscription to a table topic), never at start-up.
 *
 * Exactly once: every change is stored under an id made of its mark; after
 * a restart, the source may hand over again what it had not yet been told
 * was stored, and a change whose mark is not past the last one stored on
 * its table is skipped (the engine's id deduplication covers the same
 * within two minutes as well).
 */
export class ChangeTracker {
  private opening: Promise<ChangeSource> | undefined;
  /** Per table: the mark of the last change stored (or being stored), as far as this process knows. */
  private readonly known = new Map<string, string>();
  /** Transactions are accepted one after another. */
  private accepting: Promise<void> = Promise.resolve();
  /**
   * Why a store failed, until the source resumes: what was handed over
   * after a failed transaction must not be stored before it (it would take
   * its positions, and the failed one, handed over again, would then be
   * taken for stored).
   */
  private failure: unknown;
  /** Changes stored, for the log and the metrics. */
  stored = 0;
  /** Hears, per transaction stored, how long after its commit (seconds). */
  onStored: ((lagSeconds: number) => void) | undefined;
  private closed = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly create: () => ChangeSource,
    private readonly engine: Engine,
    private readonly log: Logger,
  ) {}

  /** Whether the database has been opened (it is, once anything used it). */
  /** Whether changes are being stored: false while a failed store waits for the source to resume. */
  get healthy(): boolean {
    return this.failure === undefined;
  }

  get started(): boolean {
    return this.opening !== undefined;
  }

  async query(sql: string, params: unknown[]): Promise<QueryResult> {
    const source = await this.source();
    return withSqlErrors(() => source.query(numberPlaceholders(sql, params.length), params));
  }

  /** PostgreSQL: the replication slot's lag in bytes; undefined before the database is open, or without a slot. */
  async slotLagBytes(): Promise<number | undefined> {
    if (!this.opening) return undefined;
    const source = await this.opening.catch(() => undefined);
    return source?.slotLagBytes?.();
  }

  async exec(sql: string): Promise<void> {
    const source = await this.source();
    await withSqlErrors(() => source.exec(sql));
  }

  /** A tracked table, or NOT_FOUND. */
  async table(topic: string): Promise<TableInfo> {
    const source = await this.source();
    const info = await withSqlErrors(() => source.table(topic));
    if (!info) throw new ConnectError(`table "${topic}" does not exist or is not tracked (tracked: CHORUS_DB_TABLES)`, Code.NotFound);
    return info;
  }

  /**
   * Opens the source now, in the background, trying again every few
   * seconds until it opens: for a PostgreSQL, whose changes by any client
   * are to be captured whether or not anything here has used it yet.
   */
  openInBackground(retryMs = 2000): void {
    const attempt = () => {
      if (this.closed) return;
      this.source().catch(() => {
        this.retry = setTimeout(attempt, retryMs);
        this.retry.unref();
      });
    };
    attempt();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    const source = await this.opening?.catch(() => undefined);
    await source?.close();
  }

  /** The source, opened on first use; a failed opening is tried again by the next call. */
  private source(): Promise<ChangeSource> {
    this.opening ??= (async () => {
      const source = this.create();
      try {
        await source.start({
          commit: (changes, committedAt) => {
            const stored = this.commit(source.name, changes);
            if (committedAt !== undefined) void stored.then(() => this.onStored?.(Math.max(0, Date.now() - committedAt) / 1000), () => {});
            return stored;
          },
          resume: () => {
            this.failure = undefined;
            this.known.clear();
          },
          lost: (tables, reason) => this.lost(tables, reason),
        });
        return source;
      } catch (error) {
        this.opening = undefined;
        await source.close().catch(() => {});
        this.log.error(`database: could not be opened (${(error as Error).message})`);
        throw new ConnectError(`the database is not available (${(error as Error).message}); retry`, Code.Unavailable);
      }
    })();
    return this.opening;
  }

  /**
   * Stores a transaction's changes in commit order, skipping those already
   * stored; settles once all are durable. Transactions are accepted one
   * after another (the engine takes each publish in call order, so
   * positions follow the commit order), but the next is accepted without
   * waiting for the last one's durability: a source may hand over its
   * next transaction at once.
   */
  private commit(source: string, changes: RowChange[]): Promise<void> {
    // Wrapped, so that acceptance settles without waiting for durability (a promise would be flattened).
    const accepted = this.accepting.then(() => this.accept(source, changes));
    this.accepting = accepted.then(
      () => undefined,
      (error: unknown) => {
        this.failure ??= error;
      },
    );
    return accepted.then((a) => a.durable);
  }

  /** Issues the publishes of one transaction (after reading any table's last mark it lacks); `durable` settles once they are stored. */
  private async accept(source: string, changes: RowChange[]): Promise<{ durable: Promise<void> }> {
    if (this.failure !== undefined) throw this.failure;
    for (const table of new Set(changes.map((c) => c.table))) if (!this.known.has(table)) this.known.set(table, await this.lastMark(table, source));
    const pending: Array<Promise<unknown>> = [];
    for (const change of changes) {
      const last = this.known.get(change.table)!;
      if (last !== "" && change.mark <= last) continue;
      this.known.set(change.table, change.mark);
      // Accepted synchronously in call order: positions follow the commit order.
      pending.push(
        this.engine.publish({
          topic: change.table,
          event: change.op,
          data: change.data,
          old: change.old,
          persist: true,
          id: `${ID_PREFIX}${change.mark}`,
          publisher: PUBLISHER,
          userId: "",
          connectionId: "",
        }),
      );
    }
    const durable = Promise.all(pending).then(
      () => {
        this.stored += pending.length;
      },
      (error: unknown) => {
        this.failure ??= error;
        // What this process believes stored may not be: read it back from history once the source resumes.
        this.known.clear();
        throw error;
      },
    );
    return { durable };
  }

  /**
   * Stores a `system:history_gap` notice (reason `changes_lost`) in each
   * table's history, after the changes accepted before it: subscribers get
   * it live, in a replay and in getHistory, like the changes around it.
   */
  private lost(tables: string[], reason: string): Promise<void> {
    this.log.error(`database: changes on ${tables.length} tracked table(s) were lost (${reason}); each table's subscribers are told`);
    const data = JSON.stringify({ reason: "changes_lost", detail: reason, at: new Date().toISOString() });
    const accepted = this.accepting.then(() =>
      tables.map((topic) =>
        this.engine.publish({ topic, event: "system:history_gap", data, persist: true, id: `${GAP_ID_PREFIX}${randomUUID()}`, publisher: PUBLISHER, userId: "", connectionId: "" }),
      ),
    );
    this.accepting = accepted.then(
      () => undefined,
      () => undefined,
    );
    return accepted.then((stored) => Promise.all(stored)).then(() => undefined);
  }

  /** The mark of the last change of `source` stored on a table ("" for none), read from its history. */
  private async lastMark(table: string, source: string): Promise<string> {
    const page = await this.engine.history(table, { limit: MARK_SEARCH, before: 0, beforeSeq: 0, maxBytes: 0 });
    const prefix = `${ID_PREFIX}${source}:`;
    return page.messages.find((m) => m.id.startsWith(prefix))?.id.slice(ID_PREFIX.length) ?? "";
  }
}

/**
 * A database error as the caller's Connect error, with the database's
 * message and SQLSTATE: the statement's fault (syntax, unknown names, bad
 * values) is INVALID_ARGUMENT, the data's state (constraints) is
 * FAILED_PRECONDITION, a serialization conflict ABORTED, a lost connection
 * UNAVAILABLE.
 */
async function withSqlErrors<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof ConnectError) throw error;
    const e = error as DatabaseError;
    const sqlState = typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
    const message = `${e.message}${sqlState ? ` (SQLSTATE ${sqlState})` : ""}`;
    // Without a SQLSTATE the driver refused the request itself (a parameter it cannot send), unless the connection went.
    if (!sqlState) throw new ConnectError(`database: ${message}`, /closed|ECONNREFUSED|ECONNRESET|terminat|timeout|not available/i.test(e.message) ? Code.Unavailable : Code.InvalidArgument);
    const cls = sqlState.slice(0, 2);
    const code =
      cls === "28" || sqlState === "42501"
        ? Code.PermissionDenied
        : cls === "42" || cls === "22" || cls === "0A" || cls === "26" || cls === "34"
          ? Code.InvalidArgument
          : cls === "40"
            ? Code.Aborted
            : cls === "08" || cls === "57" || cls === "53"
              ? Code.Unavailable
              : Code.FailedPrecondition;
    throw new ConnectError(`database: ${message}`, code, { "x-sqlstate": sqlState });
  }
}
