import type { ChorusConfig } from "../config.js";
import type { IdGenerator } from "../ids.js";
import type { Logger } from "../log.js";
import type { Delivery, Engine } from "./engine.js";
import { MemoryEngine } from "./memory.js";
import { NatsEngine } from "./nats/engine.js";

export function createEngine(config: ChorusConfig, ids: IdGenerator, log: Logger, delivery: Delivery): Engine {
  if (config.engine === "nats") {
    return new NatsEngine(config.nats, config.retention[0]!, config.nodeId, ids, delivery, log);
  }
  return new MemoryEngine(
    {
      dir: config.dataDir,
      retention: config.retention,
      fsync: config.fsync === "always",
      maxOpenFiles: config.maxOpenFiles,
      maxTopicsInMemory: config.maxTopicsInMemory,
      cacheBytes: config.historyCacheBytes,
      log: (message) => log.warn(message),
    },
    ids,
    delivery,
  );
}
