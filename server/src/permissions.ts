import { Code, ConnectError } from "@connectrpc/connect";
import { topicMatches } from "./topic.js";

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

/** Decides every user action; back ends (API keys) are not subject to it. */
export class Permissions {
  constructor(
    private readonly configured: Grants,
    /** Development mode: everything is allowed. */
    private readonly allowAll: boolean,
  ) {}

  check(identity: { userId: string; grants?: Grants }, action: Action, topic: string): void {
    if (!this.allows(identity, action, topic)) throw new ConnectError(`user "${identity.userId}" may not ${action} on "${topic}"`, Code.PermissionDenied);
  }

  allows(identity: { userId: string; grants?: Grants }, action: Action, topic: string): boolean {
    if (this.allowAll) return true;
    const match = (p: string) => topicMatches(p, topic, identity.userId);
    return (this.configured[action] ?? []).some(match) || (identity.grants?.[action] ?? []).some(match);
  }
}
