import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { NodeClient } from "../helpers/clients.js";
import { privatePostgres } from "../helpers/changes.js";
import { natsAvailable, natsEngineEnv, SHARED_NATS_URL, uniquePrefix } from "../helpers/nats.js";
import { eventually, removeDir, sleep, startServer, type ServerProcess } from "../helpers/server.js";
import { createServerSdk } from "../../clients/src/server-sdk.js";

const postgres = privatePostgres();
/** Every change stays in history for the count (the default keeps 10 000 per topic). */
const KEEP_ALL = "**=count:1000000,age:1d";

/** A client of the test's PostgreSQL; its errors when PostgreSQL stops at the end are expected. */
async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** A client inserting ids 1, 2, 3 … into `ledger` on PostgreSQL, about 2000 commits a second (commits land at every kill point), until stopped. */
function ledgerWriter(url: string): { stop(): Promise<void> } {
  let stopping = false;
  const done = (async () => {
    const client = await connect(url);
    for (let next = 1; !stopping; next++) {
      await client.query("insert into ledger (id) values ($1)", [next]);
      if (next % 20 === 0) await sleep(10);
    }
    await client.end();
  })();
  return {
    stop: () => {
      stopping = true;
      return done;
    },
  };
}
const nats = await natsAvailable();

/** Waits (at most `ms`) until `check` holds; the assertions after it say what did not. */
async function until(check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !(await check())) await sleep(200);
}

/** Every change stored on a table topic, oldest first (history paged back to the start). */
async function storedChanges(url: string, table: string): Promise<Array<{ seq: number; event: string; id: number }>> {
  const client = new NodeClient({ url, token: "auditor" });
  const out: Array<{ seq: number; event: string; id: number }> = [];
  let before: number | undefined;
  for (;;) {
    const page = await client.channel(table).getHistory(1000, before);
    out.push(...page.map((m) => ({ seq: m.seq, event: m.event, id: m.data.id as number })));
    if (page.length < 1000) break;
    before = page.at(-1)!.created_at;
  }
  client.disconnect();
  return out.reverse();
}

/** The ledger's rows, and the stored INSERTs: each row exactly once, nothing else, positions contiguous. */
function expectExactlyOnce(stored: Array<{ seq: number; event: string; id: number }>, rows: number[]): void {
  const inserts = stored.filter((s) => s.event === "INSERT").map((s) => s.id);
  const counts = new Map<number, number>();
  for (const id of inserts) counts.set(id, (counts.get(id) ?? 0) + 1);
  const duplicated = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  const lost = rows.filter((id) => !counts.has(id));
  const extra = [...counts.keys()].filter((id) => !rows.includes(id));
  if (lost.length) console.log("lost:", lost.slice(0, 30).join(","));
  console.log(`changes across kills: ${rows.length} committed rows, ${inserts.length} stored INSERTs, ${lost.length} lost, ${duplicated.length} duplicated, ${extra.length} not in the table`);
  expect({ lost, duplicated, extra }).toEqual({ lost: [], duplicated: [], extra: [] });
  expect(stored.map((s) => s.seq)).toEqual(Array.from({ length: stored.length }, (_, i) => i + 1));
}

describe("database changes survive SIGKILL: nothing lost, nothing repeated", () => {
  const started: ServerProcess[] = [];
  afterAll(async () => {
    for (const s of started) {
      await s.kill();
      removeDir(s.dataDir);
    }
  });

  it("PGlite: writers through Chorus while it is killed three times", async () => {
    let server = await startServer({ CHORUS_MAX_PUBLISH_RATE: "0" });
    started.push(server);
    const dataDir = server.dataDir;
    const sdk = () => createServerSdk({ url: server.url, onError: () => {} });
    let db = sdk();
    await db.db.exec("create table ledger (id int primary key, at timestamptz default now())");
    let next = 0;
    let stop = false;
    // Four writers; an insert that failed (the node was killed) is retried until it is known to be done.
    const writers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const id = ++next;
        for (;;) {
          try {
            await db.db.query("insert into ledger (id) values (?) on conflict (id) do nothing", [id]);
            break;
          } catch {
            if (stop) return;
            await sleep(100);
          }
        }
      }
    });
    for (let kill = 0; kill < 3; kill++) {
      await sleep(700 + Math.random() * 800);
      await server.kill();
      db.close();
      server = await startServer({ CHORUS_MAX_PUBLISH_RATE: "0" }, dataDir);
      started.push(server);
      db = sdk();
      await db.db.query("select 1"); // opens the database again, and drains what was logged before the kill
    }
    await sleep(500);
    stop = true;
    await Promise.all(writers);
    const rows = (await db.db.query<{ id: number }>("select id from ledger order by id")).map((r) => r.id);
    expectExactlyOnce(await storedChanges(server.url, "ledger"), rows);
    expect(rows.length).toBeGreaterThan(50);
    db.close();
  }, 90_000);

  describe.skipIf(!postgres.available)("PostgreSQL", () => {
    it("writers on PostgreSQL itself, back-to-back commits at the kill points, Chorus killed three times", async () => {
      const url = await postgres.database(`kill_${process.pid}`);
      const env = { DATABASE_URL: url, CHORUS_DB_SLOT: `kill_${process.pid}`, CHORUS_MAX_PUBLISH_RATE: "0", CHORUS_RETENTION: KEEP_ALL };
      let server = await startServer(env);
      started.push(server);
      const dataDir = server.dataDir;
      // Changes are captured from the moment the slot exists (Chorus makes it when it first connects).
      await eventually(() => server.output().includes("reading changes from slot"), "the slot read");
      const db = await connect(url);
      await db.query("create table ledger (id int primary key)");
      const writer = ledgerWriter(url);
      for (let kill = 0; kill < 3; kill++) {
        await sleep(500 + Math.random() * 700);
        // Two commits back to back, then the kill.
        await db.query("insert into ledger (id) values ($1)", [100_000 + kill * 2]);
        await db.query("insert into ledger (id) values ($1)", [100_001 + kill * 2]);
        await server.kill();
        await sleep(300); // writers go on while nobody reads the slot
        server = await startServer(env, dataDir);
        started.push(server);
      }
      await sleep(500);
      await writer.stop();
      const rows = (await db.query<{ id: number }>("select id from ledger order by id")).rows.map((r) => r.id);
      await until(async () => (await storedChanges(server.url, "ledger")).filter((s) => s.event === "INSERT").length >= rows.length, 15_000);
      await sleep(1000);
      expectExactlyOnce(await storedChanges(server.url, "ledger"), rows);
      await db.end();
    }, 90_000);

    it.skipIf(!nats)("two nodes on NATS: the slot's reader is killed, the other takes over, nothing lost or repeated", async () => {
      const url = await postgres.database(`takeover_${process.pid}`);
      const env = natsEngineEnv(SHARED_NATS_URL, uniquePrefix("changes-takeover"), { DATABASE_URL: url, CHORUS_DB_SLOT: `takeover_${process.pid}`, CHORUS_MAX_PUBLISH_RATE: "0", CHORUS_RETENTION: KEEP_ALL });
      const nodes = await Promise.all([startServer(env), startServer(env)]);
      started.push(...nodes);
      await eventually(() => nodes.some((n) => n.output().includes("reading changes from slot")), "one node reading the slot");
      const db = await connect(url);
      await db.query("create table ledger (id int primary key)");
      const reader = nodes.find((n) => n.output().includes("reading changes from slot"))!;
      const other = nodes.find((n) => n !== reader)!;
      expect(other.output()).not.toContain("reading changes from slot");
      const writer = ledgerWriter(url);
      await sleep(800);
      const killedAt = Date.now();
      await reader.kill();
      await eventually(() => other.output().includes("reading changes from slot"), "the other node taking over", 15_000);
      console.log(`changes: the surviving node took the slot over ${Date.now() - killedAt} ms after the kill`);
      await sleep(800);
      await writer.stop();
      const rows = (await db.query<{ id: number }>("select id from ledger order by id")).rows.map((r) => r.id);
      await until(async () => (await storedChanges(other.url, "ledger")).length >= rows.length, 15_000);
      await sleep(500);
      expectExactlyOnce(await storedChanges(other.url, "ledger"), rows);
      await db.end();
    }, 90_000);
  });
});
