import { expect, it } from "vitest";
import { HpackDecoder, HpackError, encodeHeaders } from "../../server/src/transport/h2/hpack.js";
import { huffmanDecode } from "../../server/src/transport/h2/huffman.js";

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");

it("decodes RFC 7541's request examples with Huffman coding, carrying the dynamic table from one block to the next (C.4)", () => {
  const decoder = new HpackDecoder(4096, 64 * 1024);
  expect(decoder.decode(hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")).fields).toEqual([
    [":method", "GET"],
    [":scheme", "http"],
    [":path", "/"],
    [":authority", "www.example.com"],
  ]);
  // 0xbe refers to the entry the first block added.
  expect(decoder.decode(hex("8286 84be 5886 a8eb 1064 9cbf")).fields).toEqual([
    [":method", "GET"],
    [":scheme", "http"],
    [":path", "/"],
    [":authority", "www.example.com"],
    ["cache-control", "no-cache"],
  ]);
  expect(decoder.decode(hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf")).fields).toEqual([
    [":method", "GET"],
    [":scheme", "https"],
    [":path", "/index.html"],
    [":authority", "www.example.com"],
    ["custom-key", "custom-value"],
  ]);
});

it("decodes the same examples without Huffman coding (C.3)", () => {
  const decoder = new HpackDecoder(4096, 64 * 1024);
  expect(decoder.decode(hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d")).fields.at(-1)).toEqual([":authority", "www.example.com"]);
  expect(decoder.decode(hex("8286 84be 5808 6e6f 2d63 6163 6865")).fields.slice(-2)).toEqual([
    [":authority", "www.example.com"],
    ["cache-control", "no-cache"],
  ]);
});

it("rejects Huffman strings that end in anything but a short run of 1s, or that contain EOS", () => {
  expect(huffmanDecode(hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"))).toBe("www.example.com");
  expect(() => huffmanDecode(hex("f1e3 c2e5 f23a 6ba0 ab90 f4fe"))).toThrow(/padding/); // padding with a 0 bit
  expect(() => huffmanDecode(hex("ffff ffff"))).toThrow(/EOS/); // the 30-bit EOS code
  expect(() => huffmanDecode(hex("1f ff"))).toThrow(/padding/); // 'a' (00011) then 11 bits of 1s: more than 7
});

it("evicts the oldest entries when the table is full and honours size updates up to the announced limit", () => {
  const decoder = new HpackDecoder(100, 64 * 1024);
  // Literal-with-indexing fields of 32 + 2 bytes each: two fit in 100 bytes, a third evicts the oldest.
  const add = (name: string, value: string) => Buffer.concat([Buffer.from([0x40, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
  decoder.decode(add("a", "1"));
  expect(decoder.decode(Buffer.from([0xbe])).fields).toEqual([["a", "1"]]); // index 62: newest
  decoder.decode(add("b", "2"));
  expect(decoder.decode(Buffer.from([0xbe, 0xbf])).fields).toEqual([
    ["b", "2"],
    ["a", "1"],
  ]);
  decoder.decode(add("c", "3")); // 3 × 34 > 100: "a" goes
  expect(decoder.decode(Buffer.from([0xbe, 0xbf])).fields).toEqual([
    ["c", "3"],
    ["b", "2"],
  ]);
  expect(() => decoder.decode(Buffer.from([0xc0]))).toThrow(HpackError);
  expect(() => decoder.decode(Buffer.from([0x3f, 0x46]))).toThrow(/exceeds the announced 100/); // size update to 101
  decoder.decode(Buffer.from([0x20])); // size 0 empties the table
  expect(() => decoder.decode(Buffer.from([0xbe]))).toThrow(/not in the table/);
});

it("stops collecting fields past the list size limit but stays in step with the peer's table", () => {
  const decoder = new HpackDecoder(4096, 200);
  const big = Buffer.concat([Buffer.from([0x40, 1]), Buffer.from("x"), Buffer.from([100]), Buffer.alloc(100, "y")]);
  // One 133-byte entry, then four references to it: far past 200 bytes decoded.
  const decoded = decoder.decode(Buffer.concat([big, Buffer.from([0xbe, 0xbe, 0xbe, 0xbe])]));
  expect(decoded.oversized).toBe(true);
  expect(decoded.fields.length).toBe(1);
  expect(decoder.decode(Buffer.from([0xbe])).fields).toEqual([["x", "y".repeat(100)]]);
});

it("rejects truncated blocks and integers that overflow", () => {
  const decoder = new HpackDecoder(4096, 64 * 1024);
  expect(() => decoder.decode(hex("0005 6162"))).toThrow(/past the header block/);
  expect(() => decoder.decode(hex("ff ff ff ff ff ff 01"))).toThrow(/too large/);
  expect(() => decoder.decode(hex("80"))).toThrow(/index 0/);
});

it("encodes response fields that a decoder reads back, long values included", () => {
  const fields: Array<[string, string]> = [
    [":status", "200"],
    [":status", "431"],
    ["content-type", "application/grpc"],
    ["grpc-message", "m".repeat(300)],
  ];
  expect(new HpackDecoder(4096, 64 * 1024).decode(encodeHeaders(fields)).fields).toEqual(fields);
});
