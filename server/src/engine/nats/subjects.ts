/**
 * How Chorus names things in NATS. Every subject this engine uses is
 * `<prefix>.<kind>.<name>`, where the name is derived from a topic or a user
 * id by an injective escaping: ASCII letters, digits, `_` and `-` stay, a
 * topic's `/` becomes `.`, and every other byte is written `~HH`. So no two
 * topics share a subject, and no input can produce `*`, `>` or an empty
 * token: a client can never widen what it reaches.
 */

const KEEP = /[A-Za-z0-9_-]/;

/** The escaped form of one string (no `.` in the result unless `slashToDot`). */
export function escapeToken(text: string, slashToDot = false): string {
  if (text === "") return "~";
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    const c = String.fromCharCode(byte);
    if (byte < 0x80 && KEEP.test(c)) out += c;
    else if (slashToDot && c === "/") out += ".";
    else out += `~${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

export class Subjects {
  /** The JetStream stream holding every persisted message. */
  readonly stream: string;

  constructor(readonly prefix: string) {
    if (!/^[A-Za-z0-9_-]+$/.test(prefix)) {
      throw new Error(`NATS subject prefix "${prefix}" may contain only letters, digits, _ and -`);
    }
    this.stream = `${prefix}-messages`;
  }

  /** Where a topic's persisted messages are stored (the stream's subjects). */
  stored(topic: string): string {
    return `${this.prefix}.m.${escapeToken(topic, true)}`;
  }

  /** Where a topic's live traffic flows: the stream republishes stored messages here; ephemeral ones are published here directly. */
  live(topic: string): string {
    return `${this.prefix}.l.${escapeToken(topic, true)}`;
  }

  user(userId: string): string {
    return `${this.prefix}.u.${escapeToken(userId)}`;
  }

  get allStored(): string {
    return `${this.prefix}.m.>`;
  }

  get allLive(): string {
    return `${this.prefix}.l.>`;
  }
}
