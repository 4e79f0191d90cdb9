import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServerSdk, type ServerSdk } from "../../clients/src/server-sdk.js";
import { NodeClient, transports } from "../helpers/clients.js";
import { changeLog, collaborativeTodos, liveFeed, liveOrders, materialize, privatePostgres, sortById } from "../helpers/changes.js";
import { LoopbackProxy } from "../helpers/proxy.js";
import { codeOf, eventually, removeDir, sleep, startServer, type ServerProcess } from "../helpers/server.js";

const postgres = privatePostgres();

/** The databases every behavioural suite runs against: the embedded PGlite, and a private PostgreSQL. */
const sources = [
  { name: "PGlite", postgres: false, env: async (): Promise<Record<string, string>> => ({}) },
  ...(postgres.available ? [{ name: "PostgreSQL", postgres: true, env: async (suite: string) => ({ DATABASE_URL: await postgres.database(suite), CHORUS_DB_SLOT: suite }) }] : []),
];

const ROW_RULES = JSON.stringify({ docs: "owner=eq.{sub}" });
let suites = 0;

describe.each(sources)("database changes from $name", (source) => {
  let server: ServerProcess;
  let sdk: ServerSdk;
  let url = "";
  /** A plain PostgreSQL client of the same database (PostgreSQL only): writes Chorus never sees as queries. */
  let direct: pg.Client | undefined;
  let dbUrl = "";
  beforeAll(async () => {
    const env = await source.env(`changes_${process.pid}_${++suites}`);
    dbUrl = env.DATABASE_URL ?? "";
    server = await startServer({ ...env, CHORUS_API_KEYS: "db-key", CHORUS_ROW_RULES: ROW_RULES, CHORUS_MAX_PUBLISH_RATE: "0" });
    url = server.url;
    sdk = createServerSdk({ url, apiKey: "db-key" });
    await sdk.db.exec(`
      create table orders (id text primary key, user_id text, total numeric, status text);
      create table todos (id serial primary key, list_id int not null, title text, done boolean default false);
      create table items (id int primary key, n int, tag text, note text);
      create table docs (id int primary key, owner text, body text);
      create table kinds (id int primary key, big bigint, exact numeric, at timestamptz, doc jsonb, blob bytea, tags text[], flag boolean, ratio float8);
    `);
    if (env.DATABASE_URL) {
      direct = new pg.Client({ connectionString: env.DATABASE_URL });
      await direct.connect();
    }
  }, 60_000);
  afterAll(async () => {
    sdk?.close();
    await direct?.end();
    await server?.stop();
    if (server) removeDir(server.dataDir);
  });

  /** Runs one write the way the script says: through sdk.db.query, or (PostgreSQL) a plain client. */
  const write = (sql: string, params: unknown[] = [], plain = false) => {
    if (plain && direct) {
      let n = 0;
      return direct.query(sql.replace(/\?/g, () => `$${++n}`), params);
    }
    return sdk.db.query(sql, params);
  };

  it("the reference LiveOrders, LiveFeed and CollaborativeTodos flows end with the client's lists equal to the tables", async () => {
    const client = new NodeClient({ url, token: "viewer" });
    const orders = liveOrders(client);
    const feed = liveFeed(client);
    const todos = collaborativeTodos(new NodeClient({ url, token: "editor" }), 1);
    await Promise.all([orders.channel.ready(), todos.channel.ready()]);

    for (let i = 1; i <= 12; i++) await write("INSERT INTO orders (id, user_id, total, status) VALUES (?, ?, ?, ?)", [`o${i}`, `u${i % 3}`, 10 * i + 0.99, "pending"], i % 2 === 0);
    await write("UPDATE orders SET status = ? WHERE id = ?", ["shipped", "o3"]);
    await write("UPDATE orders SET status = ?, total = total + 1 WHERE user_id = ?", ["paid", "u1"], true);
    for (const [list, title] of [[1, "milk"], [2, "other list"], [1, "eggs"], [1, "bread"]] as const) await write("INSERT INTO todos (list_id, title) VALUES (?, ?)", [list, title]);
    await write("UPDATE todos SET done = true WHERE title = ?", ["eggs"], true);
    await write("DELETE FROM todos WHERE title = ?", ["milk"]);
    await write("UPDATE todos SET list_id = 1 WHERE title = ?", ["other list"]);

    const table = async (sql: string) => sortById(await sdk.db.query(sql));
    const expectedOrders = await table("SELECT * FROM orders");
    await eventually(() => JSON.stringify(sortById(orders.rows())) === JSON.stringify(expectedOrders), "LiveOrders equal to the table", 10_000);
    await eventually(() => JSON.stringify(sortById(feed.rows())) === JSON.stringify(expectedOrders), "LiveFeed equal to the table", 10_000);
    // Its INSERT handler keeps only its list's rows; a todo moved onto the list later arrives as an UPDATE it ignores, as the component does.
    const expectedTodos = (await table("SELECT * FROM todos WHERE list_id = 1")).filter((t) => t.title !== "other list");
    await eventually(() => JSON.stringify(sortById(todos.rows())) === JSON.stringify(expectedTodos), "CollaborativeTodos equal to its list", 10_000);

    // Deletes leave the LiveOrders list as the table is.
    await write("DELETE FROM orders WHERE status = ?", ["paid"], true);
    const afterDelete = await table("SELECT * FROM orders");
    await eventually(() => JSON.stringify(sortById(orders.rows())) === JSON.stringify(afterDelete), "LiveOrders after deletes", 10_000);
    // The payload has the shape the docs give.
    const last = (await client.channel("orders").getHistory(1))[0]!;
    expect(last).toMatchObject({ event: "DELETE", room_id: "orders", data: { status: "paid" }, old: { status: "paid" } });
    client.disconnect();
  });

  it("delivers every committed change once, in commit order, with contiguous positions; rolled-back changes never", async () => {
    const watcher = new NodeClient({ url, token: "watcher" });
    const log = changeLog(watcher, "items");
    log.channel.subscribe();
    await log.channel.ready();
    const before = (await watcher.channel("items").getHistory(1))[0]?.seq ?? 0;
    // PostgreSQL's own record of commit order: a second logical slot (test_decoding) lists transactions in the
    // order their commit records entered the WAL. (Commit timestamps are not that: each is taken before its
    // commit record is written, so two concurrent commits can carry them in the other order.)
    const witness = `witness_${process.pid}_${Date.now()}`;
    if (source.postgres) await direct!.query("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", [witness]);
    const writers = 50;
    const rolledBack = new Set<number>();
    await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        const id = 1000 + w;
        const rollback = w % 7 === 3;
        if (rollback) rolledBack.add(id);
        if (source.postgres) {
          // Transactions that start in one order and commit in another.
          const client = new pg.Client({ connectionString: dbUrl });
          await client.connect();
          await client.query("BEGIN");
          await client.query("INSERT INTO items (id, n, tag) VALUES ($1, $2, 'w')", [id, w]);
          await sleep(Math.floor(Math.random() * 40));
          await client.query("UPDATE items SET n = n + 1000 WHERE id = $1", [id]);
          await client.query(rollback ? "ROLLBACK" : "COMMIT");
          await client.end();
        } else {
          await sleep(Math.floor(Math.random() * 40));
          await sdk.db.exec(`BEGIN; INSERT INTO items (id, n, tag) VALUES (${id}, ${w}, 'w'); UPDATE items SET n = n + 1000 WHERE id = ${id}; ${rollback ? "ROLLBACK" : "COMMIT"};`);
        }
      }),
    );
    const committed = writers - rolledBack.size;
    await eventually(() => log.changes.filter((c) => (c.data.id as number) >= 1000).length >= committed * 2, "every committed change", 15_000);
    await sleep(300);
    const mine = log.changes.filter((c) => (c.data.id as number) >= 1000);
    expect(mine.length).toBe(committed * 2);
    expect(mine.some((c) => rolledBack.has(c.data.id))).toBe(false);
    // Each transaction whole and in order: its INSERT then its UPDATE, next to each other (transactions are not interleaved).
    for (let i = 0; i < mine.length; i += 2) {
      expect([mine[i]!.operation, mine[i + 1]!.operation]).toEqual(["INSERT", "UPDATE"]);
      expect(mine[i + 1]!.data.id).toBe(mine[i]!.data.id);
      expect(mine[i + 1]!.data.n).toBe((mine[i]!.data.n as number) + 1000);
    }
    expect(new Set(mine.map((c) => c.data.id)).size).toBe(committed);
    const seqs = mine.map((c) => c.position!.seq);
    expect(seqs).toEqual(Array.from({ length: mine.length }, (_, i) => before + 1 + i));
    if (source.postgres) {
      // Commit order, as the WAL holds it: the witness slot's INSERTs of these rows, transaction by transaction.
      const decoded = await direct!.query<{ data: string }>("SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL)", [witness]);
      await direct!.query("SELECT pg_drop_replication_slot($1)", [witness]);
      const walOrder = decoded.rows
        .map((r) => /^table public\.items: INSERT: id\[integer\]:(\d+) /.exec(r.data)?.[1])
        .filter((id): id is string => id !== undefined)
        .map(Number)
        .filter((id) => id >= 1000);
      expect(walOrder.length).toBe(committed);
      expect(mine.filter((_, i) => i % 2 === 0).map((c) => c.data.id)).toEqual(walOrder);
    }
    watcher.disconnect();
  });

  it("keeps commit order whatever the rows: big ones, json with raw tabs, a transaction of thousands, between small ones", async () => {
    await sdk.db.exec("create table mixed (id int primary key, body text, doc json)");
    const watcher = new NodeClient({ url, token: "watcher" });
    const log = changeLog(watcher, "mixed");
    log.channel.subscribe();
    await log.channel.ready();
    const big = "b".repeat(20_000);
    await sdk.db.exec(`BEGIN; INSERT INTO mixed (id, body) VALUES (1, 'small'); INSERT INTO mixed (id, body) VALUES (2, '${big}'); INSERT INTO mixed (id, body) VALUES (3, 'small'); COMMIT;`);
    await sdk.db.query("INSERT INTO mixed (id, doc) VALUES (4, ?::json)", ['{"a":\t1}']);
    await sdk.db.query("INSERT INTO mixed (id, body) VALUES (5, 'small')");
    await sdk.db.query("INSERT INTO mixed (id, body) SELECT g, 'bulk' FROM generate_series(6, 2505) g");
    await sdk.db.query("UPDATE mixed SET body = ? WHERE id = 3", [big]);
    await sdk.db.query("DELETE FROM mixed WHERE id = 1");
    await eventually(() => log.changes.length >= 2507, "every change", 20_000);
    await sleep(200);
    expect(log.changes.map((c) => `${c.operation}:${c.data.id}`)).toEqual([...Array.from({ length: 2505 }, (_, i) => `INSERT:${i + 1}`), "UPDATE:3", "DELETE:1"]);
    expect(log.changes[1]!.data.body).toBe(big);
    expect(log.changes[3]!.data.doc).toEqual({ a: 1 });
    expect(log.changes[2505]!.old).toMatchObject({ id: 3, body: "small" });
    const seqs = log.changes.map((c) => c.position!.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
    watcher.disconnect();
  });

  it.skipIf(source.postgres)("keeps PGlite's change log small: drained rows are deleted and their space reused (PGlite has no autovacuum)", { timeout: 60_000 }, async () => {
    await sdk.db.exec("create table churn (id int primary key, pad text)");
    const logSize = async () => (await sdk.db.query<{ size: number }>("select pg_total_relation_size('chorus.changes')::int as size"))[0]!.size;
    // About 310 KB of log per 1000 rows of this size: 60 000 would leave some 19 MB without reuse.
    for (let i = 0; i < 120; i++) await sdk.db.query(`insert into churn select g, repeat('x', 200) from generate_series(${i * 500}, ${i * 500 + 499}) g`);
    await sleep(2500); // the once-a-second read deletes what is stored
    await sdk.db.query("insert into churn values (-1, 'last')");
    await sleep(1500);
    expect(await logSize()).toBeLessThan(8 * 2 ** 20);
  });

  it("filters on every operator, with rows moving into and out of view, DELETE included, evaluated per distinct filter", async () => {
    const filters = ["n=eq.5", "n=neq.5", "n=lt.3", "n=lte.3", "n=gt.7", "n=gte.7", "tag=in.(a,c)", "note=is.null", "tag=eq.a&n=gte.2"];
    const viewers = filters.map((filter, i) => {
      const client = transports[i % 2]!.create({ url, token: `f${i}` });
      const log = changeLog(client, "items", filter);
      log.channel.subscribe();
      return { filter, client, log };
    });
    // Two more with the same filter: one evaluation serves both.
    const twin = changeLog(new NodeClient({ url, token: "twin" }), "items", "n=eq.5");
    twin.channel.subscribe();
    await Promise.all([...viewers.map((v) => v.log.channel.ready()), twin.channel.ready()]);

    for (let id = 1; id <= 10; id++) await write("INSERT INTO items (id, n, tag, note) VALUES (?, ?, ?, ?)", [id, id, "abc"[id % 3], id % 4 === 0 ? null : "x"], id % 2 === 0);
    await write("UPDATE items SET n = 5 WHERE id = 1"); // into n=eq.5
    await write("UPDATE items SET n = 6 WHERE id = 5", [], true); // out of n=eq.5
    await write("UPDATE items SET tag = 'z', note = NULL WHERE id = 2");
    await write("DELETE FROM items WHERE id IN (3, 8)", [], true);
    await write("UPDATE items SET n = n + 1 WHERE id = 9");

    const sql: Record<string, string> = {
      "n=eq.5": "n = 5",
      "n=neq.5": "n <> 5",
      "n=lt.3": "n < 3",
      "n=lte.3": "n <= 3",
      "n=gt.7": "n > 7",
      "n=gte.7": "n >= 7",
      "tag=in.(a,c)": "tag IN ('a','c')",
      "note=is.null": "note IS NULL",
      "tag=eq.a&n=gte.2": "tag = 'a' AND n >= 2",
    };
    const holds: Record<string, (r: Record<string, any>) => boolean> = {
      "n=eq.5": (r) => r.n === 5,
      "n=neq.5": (r) => r.n !== null && r.n !== 5,
      "n=lt.3": (r) => r.n < 3,
      "n=lte.3": (r) => r.n <= 3,
      "n=gt.7": (r) => r.n > 7,
      "n=gte.7": (r) => r.n >= 7,
      "tag=in.(a,c)": (r) => r.tag === "a" || r.tag === "c",
      "note=is.null": (r) => r.note === null,
      "tag=eq.a&n=gte.2": (r) => r.tag === "a" && r.n >= 2,
    };
    for (const v of viewers) {
      const expected = sortById(await sdk.db.query(`SELECT * FROM items WHERE id < 100 AND ${sql[v.filter]}`));
      await eventually(() => JSON.stringify(materialize(v.log.changes).filter((r) => r.id < 100)) === JSON.stringify(expected), `the rows of ${v.filter}`, 10_000);
      // Every INSERT and UPDATE it received is of a row inside its filter; a DELETE is of a row that was (as it was then).
      for (const c of v.log.changes.filter((c) => c.data.id < 100)) expect(holds[v.filter]!(c.data), `${v.filter}: ${c.operation} ${JSON.stringify(c.data)}`).toBe(true);
    }
    const eq5 = viewers.find((v) => v.filter === "n=eq.5")!.log.changes.filter((c) => c.data.id < 100);
    expect(eq5.map((c) => `${c.operation} ${c.data.id}`)).toEqual(["INSERT 5", "INSERT 1", "DELETE 5"]);
    expect(eq5[2]!.data).toMatchObject({ id: 5, n: 5 }); // the row as this viewer last saw it
    await eventually(() => twin.changes.length === 3, "the twin");
    expect(twin.changes.map((c) => c.id)).toEqual(eq5.map((c) => c.id));
    for (const v of viewers) v.client.disconnect();
  });

  it("row rules: each user receives, replays and reads in history only the rows the rule gives them", async () => {
    const ann = changeLog(new NodeClient({ url, token: "ann" }), "docs");
    const bob = changeLog(new NodeClient({ url, token: "bob" }), "docs", "body=neq.secret");
    ann.channel.subscribe();
    bob.channel.subscribe();
    await Promise.all([ann.channel.ready(), bob.channel.ready()]);
    await write("INSERT INTO docs (id, owner, body) VALUES (1, 'ann', 'a1'), (2, 'bob', 'b1'), (3, 'bob', 'secret')", []);
    await write("UPDATE docs SET owner = 'bob' WHERE id = 1", [], true);
    await eventually(() => ann.changes.length === 2 && bob.changes.length === 2, "both");
    expect(ann.changes.map((c) => `${c.operation} ${c.data.id}`)).toEqual(["INSERT 1", "DELETE 1"]);
    expect(bob.changes.map((c) => `${c.operation} ${c.data.id}`)).toEqual(["INSERT 2", "INSERT 1"]);
    // History the same way: bob's rows are not in ann's, and the row she lost reads as its DELETE, as she last saw it.
    const annHistory = await ann.channel.getHistory(50);
    expect(annHistory.map((m) => [m.event, m.data.id, m.data.owner])).toEqual([
      ["DELETE", 1, "ann"],
      ["INSERT", 1, "ann"],
    ]);
  });

  it("values keep their JSON types: bigint and numeric past 2^53 as strings, timestamps ISO, jsonb as values, bytea base64", async () => {
    const log = changeLog(new NodeClient({ url, token: "typer" }), "kinds");
    log.channel.subscribe();
    await log.channel.ready();
    await write(
      "INSERT INTO kinds (id, big, exact, at, doc, blob, tags, flag, ratio) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      [1, "9223372036854775807", "12345678901234567890.12345", "2026-12-01T10:00:00.123Z", { a: [1, { b: "x" }], n: 2 }, "\\x0102ff", "{a,b c}", true, 0.5],
    );
    await write("INSERT INTO kinds (id, big, exact, doc) VALUES (2, 42, 99.99, '{\"deep\": 9007199254740993}')", [], true);
    await eventually(() => log.changes.length === 2, "two inserts");
    expect(log.changes[0]!.data).toEqual({
      id: 1,
      big: "9223372036854775807",
      exact: "12345678901234567890.12345",
      at: "2026-12-01T10:00:00.123+00:00",
      doc: { a: [1, { b: "x" }], n: 2 },
      blob: Buffer.from([1, 2, 255]).toString("base64"),
      tags: ["a", "b c"],
      flag: true,
      ratio: 0.5,
    });
    expect(log.changes[1]!.data).toMatchObject({ id: 2, big: 42, exact: 99.99, doc: { deep: "9007199254740993" }, at: null });
    // Query results read the same way.
    const [row] = await sdk.db.query("SELECT * FROM kinds WHERE id = ?", [1]);
    expect(row).toEqual(log.changes[0]!.data);
  });

  it("an UPDATE of other columns carries a big stored-apart (TOASTed) value unchanged, in data and old", async () => {
    await sdk.db.exec("create table notes (id int primary key, title text, body text)");
    const log = changeLog(new NodeClient({ url, token: "reader" }), "notes");
    log.channel.subscribe();
    await log.channel.ready();
    // 40 KB that does not compress: PostgreSQL stores it out of line, and pgoutput sends it only when it changes.
    const body = Array.from({ length: 1250 }, (_, i) => `${i.toString(36)}${Math.random().toString(36).slice(2, 30)}`).join("");
    await write("INSERT INTO notes (id, title, body) VALUES (?, ?, ?)", [1, "first", body], true);
    await write("UPDATE notes SET title = ? WHERE id = ?", ["renamed", 1], true);
    await eventually(() => log.changes.length === 2, "insert and update");
    expect(log.changes[1]!.operation).toBe("UPDATE");
    expect(log.changes[1]!.data).toEqual({ id: 1, title: "renamed", body });
    expect(log.changes[1]!.old).toEqual({ id: 1, title: "first", body });
  });

  it("a client that was away gets the changes it missed, once each", async () => {
    const proxy = await LoopbackProxy.start(server.port);
    try {
      const away = new NodeClient({ url: proxy.url, token: "away" });
      const list = liveOrders(away, "orders");
      await list.channel.ready();
      await eventually(() => away.status === "connected", "connected");
      proxy.dropAll();
      await eventually(() => away.status === "reconnecting", "away");
      for (let i = 0; i < 20; i++) await write("INSERT INTO orders (id, status) VALUES (?, 'late')", [`late${i}`], i % 2 === 1);
      await eventually(() => away.status === "connected", "back", 10_000);
      const expected = sortById(await sdk.db.query("SELECT * FROM orders WHERE status = 'late'"));
      await eventually(() => JSON.stringify(sortById(list.rows())) === JSON.stringify(expected), "caught up", 10_000);
      expect(list.rows().length).toBe(20);
      away.disconnect();
    } finally {
      await proxy.close();
    }
  });

  it("bad input gets its code: unknown table, bad filter, SQL errors with their SQLSTATE, row operations as emits, user tokens", async () => {
    const client = new NodeClient({ url, token: "bad", onError: () => {} });
    expect(await codeOf(client.channel("no_such_table").subscribe().ready())).toBe("NotFound");
    expect(await codeOf(client.channel("items", { filter: "n=like.5" }).subscribe().ready())).toBe("InvalidArgument");
    await client.channel("items").unsubscribe();
    expect(await codeOf(client.channel("items", { filter: "nope=eq.1" }).subscribe().ready())).toBe("InvalidArgument");
    expect(await codeOf(client.channel("chat/x", { filter: "a=eq.1" }).subscribe().ready())).toBe("InvalidArgument");
    const quiet = createServerSdk({ url, apiKey: "db-key", onError: () => {} });
    const syntax = await quiet.db.query("SELEC 1").catch((e: Error) => e);
    expect(String(syntax)).toMatch(/SQLSTATE 42601/);
    expect(await codeOf(quiet.db.query("SELEC 1"))).toBe("InvalidArgument");
    expect(await codeOf(quiet.db.query("INSERT INTO items (id) VALUES (?)", [1]))).toBe("FailedPrecondition"); // a duplicate key
    expect(await codeOf(quiet.db.query("SELECT * FROM nowhere"))).toBe("InvalidArgument");
    expect(await codeOf(quiet.socket.emit("INSERT", { id: 1 }, "orders"))).toBe("InvalidArgument");
    // Other events may be emitted on a table topic, as the reference docs do.
    await quiet.socket.emit("order:updated", { id: 1 }, "orders");
    const stranger = createServerSdk({ url, apiKey: "not-a-key", onError: () => {} });
    expect(await codeOf(stranger.db.query("SELECT 1"))).toBe("Unauthenticated");
    // Nothing of it broke the tracker.
    const log = changeLog(new NodeClient({ url, token: "after" }), "orders");
    log.channel.subscribe();
    await log.channel.ready();
    await write("INSERT INTO orders (id, status) VALUES ('after-bad', 'ok')", []);
    await eventually(() => log.changes.some((c) => c.data.id === "after-bad"), "a change after the bad input");
    quiet.close();
    stranger.close();
    client.disconnect();
  });
});

describe.skipIf(!postgres.available)("a new slot (PostgreSQL)", () => {
  it("captures a change committed as soon as the database answers, while another node holds the slot's lock", { timeout: 60_000 }, async () => {
    const name = `fresh_${process.pid}`;
    const dbUrl = await postgres.database(name);
    // Another node reading the slot, as far as this one can tell: it waits for the lock, and reads nothing yet.
    const other = new pg.Client({ connectionString: dbUrl });
    await other.connect();
    await other.query("select pg_advisory_lock(hashtext($1))", [`chorus-slot:${name}`]);
    const server = await startServer({ DATABASE_URL: dbUrl, CHORUS_DB_SLOT: name, CHORUS_API_KEYS: "db-key" });
    const sdk = createServerSdk({ url: server.url, apiKey: "db-key" });
    const direct = new pg.Client({ connectionString: dbUrl });
    await direct.connect();
    const client = new NodeClient({ url: server.url, token: "watcher" });
    try {
      await sdk.db.exec("create table early (id int primary key)");
      await direct.query("insert into early values (1)"); // answered: it must reach subscribers, whenever the reader starts
      await other.end(); // the lock is free: this node starts reading
      let history: Awaited<ReturnType<ReturnType<NodeClient["channel"]>["getHistory"]>> = [];
      for (const deadline = Date.now() + 20_000; history.length === 0 && Date.now() < deadline; await sleep(100)) history = await client.channel("early").getHistory(5);
      expect(history.map((m) => [m.event, m.data.id])).toEqual([["INSERT", 1]]);
    } finally {
      client.disconnect();
      sdk.close();
      await direct.end();
      await other.end().catch(() => {});
      await server.stop();
      removeDir(server.dataDir);
    }
  });
});

describe.skipIf(!postgres.available)("an invalidated replication slot (PostgreSQL)", () => {
  it("is never silent: a changes_lost notice in the table's history, live and replayed, then changes go on", { timeout: 120_000 }, async () => {
    const name = `gap_${process.pid}`;
    const dbUrl = await postgres.database(name);
    const env = { DATABASE_URL: dbUrl, CHORUS_DB_SLOT: name, CHORUS_API_KEYS: "db-key", CHORUS_MAX_PUBLISH_RATE: "0" };
    let server = await startServer(env);
    const dataDir = server.dataDir;
    const port = server.port;
    const admin = postgres.admin();
    const direct = new pg.Client({ connectionString: dbUrl });
    await direct.connect();
    const client = new NodeClient({ url: server.url, token: "watcher" });
    try {
      const sdk = createServerSdk({ url: server.url, apiKey: "db-key" });
      await sdk.db.exec("create table ledger (id int primary key, note text)");
      sdk.close();
      const seen: Array<{ type: string; event: string; data: any }> = [];
      const channel = client.channel("ledger");
      channel.on("*", (p) => seen.push({ type: p.type, event: p.event, data: p.data })).subscribe();
      await channel.ready();
      await direct.query("insert into ledger values (1, 'before')");
      await eventually(() => seen.some((p) => p.event === "INSERT"), "the first change", 20_000);

      // Chorus is away while the slot falls behind max_slot_wal_keep_size and is invalidated.
      expect(await server.stop()).toBe(0);
      await direct.query("insert into ledger values (2, 'lost')");
      await admin.query("alter system set max_slot_wal_keep_size = '1MB'");
      await admin.query("select pg_reload_conf()");
      try {
        await direct.query("create table filler (x text)");
        let status = "";
        for (let round = 0; round < 10 && status !== "lost"; round++) {
          await direct.query("insert into filler select repeat(md5(g::text), 64) from generate_series(1, 20000) g");
          await admin.query("select pg_switch_wal()");
          await admin.query("checkpoint");
          status = (await admin.query("select wal_status from pg_replication_slots where slot_name = $1", [name])).rows[0]?.wal_status ?? "";
        }
        expect(status).toBe("lost");
      } finally {
        await admin.query("alter system reset max_slot_wal_keep_size");
        await admin.query("select pg_reload_conf()");
      }

      server = await startServer({ ...env, PORT: String(port) }, dataDir);
      // The client was away: it gets the notice as it catches up, then the changes after it.
      await eventually(() => seen.some((p) => p.event === "system:history_gap"), "the notice", 20_000);
      await direct.query("insert into ledger values (3, 'after')");
      await eventually(() => seen.filter((p) => p.event === "INSERT").length === 2, "the change after the gap", 20_000);
      const notice = seen.find((p) => p.event === "system:history_gap")!;
      expect(notice).toMatchObject({ type: "system", data: { reason: "changes_lost" } });
      expect(seen.filter((p) => p.type !== "system" || p.event === "system:history_gap").map((p) => `${p.event}:${p.data.id ?? ""}`)).toEqual(["INSERT:1", "system:history_gap:", "INSERT:3"]);
      // And history says the same, in the same order.
      const history = await client.channel("ledger").getHistory(10);
      expect(history.map((m) => m.event).reverse()).toEqual(["INSERT", "system:history_gap", "INSERT"]);
    } finally {
      client.disconnect();
      await direct.end();
      await server.stop();
      removeDir(dataDir);
    }
  });
});
