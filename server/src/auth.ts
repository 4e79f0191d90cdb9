import { createHash, createPublicKey, timingSafeEqual, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import { createLocalJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from "jose";
import { parseGrants, type Grants } from "./permissions.js";
import { USER_ID } from "./validate.js";

/** Who is calling RealtimeService. */
export interface Identity {
  userId: string;
  /** Milliseconds since the Unix epoch; undefined when the credential does not expire. */
  expiresAt?: number;
  /** Extra grants from the token's permission claim. */
  grants?: Grants;
}

export interface AuthConfig {
  /** HS256 shared secret. */
  jwtSecret?: string;
  /** PEM public keys (RS256 for RSA keys, ES256 for P-256 keys). */
  jwtPublicKeys: string[];
  /** A JWKS document (keys picked by `kid`). */
  jwks?: { keys: object[] };
  audience?: string;
  issuer?: string;
  /** The claim that may carry grants ("" to ignore claims). */
  permissionsClaim: string;
}

export const ANONYMOUS = "anonymous";

function bearer(header: Headers): string | undefined {
  const value = header.get("authorization");
  if (!value) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(value);
  if (!match) throw new ConnectError('authorization header must be "Bearer <token>"', Code.Unauthenticated);
  return match[1];
}

export interface Authenticator {
  /** True when nothing is verified (no secret or key configured). */
  readonly developmentMode: boolean;
  identify(header: Headers): Promise<Identity>;
  verify(token: string): Promise<Identity>;
}

export function createAuthenticator(config: AuthConfig): Authenticator {
  const configured = config.jwtSecret || config.jwtPublicKeys.length > 0 || config.jwks;
  return configured ? new JwtAuthenticator(config) : new DevelopmentAuthenticator();
}

/**
 * Development mode: nothing is verified. A JWT-shaped token contributes its
 * `sub` (unchecked); any other token is taken as the user id itself; no
 * token means "anonymous". Logged loudly at start-up.
 */
class DevelopmentAuthenticator implements Authenticator {
  readonly developmentMode = true;

  async identify(header: Headers): Promise<Identity> {
    const token = bearer(header);
    return token ? this.verify(token) : { userId: ANONYMOUS };
  }

  async verify(token: string): Promise<Identity> {
    const parts = token.split(".");
    if (parts.length === 3) {
      let claims: JWTPayload;
      try {
        claims = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
      } catch {
        throw new ConnectError("token looks like a JWT but its payload is not JSON", Code.Unauthenticated);
      }
      return identityOf(claims, "");
    }
    if (!USER_ID.test(token)) {
      throw new ConnectError("development token must be a user id of 1-128 printable characters, or a JWT", Code.Unauthenticated);
    }
    return { userId: token };
  }
}

/** Verified JWTs: signature, `exp`, and audience/issuer when configured. */
class JwtAuthenticator implements Authenticator {
  readonly developmentMode = false;
  private readonly verifiers: Array<{ key: Uint8Array | KeyObject | JWTVerifyGetKey; algorithms: string[] }> = [];

  constructor(private readonly config: AuthConfig) {
    if (config.jwtSecret) this.verifiers.push({ key: new TextEncoder().encode(config.jwtSecret), algorithms: ["HS256"] });
    for (const pem of config.jwtPublicKeys) {
      const key = createPublicKey(pem);
      const algorithm = key.asymmetricKeyType === "rsa" ? "RS256" : key.asymmetricKeyType === "ec" ? "ES256" : undefined;
      if (!algorithm) throw new Error(`JWT public key of type ${key.asymmetricKeyType} is not supported; use RSA (RS256) or P-256 (ES256)`);
      this.verifiers.push({ key, algorithms: [algorithm] });
    }
    if (config.jwks) this.verifiers.push({ key: createLocalJWKSet(config.jwks as Parameters<typeof createLocalJWKSet>[0]), algorithms: ["RS256", "ES256"] });
  }

  async identify(header: Headers): Promise<Identity> {
    const token = bearer(header);
    if (!token) throw new ConnectError('missing token: send "Authorization: Bearer <jwt>"', Code.Unauthenticated);
    return this.verify(token);
  }

  async verify(token: string): Promise<Identity> {
    let failure: unknown;
    for (const { key, algorithms } of this.verifiers) {
      try {
        const options = { algorithms, audience: this.config.audience, issuer: this.config.issuer, requiredClaims: ["sub"] };
        const { payload } = typeof key === "function" ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
        return identityOf(payload, this.config.permissionsClaim);
      } catch (error) {
        // A claim check failing means the signature was good: that is the answer.
        if (error instanceof errors.JWTExpired || error instanceof errors.JWTClaimValidationFailed) throw tokenError(error);
        if (failure === undefined || rank(error) > rank(failure)) failure = error;
      }
    }
    throw tokenError(failure);
  }
}

/** Which failure explains a rejected token best when several keys were tried. */
function rank(error: unknown): number {
  if (error instanceof errors.JWSSignatureVerificationFailed) return 3;
  if (error instanceof errors.JWKSNoMatchingKey) return 2;
  if (error instanceof errors.JOSEAlgNotAllowed) return 1;
  return 4; // malformed: no key could have helped
}

function identityOf(claims: JWTPayload, permissionsClaim: string): Identity {
  if (typeof claims.sub !== "string" || !USER_ID.test(claims.sub)) {
    throw new ConnectError('token has no usable "sub" claim (1-128 printable characters)', Code.Unauthenticated);
  }
  const identity: Identity = { userId: claims.sub };
  if (typeof claims.exp === "number") identity.expiresAt = claims.exp * 1000;
  if (permissionsClaim && claims[permissionsClaim] !== undefined) {
    try {
      identity.grants = parseGrants(claims[permissionsClaim], `token claim "${permissionsClaim}"`);
    } catch (error) {
      throw new ConnectError((error as Error).message, Code.Unauthenticated);
    }
  }
  return identity;
}

function tokenError(error: unknown): ConnectError {
  if (error instanceof errors.JWTExpired) return new ConnectError("token has expired: get a fresh one", Code.Unauthenticated);
  if (error instanceof errors.JWTClaimValidationFailed) {
    return new ConnectError(`token claim "${error.claim}" is not accepted (${error.reason === "check_failed" ? "wrong value" : error.reason})`, Code.Unauthenticated);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return new ConnectError("token signature is not valid", Code.Unauthenticated);
  if (error instanceof errors.JOSEAlgNotAllowed) return new ConnectError("token is signed with an algorithm this server does not accept", Code.Unauthenticated);
  if (error instanceof errors.JWKSNoMatchingKey) return new ConnectError("token is signed with a key this server does not know", Code.Unauthenticated);
  if (error instanceof ConnectError) return error;
  return new ConnectError("token is not a valid JWT", Code.Unauthenticated);
}

/** Reads a PEM or JWKS setting: inline text, or a path to a file holding it. */
export function readKeyMaterial(value: string): string {
  return value.trimStart().startsWith("-----BEGIN") || value.trimStart().startsWith("{") ? value : readFileSync(value, "utf8");
}

/** Checks `Authorization: Bearer <api key>` for ServerService. */
export class ApiKeys {
  private readonly digests: Buffer[];

  /**
   * With no keys, ServerService is open only in development mode (no user
   * auth configured either); once tokens are verified, it needs keys.
   */
  constructor(
    keys: readonly string[],
    private readonly openWithoutKeys: boolean,
  ) {
    this.digests = keys.map(digest);
  }

  get developmentMode(): boolean {
    return this.digests.length === 0 && this.openWithoutKeys;
  }

  /** The caller's key, as the scope its rate limit and message ids belong to ("key:<n>"). */
  check(header: Headers): string {
    if (this.developmentMode) return "key:development";
    if (this.digests.length === 0) {
      throw new ConnectError("ServerService is closed: this server verifies user tokens but has no API keys (set CHORUS_API_KEYS)", Code.Unauthenticated);
    }
    const key = bearer(header);
    if (!key) throw new ConnectError('ServerService needs an API key: send "Authorization: Bearer <api key>"', Code.Unauthenticated);
    const candidate = digest(key);
    // Compare digests in constant time and against every key, so timing
    // tells nothing about which key (or how much of one) matched.
    let found = -1;
    this.digests.forEach((d, i) => {
      if (timingSafeEqual(d, candidate)) found = i;
    });
    if (found < 0) throw new ConnectError("API key is not valid", Code.Unauthenticated);
    return `key:${found}`;
  }
}

function digest(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}
