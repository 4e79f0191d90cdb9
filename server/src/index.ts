export { startChorus, type RunningChorus } from "./chorus.js";
export { configFromEnv, defaultConfig, type ChorusConfig } from "./config.js";
export { jsonLogger, type Logger } from "./log.js";
