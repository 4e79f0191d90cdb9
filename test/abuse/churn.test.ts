// HTTP/1.1 Listen sessions ended by the client leave nothing behind: after
// 2000 of them the node holds no session and no socket. And a client that
// has the server reset streams for it in a loop ("MadeYouReset") is cut off
// without slowing the node for others.
import { spawn } from "node:child_process";
import * as http from "node:http";
import { expect, it } from "vitest";
import { eventually, health, ROOT, rssMB, serverForSuite } from "../helpers/server.js";

const server = serverForSuite();

/** Opens a Listen session over HTTP/1.1, waits for its Welcome, then ends it from the client side. */
function listenAndLeave(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/chorus.v1.RealtimeService/Listen`, { method: "POST", agent: false, headers: { "content-type": "application/connect+proto" } }, (res) => {
      res.once("data", () => {
        req.destroy();
        resolve();
      });
    });
    req.on("error", (error) => (req.destroyed ? resolve() : reject(error)));
    req.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

it("leaves no Session and no socket behind after 2000 HTTP/1.1 sessions ended by the client", { timeout: 60_000 }, async () => {
  const before = rssMB(server.pid);
  for (let round = 0; round < 20; round++) await Promise.all(Array.from({ length: 100 }, () => listenAndLeave(server.url)));
  await eventually(() => true, "", 10);
  let last = await health(server.url);
  await eventually(
    () => {
      void health(server.url).then((h) => (last = h));
      return last.sessions === 0 && last.connections.sockets <= 1;
    },
    "sessions and sockets back to zero",
    10_000,
  );
  console.log(`HTTP/1.1 churn: 2000 sessions opened and ended by the client; node holds ${last.sessions} sessions, ${last.connections.sockets} sockets (the probe's); RSS ${before.toFixed(1)} MB before, ${rssMB(server.pid).toFixed(1)} MB after`);
});

it("cuts off server-side reset loops (MadeYouReset) while /healthz stays quick", { timeout: 60_000 }, async () => {
  // The attacker runs in its own process for 3 s: new connections, each making the server reset stream after stream.
  const attacker = `
    import * as net from "node:net";
    import { encodeHeaders } from "./server/src/transport/h2/hpack.ts";
    const frame = (type, flags, stream, payload) => { const h = Buffer.alloc(9); h.writeUIntBE(payload.length, 0, 3); h[3] = type; h[4] = flags; h.writeUInt32BE(stream, 5); return Buffer.concat([h, payload]); };
    const block = encodeHeaders([[":method", "POST"], [":scheme", "http"], [":authority", "x"], [":path", "/chorus.v1.RealtimeService/Publish"], ["content-type", "application/proto"]]);
    const zero = Buffer.alloc(4);
    let cutOff = 0;
    const deadline = Date.now() + 3000;
    const attack = () => new Promise((resolve) => {
      const s = net.connect(${server.port}, "127.0.0.1", () => {
        const parts = [Buffer.from("PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n"), frame(4, 0, 0, Buffer.alloc(0))];
        for (let k = 0; k < 2000; k++) parts.push(frame(1, 4, 1 + 2 * k, block), frame(8, 0, 1 + 2 * k, zero));
        s.write(Buffer.concat(parts));
      });
      s.on("data", (d) => { for (let i = 0; i + 9 <= d.length; ) { const len = d.readUIntBE(i, 3); if (d[i + 3] === 7 && d.readUInt32BE(i + 13) === 11) cutOff++; i += 9 + len; } });
      s.on("close", resolve); s.on("error", resolve);
    });
    while (Date.now() < deadline) await Promise.all([attack(), attack()]);
    console.log(JSON.stringify({ cutOff }));
  `;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", attacker], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const done = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const latencies: number[] = [];
  try {
    while (child.exitCode === null) {
      const started = performance.now();
      await health(server.url);
      latencies.push(performance.now() - started);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    child.kill();
    await done;
  }
  const { cutOff } = JSON.parse(out) as { cutOff: number };
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.floor(latencies.length * 0.99)]!;
  const max = latencies.at(-1)!;
  console.log(`MadeYouReset: ${cutOff} attacking connections cut off with ENHANCE_YOUR_CALM in 3 s; /healthz over ${latencies.length} probes p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms; RSS ${rssMB(server.pid).toFixed(1)} MB`);
  expect(cutOff).toBeGreaterThan(0);
  expect(max).toBeLessThan(100);
});
