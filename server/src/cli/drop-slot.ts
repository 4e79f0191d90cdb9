import pg from "pg";
import type { ChorusConfig } from "../config.js";

/**
 * Drops the replication slot and the publication Chorus made on a
 * PostgreSQL (CHORUS_DB_SLOT), for a database Chorus stops tracking: a
 * slot nobody reads keeps every WAL segment since its position. Refused
 * while a node is reading the slot.
 */
export async function dropSlot(config: ChorusConfig): Promise<{ slot: string; slotDropped: boolean; publicationDropped: boolean }> {
  if (!config.databaseUrl) throw new Error("there is no DATABASE_URL: the embedded database has no replication slot to drop");
  const client = new pg.Client({ connectionString: config.databaseUrl });
  await client.connect();
  try {
    const slot = config.replicationSlot;
    const found = await client.query<{ active: boolean }>("select active from pg_replication_slots where slot_name = $1", [slot]);
    if (found.rows[0]?.active) throw new Error(`replication slot "${slot}" is being read (a Chorus node is running on this database): stop the nodes first`);
    if (found.rows.length > 0) await client.query("select pg_drop_replication_slot($1)", [slot]);
    const publication = await client.query("select 1 from pg_publication where pubname = $1", [slot]);
    if (publication.rows.length > 0) await client.query(`drop publication ${pg.escapeIdentifier(slot)}`);
    return { slot, slotDropped: found.rows.length > 0, publicationDropped: publication.rows.length > 0 };
  } finally {
    await client.end();
  }
}
