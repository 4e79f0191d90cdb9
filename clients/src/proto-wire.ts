/**
 * Protobuf's wire format written by hand into a Node Buffer: the pieces
 * the hot-path writers share (the server's payload and reply frames, the
 * Node client's publish command). Numbers are safe integers (the writers
 * check their inputs and fall back to protobuf-es otherwise); strings are
 * UTF-8, sized by the caller with Buffer.byteLength.
 */

/** The bytes a string field takes, tag included; proto3 leaves an empty one out. */
export function stringSize(bytes: number): number {
  return bytes === 0 ? 0 : 1 + varintSize(bytes) + bytes;
}

export function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** A one-byte tag (fields 1-15). */
export function writeTag(out: Buffer, pos: number, tag: number): number {
  out[pos] = tag;
  return pos + 1;
}

export function writeVarint(out: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    out[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[pos++] = n;
  return pos;
}

/** A string field (nothing when empty); `bytes` is its UTF-8 length. */
export function writeString(out: Buffer, pos: number, tag: number, value: string, bytes: number): number {
  if (bytes === 0) return pos;
  out[pos++] = tag;
  pos = writeVarint(out, pos, bytes);
  return pos + out.write(value, pos, "utf8");
}
