import { decodeJwt, SignJWT } from "jose";
import { createAuthenticator } from "../auth.js";
import type { ChorusConfig } from "../config.js";
import { parseGrants, type Grants } from "../permissions.js";

/** `--grant subscribe=chat/*` options, as the grants a token's claim carries. */
export function grantsOf(options: string[]): Grants {
  const grants: Record<string, string[]> = {};
  for (const option of options) {
    const at = option.indexOf("=");
    if (at <= 0 || at === option.length - 1) throw new Error(`--grant ${option}: write action=pattern, for example subscribe=chat/*`);
    (grants[option.slice(0, at)] ??= []).push(option.slice(at + 1));
  }
  return parseGrants(grants, "--grant");
}

/** Seconds in "90s", "15m", "1h", "7d" (or a plain number of seconds). */
export function durationSeconds(text: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!match) throw new Error(`--ttl ${text}: write a number with s, m, h or d, for example 1h`);
  return Number(match[1]) * { "": 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as "" | "s" | "m" | "h" | "d"];
}

/** A development token signed with the configured HS256 secret (CHORUS_JWT_SECRET). */
export async function mintToken(config: ChorusConfig, options: { sub: string; ttl: string; grant: string[] }): Promise<string> {
  const secret = config.auth.jwtSecret;
  if (!secret) throw new Error("no CHORUS_JWT_SECRET is set: a token can be minted only with the server's shared secret (a node without one runs in development mode and takes any token)");
  const grants = options.grant.length > 0 ? grantsOf(options.grant) : undefined;
  const claims = grants && config.auth.permissionsClaim ? { [config.auth.permissionsClaim]: grants } : {};
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(options.sub).setIssuedAt().setExpirationTime(`${durationSeconds(options.ttl)}s`);
  if (config.auth.audience) jwt = jwt.setAudience(config.auth.audience);
  if (config.auth.issuer) jwt = jwt.setIssuer(config.auth.issuer);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** What a token grants on this configuration, or why it would be refused. */
export async function checkToken(config: ChorusConfig, token: string): Promise<{ ok: true; user: string; expiresAt?: string; grants: Grants; configured: Grants } | { ok: false; reason: string; claims?: unknown }> {
  const auth = createAuthenticator(config.auth);
  if (auth.developmentMode) {
    return { ok: false, reason: "this configuration verifies no tokens (development mode): any token is taken as it is, its sub (or the token itself) as the user id" };
  }
  try {
    const identity = await auth.verify(token);
    return {
      ok: true,
      user: identity.userId,
      ...(identity.expiresAt ? { expiresAt: new Date(identity.expiresAt).toISOString() } : {}),
      grants: identity.grants ?? {},
      configured: config.permissions,
    };
  } catch (error) {
    let claims: unknown;
    try {
      claims = decodeJwt(token);
    } catch {
      claims = undefined;
    }
    return { ok: false, reason: (error as { rawMessage?: string }).rawMessage ?? String(error), ...(claims ? { claims } : {}) };
  }
}
