/**
 * The envelopes of Connect's (and gRPC's) streaming protocols: [flags]
 * [u32 length][message]. Flag 0x02 marks Connect's end-of-stream message.
 */
export const END_STREAM = 0x02;

export function envelope(flags: number, bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + bytes.length);
  out[0] = flags;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

/** Splits a response body into envelopes as its chunks arrive; `take` returns false to stop reading. */
export class EnvelopeReader {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly take: (flags: number, body: Buffer) => boolean) {}

  push(chunk: Buffer): void {
    let input = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (input.length >= 5) {
      const length = input.readUInt32BE(1);
      if (input.length < 5 + length) break;
      const flags = input[0]!;
      const body = input.subarray(5, 5 + length);
      input = input.subarray(5 + length);
      if (!this.take(flags, body)) {
        input = Buffer.alloc(0);
        break;
      }
    }
    this.pending = input;
  }
}
