import { connect, credsAuthenticator, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import { readFileSync } from "node:fs";
import type { Logger } from "../../log.js";

/** How to reach NATS: passed through to the client as given. */
export interface NatsConfig {
  /** NATS_URL, comma-separated. */
  servers: string[];
  token?: string;
  user?: string;
  pass?: string;
  /** A .creds file (JWT + nkey seed). */
  credsFile?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Subjects and the stream are named after it: several deployments can share one NATS. */
  prefix: string;
  /** JetStream replicas of the message stream (1, 3 or 5). */
  replicas: number;
  /** How long a persisted publish waits for JetStream before failing with UNAVAILABLE. */
  publishTimeoutMs: number;
}

export function natsConfigFromEnv(env: NodeJS.ProcessEnv): NatsConfig {
  const servers = (env.NATS_URL || "nats://127.0.0.1:4222").split(",").map((s) => s.trim()).filter(Boolean);
  const replicas = Number(env.CHORUS_NATS_REPLICAS || "1");
  if (![1, 2, 3, 4, 5].includes(replicas)) throw new Error(`CHORUS_NATS_REPLICAS=${env.CHORUS_NATS_REPLICAS} must be 1 to 5`);
  const timeout = Number(env.CHORUS_NATS_PUBLISH_TIMEOUT_MS || "3000");
  if (!Number.isInteger(timeout) || timeout < 100) throw new Error(`CHORUS_NATS_PUBLISH_TIMEOUT_MS=${env.CHORUS_NATS_PUBLISH_TIMEOUT_MS} must be an integer >= 100`);
  const tls = env.NATS_TLS_CA || env.NATS_TLS_CERT || env.NATS_TLS_KEY ? { caFile: env.NATS_TLS_CA, certFile: env.NATS_TLS_CERT, keyFile: env.NATS_TLS_KEY } : undefined;
  return {
    servers,
    token: env.NATS_TOKEN || undefined,
    user: env.NATS_USER || undefined,
    pass: env.NATS_PASSWORD || undefined,
    credsFile: env.NATS_CREDS || undefined,
    tls,
    prefix: env.CHORUS_NATS_PREFIX || "chorus",
    replicas,
    publishTimeoutMs: timeout,
  };
}

const RETRY_MS = 2_000;

/**
 * Connects, retrying every 2 s and saying so each time, until it succeeds or
 * `signal` aborts. Once connected, the client reconnects by itself forever.
 */
export async function connectWithRetry(config: NatsConfig, name: string, log: Logger, signal: AbortSignal): Promise<NatsConnection> {
  const options: NodeConnectionOptions = {
    servers: config.servers,
    name,
    token: config.token,
    user: config.user,
    pass: config.pass,
    authenticator: config.credsFile ? credsAuthenticator(readFileSync(config.credsFile)) : undefined,
    tls: config.tls ?? undefined,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    // Stack traces per request cost measurable time on the publish path.
    noAsyncTraces: true,
  };
  for (let attempt = 1; ; attempt++) {
    signal.throwIfAborted();
    try {
      const nc = await connect(options);
      if (attempt > 1) log.info(`NATS reached at ${nc.getServer()} after ${attempt} attempts`);
      return nc;
    } catch (error) {
      log.warn(`NATS unreachable at ${config.servers.join(", ")} (${(error as Error).message}); retrying in ${RETRY_MS / 1000} s`, { attempt });
      await abortableDelay(RETRY_MS, signal);
    }
  }
}

/** Waits, or less if the signal aborts first. */
export function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}
