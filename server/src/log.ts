import { pino, type Level } from "pino";

/**
 * Structured logs (pino): one JSON object per line, `{"level","time",
 * "component","msg",…fields}`; errors and worse on stderr, the rest on
 * stdout. Never given a token, an API key or a payload: callers log ids,
 * kinds, codes and counts.
 */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function jsonLogger(component = "chorus", level: LogLevel = "info"): Logger {
  const streams = pino.multistream(
    [
      { level: "trace" as Level, stream: process.stdout },
      { level: "error" as Level, stream: process.stderr },
    ],
    { dedupe: true },
  );
  const logger = pino(
    {
      level,
      base: { component },
      timestamp: pino.stdTimeFunctions.isoTime,
      messageKey: "msg",
      formatters: { level: (label) => ({ level: label }) },
    },
    streams,
  );
  return {
    debug: (m, f) => (f ? logger.debug(f, m) : logger.debug(m)),
    info: (m, f) => (f ? logger.info(f, m) : logger.info(m)),
    warn: (m, f) => (f ? logger.warn(f, m) : logger.warn(m)),
    error: (m, f) => (f ? logger.error(f, m) : logger.error(m)),
  };
}

/**
 * A message that may come in floods (refused connections): logged at most
 * once per interval, with how many there were since the last line.
 */
export class EveryFewSeconds {
  private count = 0;
  private last = 0;

  constructor(
    private readonly log: (message: string, fields: Record<string, unknown>) => void,
    private readonly intervalMs = 10_000,
  ) {}

  note(message: string, fields: Record<string, unknown> = {}): void {
    this.count++;
    const now = Date.now();
    if (now - this.last < this.intervalMs) return;
    this.log(message, { ...fields, times: this.count, sinceMs: this.last === 0 ? undefined : now - this.last });
    this.count = 0;
    this.last = now;
  }
}
