// The frame that once ended the process: a session request whose
// `authorization` value holds NUL, CR or LF. With any auth mode, on either
// session route and either HTTP/2 implementation, it ends that stream at
// most, and the node goes on serving.
import { describe, expect, it } from "vitest";
import { encodeHeaders } from "../../server/src/transport/h2/hpack.js";
import { closeRawConnections, ERROR, FLAG, FRAME, RawConnection, requestFields } from "../helpers/h2-raw.js";
import { health, serverForSuite } from "../helpers/server.js";

const modes: Array<{ name: string; env: Record<string, string> }> = [
  { name: "development mode, Chorus' HTTP/2", env: {} },
  { name: "JWT auth, Chorus' HTTP/2", env: { CHORUS_JWT_SECRET: "crash-frame-secret-long-enough-for-hs256" } },
  { name: "JWT auth, CHORUS_HTTP2=node", env: { CHORUS_JWT_SECRET: "crash-frame-secret-long-enough-for-hs256", CHORUS_HTTP2: "node" } },
];

/** The authorization value, byte for byte (the encoder's literal, without its checks). */
function sessionRequest(path: string, authorization: string): Buffer {
  const base = encodeHeaders(requestFields(path, "POST", [["content-type", "application/connect+proto"]]));
  const name = Buffer.from("authorization");
  const value = Buffer.from(authorization, "latin1");
  return Buffer.concat([base, Buffer.from([0x00, name.length]), name, Buffer.from([value.length]), value]);
}

for (const mode of modes) {
  describe(`an authorization value holding NUL, CR or LF (${mode.name})`, () => {
    const server = serverForSuite(mode.env);

    it("ends that stream at most; the node keeps serving", async () => {
      try {
        let stream = 1;
        for (const path of ["/chorus.v1.RealtimeService/Connect", "/chorus.v1.RealtimeService/Listen"]) {
          for (const bad of ["Bearer a\u0000b", "Bearer a\rb", "Bearer a\nb", "Bearer a\r\nx-injected: 1"]) {
            const c = await RawConnection.connect(server.port);
            c.send(FRAME.HEADERS, FLAG.END_HEADERS, stream, sessionRequest(path, bad));
            c.send(FRAME.DATA, FLAG.END_STREAM, stream, Buffer.from([0, 0, 0, 0, 0]));
            await c.roundTrip();
            const reset = c.frames.find((f) => f.type === FRAME.RST_STREAM && f.stream === stream);
            const answered = c.frames.some((f) => f.type === FRAME.HEADERS && f.stream === stream);
            // Chorus' server refuses the request as malformed; Node's lets it reach the session, which refuses the token.
            expect(reset?.payload.readUInt32BE(0) === ERROR.PROTOCOL_ERROR || answered).toBe(true);
            stream += 2;
          }
        }
        expect((await health(server.url)).status).toBe("ok");
        expect(server.output()).not.toMatch(/TypeError|uncaught/i);
      } finally {
        closeRawConnections();
      }
    });
  });
}
