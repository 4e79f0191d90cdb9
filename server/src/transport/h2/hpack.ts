import { huffmanDecode } from "./huffman.js";

/**
 * HPACK (RFC 7541): a decoder for request header blocks, with its dynamic
 * table, and an encoder for responses that never indexes (a server's
 * responses are few and small; an indexing encoder would cost memory on
 * every idle connection).
 */

export class HpackError extends Error {}

export type HeaderField = [name: string, value: string];

const STATIC_TABLE: readonly HeaderField[] = [
  [":authority", ""], [":method", "GET"], [":method", "POST"], [":path", "/"], [":path", "/index.html"],
  [":scheme", "http"], [":scheme", "https"], [":status", "200"], [":status", "204"], [":status", "206"],
  [":status", "304"], [":status", "400"], [":status", "404"], [":status", "500"], ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"], ["accept-language", ""], ["accept-ranges", ""], ["accept", ""],
  ["access-control-allow-origin", ""], ["age", ""], ["allow", ""], ["authorization", ""], ["cache-control", ""],
  ["content-disposition", ""], ["content-encoding", ""], ["content-language", ""], ["content-length", ""],
  ["content-location", ""], ["content-range", ""], ["content-type", ""], ["cookie", ""], ["date", ""], ["etag", ""],
  ["expect", ""], ["expires", ""], ["from", ""], ["host", ""], ["if-match", ""], ["if-modified-since", ""],
  ["if-none-match", ""], ["if-range", ""], ["if-unmodified-since", ""], ["last-modified", ""], ["link", ""],
  ["location", ""], ["max-forwards", ""], ["proxy-authenticate", ""], ["proxy-authorization", ""], ["range", ""],
  ["referer", ""], ["refresh", ""], ["retry-after", ""], ["server", ""], ["set-cookie", ""],
  ["strict-transport-security", ""], ["transfer-encoding", ""], ["user-agent", ""], ["vary", ""], ["via", ""],
  ["www-authenticate", ""],
];

/** Per RFC 7541 §4.1: an entry's size is its octets plus 32. */
const entrySize = (name: string, value: string) => name.length + value.length + 32;

export interface DecodedBlock {
  fields: HeaderField[];
  /** The decoded list went past the size limit: the fields are incomplete (the table is still in step). */
  oversized: boolean;
}

export class HpackDecoder {
  /** Newest first. Made on the first indexed literal: many connections never send one. */
  private dynamic: HeaderField[] | undefined;
  private dynamicSize = 0;
  private maxDynamicSize: number;

  constructor(
    /** SETTINGS_HEADER_TABLE_SIZE we announced: the most the peer may ask for. */
    private readonly tableSizeLimit: number,
    /** Largest decoded header list accepted (names + values + 32 per field). */
    private readonly maxListSize: number,
  ) {
    this.maxDynamicSize = tableSizeLimit;
  }

  decode(block: Uint8Array): DecodedBlock {
    const fields: HeaderField[] = [];
    let listSize = 0;
    let oversized = false;
    const reader = new Reader(block);
    while (!reader.done) {
      const first = reader.peek();
      let field: HeaderField;
      if (first & 0x80) {
        field = this.entry(reader.int(7));
      } else if (first & 0x40) {
        field = this.literal(reader, 6);
        this.insert(field);
      } else if (first & 0x20) {
        if (fields.length > 0) throw new HpackError("dynamic table size update after a header field");
        const size = reader.int(5);
        if (size > this.tableSizeLimit) throw new HpackError(`dynamic table size ${size} exceeds the announced ${this.tableSizeLimit}`);
        this.maxDynamicSize = size;
        this.evict();
        continue;
      } else {
        field = this.literal(reader, 4); // without indexing (0000) or never indexed (0001)
      }
      listSize += entrySize(field[0], field[1]);
      if (listSize > this.maxListSize) oversized = true;
      else fields.push(field);
    }
    return { fields, oversized };
  }

  private literal(reader: Reader, prefix: number): HeaderField {
    const index = reader.int(prefix);
    const name = index === 0 ? reader.string() : this.entry(index)[0];
    return [name, reader.string()];
  }

  private entry(index: number): HeaderField {
    if (index === 0) throw new HpackError("header index 0");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const field = this.dynamic?.[index - STATIC_TABLE.length - 1];
    if (!field) throw new HpackError(`header index ${index} is not in the table`);
    return field;
  }

  private insert(field: HeaderField): void {
    const size = entrySize(field[0], field[1]);
    this.dynamic ??= [];
    this.dynamic.unshift(field);
    this.dynamicSize += size;
    this.evict(); // an entry larger than the table empties it, itself included
  }

  private evict(): void {
    while (this.dynamicSize > this.maxDynamicSize && this.dynamic?.length) {
      const [name, value] = this.dynamic.pop()!;
      this.dynamicSize -= entrySize(name, value);
    }
  }
}

class Reader {
  private pos = 0;
  constructor(private readonly bytes: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.bytes.length;
  }

  peek(): number {
    return this.bytes[this.pos]!;
  }

  /** An integer with an N-bit prefix (RFC 7541 §5.1). */
  int(prefix: number): number {
    const mask = (1 << prefix) - 1;
    let value = this.byte() & mask;
    if (value < mask) return value;
    for (let shift = 0; ; shift += 7) {
      if (shift > 28) throw new HpackError("integer too large");
      const b = this.byte();
      value += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return value;
    }
  }

  /** A string literal as octets (latin1), Huffman-decoded when flagged. */
  string(): string {
    const huffman = (this.peek() & 0x80) !== 0;
    const length = this.int(7);
    if (this.pos + length > this.bytes.length) throw new HpackError("string runs past the header block");
    const raw = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    try {
      return huffman ? huffmanDecode(raw) : Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString("latin1");
    } catch (error) {
      throw new HpackError((error as Error).message);
    }
  }

  private byte(): number {
    if (this.pos >= this.bytes.length) throw new HpackError("header block ends inside a field");
    return this.bytes[this.pos++]!;
  }
}

const STATIC_STATUS: Record<string, number> = { "200": 8, "204": 9, "206": 10, "304": 11, "400": 12, "404": 13, "500": 14 };
const STATIC_NAME = new Map<string, number>();
STATIC_TABLE.forEach(([name], i) => {
  if (!STATIC_NAME.has(name)) STATIC_NAME.set(name, i + 1);
});

/** Encodes response fields as literals without indexing (names from the static table where it has them). */
export function encodeHeaders(fields: readonly HeaderField[]): Buffer {
  const parts: number[] = [];
  const int = (value: number, prefix: number, flags: number) => {
    const mask = (1 << prefix) - 1;
    if (value < mask) return void parts.push(flags | value);
    parts.push(flags | mask);
    value -= mask;
    while (value >= 0x80) {
      parts.push((value & 0x7f) | 0x80);
      value = Math.floor(value / 0x80);
    }
    parts.push(value);
  };
  const string = (s: string) => {
    int(s.length, 7, 0);
    for (let i = 0; i < s.length; i++) parts.push(s.charCodeAt(i) & 0xff);
  };
  for (const [name, value] of fields) {
    const status = name === ":status" ? STATIC_STATUS[value] : undefined;
    if (status) {
      int(status, 7, 0x80);
      continue;
    }
    const index = STATIC_NAME.get(name);
    if (index) int(index, 4, 0);
    else {
      parts.push(0);
      string(name);
    }
    string(value);
  }
  return Buffer.from(parts);
}
