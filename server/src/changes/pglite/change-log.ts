import type { PGlite } from "@electric-sql/pglite";
import type { Logger } from "../../log.js";
import type { ChangeSink, RowChange, RowOperation } from "../source.js";

/** Log rows read at a time. */
const READ_BATCH = 2000;
/** Announced rows held at most; past it they are dropped and read back from the log instead. */
const INBOX_LIMIT = 10_000;
/**
 * The log is vacuumed after this many rows were deleted from it: PGlite runs
 * no autovacuum, and without it the dead rows' space is never reused.
 */
const VACUUM_EVERY = 20_000;

/** A row of `chorus.changes`, read back or announced. */
interface LoggedChange {
  id: string;
  tbl: string;
  op: RowOperation;
  data: string;
  old: string | null;
}

/**
 * Hands what the capture triggers logged (capture.ts) to the sink, in log
 * order, each change once, and deletes log rows once they are stored.
 *
 * Most changes are never read back: the trigger announces each row with
 * its NOTIFY (PGlite delivers it before the statement's call returns), so
 * a change costs the statement that made it and nothing more. The log
 * itself is read when an announcement says so (a bare id: the row was too
 * big for NOTIFY, or its transaction announced enough), after a start
 * (what a crash left), and once a second (deleting what is stored, and
 * catching anything not announced). Rows already handed over are skipped
 * by id, whichever way they come.
 */
export class ChangeLogDrain {
  /** Rows announced and not yet handed over, in commit order. */
  private inbox: LoggedChange[] = [];
  /** The log must be read before anything in the inbox is handed over. */
  private readLog = true;
  private draining: Promise<void> | undefined;
  /** Log ids: the last handed to the sink, and the last stored (with all before it); the next read deletes up to `stored`. */
  private handed = 0n;
  private stored = 0n;
  /** Settles once everything handed over so far is stored, or has failed (then `failed`). */
  private storing: Promise<void> = Promise.resolve();
  private failed = false;
  private closed = false;
  /** Log ids deleted through (by the last read), and vacuumed through. */
  private deleted = 0n;
  private vacuumed = 0n;

  constructor(
    private readonly db: PGlite,
    private readonly sink: ChangeSink,
    /** A logged row's JSON text as subscribers get it. */
    private readonly toJson: (topic: string, text: string) => Promise<string>,
    private readonly log: Logger,
  ) {}

  /** A NOTIFY of the capture trigger: `id\ttopic\top\tdata[\told]`, or a bare id (read the log). */
  announced(payload: string): void {
    const fields = payload.split("\t");
    if (fields.length < 4 || this.inbox.length >= INBOX_LIMIT) {
      this.readLog = true;
      this.inbox = [];
    } else {
      this.inbox.push({ id: fields[0]!, tbl: fields[1]!, op: fields[2] as RowOperation, data: fields[3]!, old: fields[4] ?? null });
    }
    void this.drain();
  }

  /**
   * Settles once everything announced so far (and with `readLog`, all the
   * log holds) is stored, or the attempt failed (logged; tried again by the
   * next call).
   */
  drain(readLog = false): Promise<void> {
    if (readLog) this.readLog = true;
    // A drain under way looks again before it settles, so it covers this call too.
    this.draining ??= this.run().finally(() => (this.draining = undefined));
    return this.draining.catch((error: unknown) => this.log.warn(`database: change log not drained (${(error as Error).message}); retrying`));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.draining?.catch(() => {});
  }

  private pending(): boolean {
    return !this.closed && !this.failed && (this.readLog || this.inbox.length > 0);
  }

  private async run(): Promise<void> {
    do {
      while (this.pending()) {
        // Never the inbox while a read is due: a row not announced may come before what it holds.
        if (this.readLog) {
          this.readLog = false;
          while (!this.closed && !this.failed && (await this.readBatch())) {}
        } else {
          const rows = this.inbox.splice(0).filter((row) => BigInt(row.id) > this.handed);
          if (rows.length > 0) await this.hand(rows);
        }
      }
      await this.storing;
    } while (this.pending());
    if (this.failed) {
      // Everything handed over has settled: start again from the last change stored, reading the log.
      this.failed = false;
      this.handed = this.stored;
      this.inbox = [];
      this.readLog = true;
      this.sink.resume();
      throw new Error("changes could not be stored");
    }
  }

  /** Reads a batch of the log past what was handed over (deleting what is stored on the way); true when there may be more. */
  private async readBatch(): Promise<boolean> {
    const deleting = this.stored;
    // Read as text, whatever the parsers do: the rows are JSON text to be kept as such.
    const result = await this.db.query<LoggedChange>(
      `with stored as (delete from chorus.changes where id <= $1)
       select c.id::text as id, c.tbl, c.op, c.data, c.old from chorus.changes c where c.id > $2 order by c.id limit $3`,
      [deleting.toString(), this.handed.toString(), READ_BATCH],
    );
    this.deleted = deleting;
    // Rows announced while the read was queued may have been handed over meanwhile.
    const rows = result.rows.filter((row) => BigInt(row.id) > this.handed);
    if (rows.length > 0) await this.hand(rows);
    if (this.deleted - this.vacuumed >= VACUUM_EVERY) {
      this.vacuumed = this.deleted;
      await this.db.exec("vacuum chorus.changes");
    }
    return result.rows.length === READ_BATCH;
  }

  /** Hands rows to the sink without waiting for them to be stored: the next may follow at once. */
  private async hand(rows: LoggedChange[]): Promise<void> {
    const changes: RowChange[] = [];
    for (const row of rows) {
      const change: RowChange = { table: row.tbl, op: row.op, data: await this.toJson(row.tbl, row.data), mark: `pglite:${row.id.padStart(19, "0")}` };
      if (row.old !== null) change.old = await this.toJson(row.tbl, row.old);
      changes.push(change);
    }
    const last = BigInt(rows.at(-1)!.id);
    this.handed = last;
    const stored = this.sink.commit(changes, Date.now()); // read now: the embedded database's commit was moments ago
    this.storing = Promise.all([this.storing, stored]).then(
      () => {
        // In order: everything handed before it is stored too (the sink refuses all after a failure).
        if (!this.failed && last > this.stored) this.stored = last;
      },
      () => {
        this.failed = true;
      },
    );
  }
}
