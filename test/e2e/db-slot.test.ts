// A tracked PostgreSQL's replication slot, seen by an operator: its lag in
// /metrics, and `chorus db drop-slot` to let go of it when Chorus stops
// tracking the database (refused while a node reads it).
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { privatePostgres } from "../helpers/changes.js";
import { removeDir, ROOT, startServer } from "../helpers/server.js";

const postgres = privatePostgres();
const BIN = join(ROOT, "server/bin/chorus.mjs");

function chorus(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 20_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

describe.runIf(postgres.available)("the replication slot on PostgreSQL", () => {
  it("shows its lag and the changes' lag in /metrics, and chorus db drop-slot drops it once no node reads it", { timeout: 60_000 }, async () => {
    const env = { DATABASE_URL: await postgres.database("slotdb"), CHORUS_DB_SLOT: "chorus_slot_test" };
    const slots = async () => (await postgres.admin().query("select slot_name, active from pg_replication_slots where slot_name = 'chorus_slot_test'")).rows;
    const server = await startServer(env);
    try {
      let lag: number | undefined;
      for (let i = 0; i < 100 && lag === undefined; i++) {
        const text = await (await fetch(`${server.url}/metrics`)).text();
        const match = /^chorus_db_slot_lag_bytes (\d+)$/m.exec(text);
        if (match) lag = Number(match[1]);
        else await new Promise((r) => setTimeout(r, 100));
      }
      expect(lag).toBeGreaterThanOrEqual(0);
      // A change committed by any client: its lag from commit to delivery is measured.
      const db = new (await import("pg")).default.Client({ connectionString: env.DATABASE_URL });
      await db.connect();
      await db.query("create table lagged (id int primary key)");
      await db.query("insert into lagged values (1)");
      await db.end();
      let count = 0;
      for (let i = 0; i < 100 && count < 1; i++) {
        count = Number(/^chorus_db_change_lag_seconds_count (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);
        if (count < 1) await new Promise((r) => setTimeout(r, 100));
      }
      expect(count).toBeGreaterThanOrEqual(1);
      for (let i = 0; i < 100 && !(await slots())[0]?.active; i++) await new Promise((r) => setTimeout(r, 100));
      const refused = await chorus(["db", "drop-slot"], env);
      expect([refused.code, refused.stderr]).toEqual([1, expect.stringContaining("is being read")]);
    } finally {
      await server.stop();
      removeDir(server.dataDir);
    }
    const dropped = await chorus(["db", "drop-slot"], env);
    expect(dropped.code).toBe(0);
    expect(JSON.parse(dropped.stdout)).toEqual({ slot: "chorus_slot_test", slotDropped: true, publicationDropped: true });
    expect(await slots()).toEqual([]);
    expect(JSON.parse((await chorus(["db", "drop-slot"], env)).stdout)).toMatchObject({ slotDropped: false, publicationDropped: false });
    const embedded = await chorus(["db", "drop-slot"], {});
    expect([embedded.code, embedded.stderr]).toEqual([1, expect.stringContaining("no DATABASE_URL")]);
  });
});
