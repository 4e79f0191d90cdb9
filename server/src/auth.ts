import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";

/** Who is calling RealtimeService. */
export interface Identity {
  userId: string;
  /** Milliseconds since the Unix epoch; undefined when the credential does not expire. */
  expiresAt?: number;
}

export const ANONYMOUS = "anonymous";

const USER_ID = /^[\x21-\x7e]{1,128}$/;

function bearer(header: Headers): string | undefined {
  const value = header.get("authorization");
  if (!value) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(value);
  if (!match) {
    throw new ConnectError("authorization header must be \"Bearer <token>\"", Code.Unauthenticated);
  }
  return match[1];
}

/**
 * Development-mode identities: nothing is verified. A JWT-shaped token
 * contributes its `sub` (unchecked); any other token is taken as the user id
 * itself; no token means "anonymous". Logged loudly at start-up.
 */
export function developmentIdentity(header: Headers): Identity {
  const token = bearer(header);
  if (!token) return { userId: ANONYMOUS };
  const parts = token.split(".");
  if (parts.length === 3) {
    let claims: { sub?: unknown; exp?: unknown };
    try {
      claims = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
    } catch {
      throw new ConnectError("token looks like a JWT but its payload is not JSON", Code.Unauthenticated);
    }
    if (typeof claims.sub !== "string" || !USER_ID.test(claims.sub)) {
      throw new ConnectError("token has no usable \"sub\" claim (1-128 printable characters)", Code.Unauthenticated);
    }
    return { userId: claims.sub, expiresAt: typeof claims.exp === "number" ? claims.exp * 1000 : undefined };
  }
  if (!USER_ID.test(token)) {
    throw new ConnectError("development token must be a user id of 1-128 printable characters, or a JWT", Code.Unauthenticated);
  }
  return { userId: token };
}

/** Checks `Authorization: Bearer <api key>` for ServerService. */
export class ApiKeys {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }

  get developmentMode(): boolean {
    return this.digests.length === 0;
  }

  check(header: Headers): void {
    if (this.developmentMode) return;
    const key = bearer(header);
    if (!key) throw new ConnectError("ServerService needs an API key: send \"Authorization: Bearer <api key>\"", Code.Unauthenticated);
    const candidate = digest(key);
    // Compare digests in constant time and against every key, so timing
    // tells nothing about which key (or how much of one) matched.
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(d, candidate) || ok;
    if (!ok) throw new ConnectError("API key is not valid", Code.Unauthenticated);
  }
}

function digest(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}
