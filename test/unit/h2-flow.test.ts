// Flow control on Chorus' own HTTP/2 connection with a handler that never
// reads: the request body is held within the receive window it announced,
// and a client that sends past it is ended (FLOW_CONTROL_ERROR).
import * as net from "node:net";
import { afterEach, expect, it } from "vitest";
import { H2Connection } from "../../server/src/transport/h2/connection.js";
import { closeRawConnections, ERROR, FRAME, RawConnection } from "../helpers/h2-raw.js";

afterEach(() => closeRawConnections());

it("holds a request body nobody reads within its receive window, and ends a client that sends past it", async () => {
  let delivered = 0;
  const tcp = net.createServer((socket) => {
    new H2Connection(socket, { onRequest: (stream) => stream.listen({ onData: () => delivered++, onEnd() {}, onDrain() {}, onClose() {} }), onError() {} });
  });
  await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
  try {
    const c = await RawConnection.connect((tcp.address() as net.AddressInfo).port);
    c.request(1, "/upload", { method: "POST", endStream: false });
    for (let k = 0; k < 4; k++) c.send(FRAME.DATA, 0, 1, Buffer.alloc(16_000)); // 64 000 of 65 535: allowed
    await c.roundTrip();
    expect(c.frames.some((f) => f.type === FRAME.GOAWAY || f.type === FRAME.WINDOW_UPDATE)).toBe(false);
    c.send(FRAME.DATA, 0, 1, Buffer.alloc(16_000));
    expect((await c.goAway()).code).toBe(ERROR.FLOW_CONTROL_ERROR);
    expect(delivered).toBe(0);
  } finally {
    tcp.close();
  }
});
