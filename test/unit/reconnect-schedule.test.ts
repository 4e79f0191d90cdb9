import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, expect, it, vi } from "vitest";
import { ServerFrameSchema, type ServerFrame } from "../../gen/chorus/v1/realtime_pb.js";
import { RealtimeClient } from "../../clients/src/client.js";
import type { SessionConnection, SessionTransport } from "../../clients/src/session.js";

/** A transport whose sessions are welcomed at once and end when the test drops them. */
class FakeTransport implements SessionTransport {
  readonly opens: number[] = [];
  private drop: (() => void) | undefined;

  open(): SessionConnection {
    this.opens.push(Date.now());
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    this.drop = end;
    const welcome = create(ServerFrameSchema, { kind: { case: "welcome", value: { sessionId: "s", connectionId: "c", userId: "u", heartbeatIntervalMs: 0 } } });
    async function* frames(): AsyncGenerator<ServerFrame[]> {
      yield [welcome];
      await ended;
    }
    return { frames: frames(), command: async () => ({}) as never, close: end };
  }

  dropConnection(): void {
    this.drop?.();
  }

  dispose(): void {}
  reset(): void {}
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
  vi.spyOn(Math, "random").mockReturnValue(0.5); // jitter factor 1.0: the bare schedule
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

it("reconnects after 1 s, 2 s, 4 s … 30 s, and starts over at 1 s after a stable connection", async () => {
  const transport = new FakeTransport();
  const client = new RealtimeClient({ url: "http://fake" }, transport);
  await client.connect();
  /** Drops the connection and returns how long the client waited before opening a new one. */
  const backoff = async () => {
    const opened = transport.opens.length;
    transport.dropConnection();
    const droppedAt = Date.now();
    await vi.advanceTimersByTimeAsync(0);
    while (transport.opens.length === opened) await vi.advanceTimersToNextTimerAsync();
    await vi.advanceTimersByTimeAsync(0); // let the welcome in
    return transport.opens.at(-1)! - droppedAt;
  };
  const delays: number[] = [];
  for (let i = 0; i < 7; i++) delays.push(await backoff()); // each dropped right after its welcome
  expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  expect(client.status).toBe("connected");

  // Connected for longer than 10 s: the next drop starts the schedule over.
  await vi.advanceTimersByTimeAsync(15_000);
  expect(await backoff()).toBe(1000);
  client.disconnect();
  expect(vi.getTimerCount()).toBe(0); // nothing left behind
});
