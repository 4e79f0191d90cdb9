import type { ChorusConfig } from "../config.js";
import type { Engine } from "../engine/engine.js";
import { NatsEngine } from "../engine/nats/engine.js";
import type { Logger } from "../log.js";
import { LocalBroker, type PresenceBroker } from "./broker.js";
import { NatsPresenceBroker } from "./nats-broker.js";

/** The presence broker that goes with the engine: NATS between nodes, nothing on one node. */
export function createPresenceBroker(config: ChorusConfig, engine: Engine, log: Logger): PresenceBroker {
  if (engine instanceof NatsEngine) {
    return new NatsPresenceBroker(() => engine.connection, () => engine.subjectPrefix, config.nodeId, config.presenceNodeTimeoutMs, log);
  }
  return new LocalBroker(config.nodeId);
}
