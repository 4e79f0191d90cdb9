import { topicMatches } from "../topic.js";

/** How much history a topic keeps: whichever limit is reached first. */
export interface Retention {
  maxMessages: number;
  maxAgeMs: number;
}

export interface RetentionRule extends Retention {
  /** A topic pattern: `*` matches one segment, a trailing `**` the rest. */
  pattern: string;
}

const UNIT_MS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 };

export const DEFAULT_RETENTION: Retention = { maxMessages: 10_000, maxAgeMs: 30 * UNIT_MS.d! };

/**
 * Parses `pattern=count:N,age:DURATION;pattern=...`, for example
 * `chat/**=count:500,age:7d;**=count:10000,age:30d`. The first matching rule
 * applies to a topic.
 */
export function parseRetention(spec: string): RetentionRule[] {
  const rules = spec
    .split(";")
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const eq = part.indexOf("=");
      if (eq <= 0) throw new Error(`retention rule "${part}" must look like pattern=count:N,age:30d`);
      const pattern = part.slice(0, eq).trim();
      const rule: RetentionRule = { pattern, ...DEFAULT_RETENTION };
      for (const setting of part.slice(eq + 1).split(",")) {
        const [key, value = ""] = setting.split(":").map((s) => s.trim());
        if (key === "count" && /^\d+$/.test(value) && Number(value) > 0) {
          rule.maxMessages = Number(value);
        } else if (key === "age" && /^\d+[smhd]$/.test(value)) {
          rule.maxAgeMs = Number(value.slice(0, -1)) * UNIT_MS[value.slice(-1)]!;
        } else {
          throw new Error(`retention setting "${setting}" in "${part}": use count:N (N > 0) or age:N followed by s, m, h or d`);
        }
      }
      return rule;
    });
  if (rules.length === 0) throw new Error("retention: no rule given");
  return rules;
}

/** The first rule whose pattern matches the topic, else the built-in default. */
export function retentionFor(rules: readonly RetentionRule[], topic: string): Retention {
  return rules.find((rule) => topicMatches(rule.pattern, topic)) ?? DEFAULT_RETENTION;
}
