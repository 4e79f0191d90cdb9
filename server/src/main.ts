import { resolve } from "node:path";
import { startChorus } from "./chorus.js";
import { configFromEnv, unknownVariables } from "./config.js";
import { jsonLogger } from "./log.js";

let config;
try {
  config = configFromEnv();
} catch (error) {
  jsonLogger().error(`configuration error: ${(error as Error).message}`);
  process.exit(2);
}
const log = jsonLogger("chorus", config.logLevel);

for (const { name, suggestion } of unknownVariables()) {
  log.warn(`${name} is not a Chorus setting and is ignored${suggestion ? `; did you mean ${suggestion}?` : ""}`, { variable: name, ...(suggestion ? { suggestion } : {}) });
}

const chorus = await startChorus(config, log).catch((error: NodeJS.ErrnoException) => {
  log.error(`cannot start: ${error.message}`, { code: error.code });
  process.exit(1);
});

const node = chorus.node;
const users = node.auth.developmentMode ? "DEVELOPMENT MODE: user tokens are NOT verified and every action is allowed" : "user tokens verified";
const backends = node.apiKeys.developmentMode
  ? "ServerService open to anyone (no CHORUS_API_KEYS)"
  : config.apiKeys.length > 0
    ? "ServerService needs an API key"
    : "ServerService CLOSED until CHORUS_API_KEYS is set";
const engine = config.engine === "nats" ? `nats at ${config.nats.servers.join(",")}` : `memory, data: ${resolve(config.dataDir)}`;
const operator = chorus.internalPort === undefined ? "/metrics and /readyz on this port" : `/metrics and /readyz on internal port ${chorus.internalPort}`;
log.info(`Chorus listening on ${chorus.url} (engine: ${engine}; ${users}; ${backends}; ${operator})`, {
  url: chorus.url,
  port: chorus.port,
  internalPort: chorus.internalPort,
  engine: config.engine,
  node: config.nodeId,
});

// On a terminal, the same in a form for people (the JSON line above is for machines).
if (process.stderr.isTTY) {
  const local = chorus.url.replace("0.0.0.0", "localhost");
  process.stderr.write(
    [
      "",
      `  Chorus      ${chorus.url}   (the built-in page: ${local}/)`,
      `  engine      ${engine}`,
      `  users       ${users}`,
      `  back ends   ${backends}`,
      `  operators   ${operator}; logs at ${config.logLevel} (CHORUS_LOG_LEVEL)`,
      "",
      "",
    ].join("\n"),
  );
}

if (!node.auth.developmentMode && Object.keys(config.permissions).length === 0) {
  log.warn("no CHORUS_PERMISSIONS: users may do only what their token's permission claim grants");
}

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
