import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import type { RealtimeClient } from "../../clients/src/client.js";
import type { RealtimePayload } from "../../clients/src/types.js";
import { postgresInstalled, startPostgres, type PostgresProcess } from "./postgres.js";

type Row = Record<string, any>;

/**
 * The reference docs' LiveOrders component as plain subscription code: a
 * list fed by INSERT (prepended), UPDATE (replaced by id) and DELETE
 * (removed by id).
 */
export function liveOrders(client: RealtimeClient, table = "orders") {
  let orders: Row[] = [];
  const channel = client.channel(table);
  channel
    .on("INSERT", ({ data }) => (orders = [data, ...orders]))
    .on("UPDATE", ({ data }) => (orders = orders.map((o) => (o.id === data.id ? data : o))))
    .on("DELETE", ({ data }) => (orders = orders.filter((o) => o.id !== data.id)))
    .subscribe();
  return { channel, rows: () => orders };
}

/** The reference docs' LiveFeed: INSERT prepended, UPDATE replaced by id (it has no DELETE handler). */
export function liveFeed(client: RealtimeClient, table = "orders") {
  let events: Row[] = [];
  const channel = client.channel(table);
  channel
    .on("INSERT", ({ data }) => (events = [data, ...events]))
    .on("UPDATE", ({ data }) => (events = events.map((e) => (e.id === data.id ? data : e))))
    .subscribe();
  return { channel, rows: () => events };
}

/** The reference docs' CollaborativeTodos, its table part: one list's todos, fed by INSERT (if on the list), UPDATE and DELETE. */
export function collaborativeTodos(client: RealtimeClient, listId: number) {
  let todos: Row[] = [];
  const channel = client.channel("todos");
  channel
    .on("INSERT", ({ data }) => {
      if (data.list_id === listId) todos = [...todos, data];
    })
    .on("UPDATE", ({ data }) => (todos = todos.map((t) => (t.id === data.id ? data : t))))
    .on("DELETE", ({ data }) => (todos = todos.filter((t) => t.id !== data.id)))
    .subscribe();
  return { channel, rows: () => todos };
}

/** Every DB change a client receives on a table, in order. */
export function changeLog(client: RealtimeClient, table: string, filter?: string) {
  const changes: RealtimePayload[] = [];
  const channel = client.channel(table, filter === undefined ? {} : { filter });
  channel.on("*", (p) => {
    if (p.type === "db_change") changes.push(p);
  });
  return { channel, changes };
}

/** A list kept from changes the way apps keep one (by id). */
export function materialize(changes: RealtimePayload[]): Row[] {
  const rows = new Map<unknown, Row>();
  for (const c of changes) {
    if (c.operation === "DELETE") rows.delete(c.data.id);
    else rows.set(c.data.id, c.data);
  }
  return sortById([...rows.values()]);
}

export const sortById = (rows: Row[]) => [...rows].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

/**
 * A private PostgreSQL for the enclosing file (started before its suites,
 * stopped after), or undefined where PostgreSQL is not installed (the
 * suites then skip, or fail under CI=true). `database()` makes a database
 * of its own for one suite, so suites never see each other's tables or
 * slots.
 */
export function privatePostgres(): { available: boolean; url: () => string; database: (name: string) => Promise<string>; admin: () => pg.Client } {
  const available = postgresInstalled();
  let server: PostgresProcess | undefined;
  let admin: pg.Client | undefined;
  beforeAll(async () => {
    if (!available) return;
    server = await startPostgres();
    admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
  }, 30_000);
  afterAll(async () => {
    await admin?.end().catch(() => {});
    await server?.stop();
  });
  return {
    available,
    url: () => server!.url,
    admin: () => admin!,
    database: async (name: string) => {
      await admin!.query(`create database ${pg.escapeIdentifier(name)}`);
      return server!.url.replace(/\/postgres$/, `/${name}`);
    },
  };
}
