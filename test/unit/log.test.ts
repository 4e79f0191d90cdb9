import { afterEach, expect, it, vi } from "vitest";
import { EveryFewSeconds, jsonLogger } from "../../server/src/log.js";

afterEach(() => vi.restoreAllMocks());

/** What the logger wrote, as parsed lines: stdout and stderr apart. */
function capture(): { out: Array<Record<string, unknown>>; err: Array<Record<string, unknown>> } {
  const seen = { out: [] as Array<Record<string, unknown>>, err: [] as Array<Record<string, unknown>> };
  const grab = (into: Array<Record<string, unknown>>) => (chunk: string | Uint8Array) => {
    for (const line of String(chunk).split("\n")) if (line.startsWith("{")) into.push(JSON.parse(line));
    return true;
  };
  vi.spyOn(process.stdout, "write").mockImplementation(grab(seen.out) as never);
  vi.spyOn(process.stderr, "write").mockImplementation(grab(seen.err) as never);
  return seen;
}

it("writes one JSON object per line at the configured level and above, errors on stderr", () => {
  const seen = capture();
  const log = jsonLogger("chorus", "warn");
  log.debug("not shown");
  log.info("not shown either");
  log.warn("shown", { connection: "c1" });
  log.error("on stderr", { code: "x" });
  expect(seen.out).toEqual([expect.objectContaining({ level: "warn", component: "chorus", msg: "shown", connection: "c1", time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) })]);
  expect(seen.err).toEqual([expect.objectContaining({ level: "error", msg: "on stderr", code: "x" })]);

  const verbose = capture();
  jsonLogger("chorus", "debug").debug("session opened", { kind: "connect" });
  expect(verbose.out).toEqual([expect.objectContaining({ level: "debug", msg: "session opened", kind: "connect" })]);
});

it("says a flood in one line per interval, with how many", () => {
  const lines: Array<[string, Record<string, unknown>]> = [];
  const flood = new EveryFewSeconds((m, f) => lines.push([m, f]), 60_000);
  for (let i = 0; i < 1000; i++) flood.note("refusing");
  expect(lines).toEqual([["refusing", { times: 1, sinceMs: undefined }]]);
});
