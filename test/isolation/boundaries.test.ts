// No exception thrown while handling one request or one frame reaches the
// process: the listener runs every handler inside a boundary that turns a
// throw (synchronous or a rejection) into that request's error, over both
// HTTP versions and both HTTP/2 implementations. If anything escaped,
// vitest would report an uncaught exception or an unhandled rejection and
// fail the run.
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_H2_LIMITS } from "../../server/src/transport/h2/connection.js";
import { DualProtocolListener } from "../../server/src/transport/listener.js";
import type { RequestHead, ServerStream } from "../../server/src/transport/server-stream.js";
import { respondPlain } from "../../server/src/transport/universal/h2.js";

const failures: string[] = [];
let listener: DualProtocolListener | undefined;
afterEach(async () => {
  listener?.destroyAll();
  await listener?.stopAccepting();
  listener = undefined;
  failures.length = 0;
});

/** A listener whose handlers throw, reject, or throw from inside a stream's listener, by path. */
async function start(http2Impl: "chorus" | "node"): Promise<string> {
  const fail = (path: string) => {
    if (path === "/throw-sync") throw new Error("handler threw");
    if (path === "/throw-async") return Promise.reject(new Error("handler rejected"));
    return undefined;
  };
  listener = new DualProtocolListener(
    (req, res) => {
      const thrown = fail(req.url ?? "");
      if (thrown) return thrown;
      if (req.url === "/throw-in-body") {
        req.on("data", () => {});
        res.end("ok");
        return;
      }
      res.end("ok");
    },
    (stream: ServerStream, head: RequestHead) => {
      const thrown = fail(head.path);
      if (thrown) return thrown;
      if (head.path === "/throw-in-body") {
        // Thrown from inside frame processing, by the stream's own listener.
        stream.listen({ onData: () => { throw new Error("listener threw"); }, onEnd() {}, onDrain() {}, onClose() {} });
        stream.resume();
        return;
      }
      respondPlain(stream, 200, {}, "ok");
    },
    { maxSockets: 100, listenBacklog: 511, handshakeTimeoutMs: 10_000, idleTimeoutMs: 60_000, http2: http2Impl, h2Limits: DEFAULT_H2_LIMITS, onError: (_error, context) => failures.push(context) },
  );
  const address = (await listener.listen(0, "127.0.0.1")) as AddressInfo;
  return `http://127.0.0.1:${address.port}`;
}

function h1(url: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url + path, { method: "POST" }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on("error", reject);
    req.end("body");
  });
}

/** Status of an HTTP/2 request, or the RST_STREAM code that ended it. */
function h2(session: http2.ClientHttp2Session, path: string): Promise<{ status?: number; reset?: number }> {
  return new Promise((resolve) => {
    const stream = session.request({ ":method": "POST", ":path": path });
    stream.on("response", (headers) => resolve({ status: Number(headers[":status"]) }));
    stream.on("error", () => {});
    stream.on("close", () => resolve({ reset: stream.rstCode }));
    stream.end("body");
  });
}

describe.each(["chorus", "node"] as const)("request boundaries (HTTP/2: %s)", (impl) => {
  it("turn handlers that throw or reject into that request's error; the process keeps serving", async () => {
    const url = await start(impl);
    for (const path of ["/throw-sync", "/throw-async"]) expect(await h1(url, path)).toBe(500);
    expect(await h1(url, "/ok")).toBe(200);

    const session = http2.connect(url);
    session.on("error", () => {});
    for (const path of ["/throw-sync", "/throw-async", "/throw-in-body"]) {
      expect(await h2(session, path)).toEqual({ reset: http2.constants.NGHTTP2_INTERNAL_ERROR });
    }
    // The same connection goes on serving.
    expect(await h2(session, "/ok")).toEqual({ status: 200 });
    session.close();
    expect(await h1(url, "/ok")).toBe(200);
    // Each failure was logged with where it happened.
    expect(failures.length).toBe(5);
    expect(failures.every((f) => /serving/.test(f))).toBe(true);
  });
});
