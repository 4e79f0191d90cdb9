import type { ChorusConfig } from "../config.js";
import type { Logger } from "../log.js";
import { PGliteSource } from "./pglite/source.js";
import { PostgresSource } from "./postgres/source.js";
import type { ChangeSource } from "./source.js";

/** The change source the configuration names: a PostgreSQL (DATABASE_URL), else the embedded PGlite. */
export function createChangeSource(config: ChorusConfig, log: Logger): ChangeSource {
  if (config.databaseUrl) return new PostgresSource(config.databaseUrl, config.trackedTables, config.replicationSlot, log);
  return new PGliteSource(config.dataDir, config.trackedTables, log);
}
