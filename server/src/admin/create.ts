import type { Engine } from "../engine/engine.js";
import { NatsEngine } from "../engine/nats/engine.js";
import type { Logger } from "../log.js";
import { LocalAdmin, NatsAdmin, type ClusterAdmin } from "./cluster.js";

/** The admin API's reach that goes with the engine: every node on NATS, this one alone otherwise. */
export function createClusterAdmin(engine: Engine, nodeId: string, otherNodes: () => { count: number; settled: boolean }, log: Logger): ClusterAdmin {
  if (engine instanceof NatsEngine) return new NatsAdmin(() => engine.connection, () => engine.subjectPrefix, nodeId, otherNodes, log);
  return new LocalAdmin();
}
