import { Code, ConnectError } from "@connectrpc/connect";

/** What a user may do, by action, as topic patterns. */
export type Action = "subscribe" | "publish" | "presence" | "history";
export type Grants = Partial<Record<Action, string[]>>;

const ACTIONS: readonly Action[] = ["subscribe", "publish", "presence", "history"];

/**
 * Parses grants from configuration or a token claim:
 * `{"subscribe": ["chat/*", "notifications/{sub}"], "publish": ["chat/*"]}`.
 */
export function parseGrants(value: unknown, where: string): Grants {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${where}: expected an object like {"subscribe": ["chat/*"], "publish": ["chat/*"]}`);
  }
  const grants: Grants = {};
  for (const [action, patterns] of Object.entries(value)) {
    if (!ACTIONS.includes(action as Action)) throw new Error(`${where}: unknown action "${action}"; use ${ACTIONS.join(", ")}`);
    if (!Array.isArray(patterns) || patterns.some((p) => typeof p !== "string" || p === "")) {
      throw new Error(`${where}: "${action}" must be a list of topic patterns`);
    }
    grants[action as Action] = patterns as string[];
  }
  return grants;
}

/**
 * Matches a topic against a permission pattern for one user. `*` as a whole
 * segment matches any one segment, a final `**` the rest; `{sub}` stands for
 * the user id and is compared literally, so a user id can never act as a
 * wildcard or span segments.
 */
export function permits(pattern: string, topic: string, userId: string): boolean {
  const want = pattern.split("/");
  const have = topic.split("/");
  for (let i = 0; i < want.length; i++) {
    const part = want[i]!;
    if (part === "**" && i === want.length - 1) return have.length > i;
    if (i >= have.length) return false;
    if (part === "*") continue;
    if (part.replaceAll("{sub}", userId) !== have[i]) return false;
  }
  return want.length === have.length;
}

/** Decides every user action; back ends (API keys) are not subject to it. */
export class Permissions {
  constructor(
    private readonly configured: Grants,
    /** Development mode: everything is allowed. */
    private readonly allowAll: boolean,
  ) {}

  check(identity: { userId: string; grants?: Grants }, action: Action, topic: string): void {
    if (this.allowAll) return;
    const patterns = [...(this.configured[action] ?? []), ...(identity.grants?.[action] ?? [])];
    if (patterns.some((p) => permits(p, topic, identity.userId))) return;
    throw new ConnectError(`user "${identity.userId}" may not ${action} on "${topic}"`, Code.PermissionDenied);
  }
}
