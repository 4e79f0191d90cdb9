import { resolve } from "node:path";
import { startChorus } from "./chorus.js";
import { configFromEnv } from "./config.js";
import { jsonLogger } from "./log.js";

const log = jsonLogger();

let config;
try {
  config = configFromEnv();
} catch (error) {
  log.error(`configuration error: ${(error as Error).message}`);
  process.exit(2);
}

const chorus = await startChorus(config, log).catch((error: NodeJS.ErrnoException) => {
  log.error(`cannot start: ${error.message}`, { code: error.code });
  process.exit(1);
});

const mode = config.apiKeys.length === 0 ? "development mode: tokens and API keys are NOT verified" : "API keys required";
log.info(`Chorus listening on ${chorus.url} (engine: memory, data: ${resolve(config.dataDir)}, ${mode})`, {
  url: chorus.url,
  port: chorus.port,
  engine: config.engine,
  node: config.nodeId,
});

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1); // a second signal means now
    stopping = true;
    log.info(`${signal}: draining`);
    chorus.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error("shutdown failed", { error: String(error) });
        process.exit(1);
      },
    );
  });
}
