import { randomBytes } from "node:crypto";

/**
 * Message ids unique across nodes and restarts without a random draw per
 * message: a random per-process prefix and a counter.
 */
export class IdGenerator {
  private readonly prefix = randomBytes(6).toString("base64url");
  private counter = 0;

  next(): string {
    return `${this.prefix}${(++this.counter).toString(36)}`;
  }
}

/** Unguessable: session ids are bearer secrets for Listen sessions. */
export function secretId(): string {
  return randomBytes(18).toString("base64url");
}
