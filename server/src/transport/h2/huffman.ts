/**
 * HPACK's Huffman code (RFC 7541, Appendix B) for decoding header strings.
 *
 * The code is canonical: codes of one length are consecutive and follow the
 * symbol order, and each length continues where the shorter one stopped.
 * So the bit length of each of the 257 symbols (256 octets and EOS) is all
 * the table has to hold; the codes are derived from it.
 */
const CODE_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];
const EOS = 256;

/**
 * The decoding tree as two child arrays: a child >= 0 is an inner node, a
 * negative child is a leaf holding symbol -(child + 1).
 */
const zero: number[] = [0];
const one: number[] = [0];

(function buildTree() {
  const symbols = CODE_LENGTHS.map((_, symbol) => symbol).sort((a, b) => CODE_LENGTHS[a]! - CODE_LENGTHS[b]! || a - b);
  let code = 0;
  let length = CODE_LENGTHS[symbols[0]!]!;
  for (const symbol of symbols) {
    code *= 2 ** (CODE_LENGTHS[symbol]! - length);
    length = CODE_LENGTHS[symbol]!;
    let node = 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      const branch = Math.floor(code / 2 ** bit) % 2 === 0 ? zero : one;
      if (bit === 0) {
        branch[node] = -(symbol + 1);
      } else {
        if (!branch[node]) {
          branch[node] = zero.length;
          zero.push(0);
          one.push(0);
        }
        node = branch[node]!;
      }
    }
    code++;
  }
})();

export class HuffmanError extends Error {}

/** Decodes a Huffman-coded header string into octets (as a latin1 string). */
export function huffmanDecode(bytes: Uint8Array): string {
  const out: number[] = [];
  let node = 0;
  // Bits read since the last symbol, and whether all of them were 1s: a
  // string may end only in at most 7 bits of the EOS code's prefix.
  let tailBits = 0;
  let tailAllOnes = true;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      const set = (byte >> bit) & 1;
      const next = set ? one[node]! : zero[node]!;
      tailBits++;
      tailAllOnes &&= set === 1;
      if (next < 0) {
        const symbol = -next - 1;
        if (symbol === EOS) throw new HuffmanError("Huffman string contains EOS");
        out.push(symbol);
        node = 0;
        tailBits = 0;
        tailAllOnes = true;
      } else {
        node = next;
      }
    }
  }
  if (tailBits > 7 || !tailAllOnes) throw new HuffmanError("Huffman string has invalid padding");
  return Buffer.from(out).toString("latin1");
}
