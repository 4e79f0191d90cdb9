import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The one grammar for topics.
 *
 * - A topic without a slash names a table's change feed (`orders`): an SQL
 *   identifier, optionally schema-qualified (`audit.events`).
 * - A topic with a slash is a custom pub/sub channel (`chat/general`):
 *   non-empty segments of letters, digits and `_ - . : @ = + ~ | ,`.
 *
 * Wildcards (`*`, `>`), whitespace and control characters never appear in a
 * topic, so no topic can be read as a pattern by any engine.
 */
export type TopicKind = "table" | "channel";

const SEGMENT = /^[A-Za-z0-9_\-.:@=+~|,]+$/;
const TABLE = /^(?:[A-Za-z_][A-Za-z0-9_$]{0,62}\.)?[A-Za-z_][A-Za-z0-9_$]{0,62}$/;
const SEGMENT_CHARS = "letters, digits and _ - . : @ = + ~ | ,";

/** Returns what is wrong with a topic, or undefined when it is valid. */
export function topicProblem(topic: string, maxLength: number): string | undefined {
  if (topic.length === 0) return "topic is empty";
  if (topic.length > maxLength) {
    return `topic is ${topic.length} characters long; the limit is ${maxLength}`;
  }
  if (!topic.includes("/")) {
    return TABLE.test(topic)
      ? undefined
      : `table topic "${topic}" is not a table name: use a letter or _ then letters, digits, _ or $ (optionally schema.table), or add a slash for a pub/sub channel`;
  }
  const segments = topic.split("/");
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment.length === 0) {
      return `topic "${topic}" has an empty segment (segment ${i + 1}); leading, trailing and double slashes are not allowed`;
    }
    if (!SEGMENT.test(segment)) {
      const bad = [...segment].find((c) => !SEGMENT.test(c)) ?? "?";
      return `topic "${topic}" contains ${JSON.stringify(bad)} in segment "${segment}"; segments may contain ${SEGMENT_CHARS}`;
    }
  }
  return undefined;
}

/** Throws INVALID_ARGUMENT unless the topic is valid. */
export function checkTopic(topic: string, maxLength: number): TopicKind {
  const problem = topicProblem(topic, maxLength);
  if (problem) throw new ConnectError(problem, Code.InvalidArgument);
  return topicKind(topic);
}

export function topicKind(topic: string): TopicKind {
  return topic.includes("/") ? "channel" : "table";
}

/**
 * Matches a topic against a configuration pattern: `*` alone matches any
 * single segment (or any table topic), a final `**` matches one or more
 * remaining segments, anything else matches literally. With `userId`,
 * `{sub}` inside a segment stands for it, compared literally: a user id
 * never acts as a wildcard or spans segments.
 */
export function topicMatches(pattern: string, topic: string, userId?: string): boolean {
  if (pattern === "**") return true;
  const want = pattern.split("/");
  const have = topic.split("/");
  for (let i = 0; i < want.length; i++) {
    const part = want[i]!;
    if (part === "**" && i === want.length - 1) return have.length > i;
    if (i >= have.length) return false;
    if (part === "*") continue;
    // split/join, not replaceAll: a replacement string would read `$&`, `$'` … in a user id as patterns.
    if ((userId === undefined ? part : part.split("{sub}").join(userId)) !== have[i]) return false;
  }
  return want.length === have.length;
}
