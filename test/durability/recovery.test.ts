// Recovery that always finishes: a subscriber 100 000 small messages
// behind, or 300 messages of 60 KB behind, catches up with every one of
// them exactly once and in order, then goes live, on both transports and
// both engines, while the server's memory stays bounded (the replay is
// paced by the subscriber's own outbox, never queued at once).
//
// The backlog is written straight into the engine's storage while the
// subscriber is away (files for the embedded engine, JetStream for NATS):
// publishing 100 000 messages through the server would only measure
// ingest, which the benchmark does.
import { create, toBinary } from "@bufbuild/protobuf";
import { appendFileSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { PayloadType, RealtimePayloadSchema } from "../../gen/chorus/v1/payload_pb.js";
import type { RealtimeClient } from "../../clients/src/client.js";
import { Subjects } from "../../server/src/engine/nats/subjects.js";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { transports } from "../helpers/clients.js";
import { natsAvailable, natsEngineEnv, SHARED_NATS_URL, uniquePrefix } from "../helpers/nats.js";
import { LoopbackProxy } from "../helpers/proxy.js";
import { eventually, removeDir, rssMB, startServer, type ServerProcess } from "../helpers/server.js";

const RETENTION = { CHORUS_RETENTION: "**=count:200000,age:1d" };
/** Stated bound: the server's resident memory grows by less than this while replaying. */
const RSS_BOUND_MB = 150;

const backlogs = [
  { name: "100 000 small messages", count: 100_000, data: (n: number) => JSON.stringify({ n }) },
  { name: "300 messages of 60 KB", count: 300, data: (n: number) => JSON.stringify({ n, blob: "x".repeat(60_000) }) },
];

interface Engine {
  name: string;
  env(): Record<string, string>;
  /** Writes `count` messages after position `after` of `topic` (epoch `epoch`) while no server holds them. */
  inject(server: ServerProcess, topic: string, epoch: string, after: number, count: number, data: (n: number) => string): Promise<void>;
  /** Whether the server must be stopped while injecting (the embedded engine's files are its own). */
  offline: boolean;
}

const memory: Engine = {
  name: "memory",
  env: () => ({}),
  offline: true,
  async inject(server, topic, _epoch, after, count, data) {
    const file = readdirSync(server.dataDir).find((f) => f.endsWith(".jsonl") && readFileSync(join(server.dataDir, f), "utf8").startsWith(`{"v":1,"topic":${JSON.stringify(topic)}`))!;
    const start = Date.now();
    const lines: string[] = [];
    for (let k = 1; k <= count; k++) {
      const n = after + k;
      lines.push(JSON.stringify({ s: n, i: `b${n}`, e: "m", d: data(n), u: "backlog", c: "", t: start + k }));
      if (lines.length === 5000 || k === count) {
        appendFileSync(join(server.dataDir, file), lines.join("\n") + "\n");
        lines.length = 0;
      }
    }
    // No index for what was appended behind the engine's back: it is rebuilt from the data on open.
    rmSync(join(server.dataDir, file.replace(".jsonl", ".idx")));
  },
};

let prefix = "";
const nats: Engine = {
  name: "nats",
  env: () => natsEngineEnv(SHARED_NATS_URL, (prefix = uniquePrefix("recovery"))),
  offline: false,
  async inject(_server, topic, epoch, after, count, data) {
    const nc = await connect({ servers: SHARED_NATS_URL });
    const js = jetstream(nc);
    const subject = new Subjects(prefix).stored(topic);
    const start = Date.now();
    for (let k = 1; k <= count; k += 1000) {
      const acks = [];
      for (let j = k; j < Math.min(k + 1000, count + 1); j++) {
        const n = after + j;
        const payload = create(RealtimePayloadSchema, { type: PayloadType.EVENT, topic, event: "m", data: data(n), userId: "backlog", timestamp: BigInt(start + j), id: `b${n}`, seq: BigInt(n), epoch });
        acks.push(js.publish(subject, toBinary(RealtimePayloadSchema, payload)));
      }
      await Promise.all(acks);
    }
    await nc.close();
  },
};

const engines: Engine[] = [memory, ...((await natsAvailable()) ? [nats] : [])];

for (const engine of engines) {
  describe(`recovery from far behind (${engine.name} engine)`, () => {
    for (const backlog of backlogs) {
      for (const transport of transports) {
        it(`${backlog.name}, ${transport.name}`, { timeout: 180_000 }, async () => {
          const topic = `chat/recover-${backlog.count}-${transport.name.split(" ")[0]}`;
          const env = { ...engine.env(), ...RETENTION };
          let server = await startServer(env);
          const dataDir = server.dataDir;
          const proxy = await LoopbackProxy.start(server.port);
          let client: RealtimeClient | undefined;
          try {
            client = transport.create({ url: proxy.url, token: "far-behind" });
            const got: number[] = [];
            let gaps = 0;
            client.channel(topic).on("m", (p) => got.push(p.data.n)).on("system:history_gap", () => gaps++).subscribe();
            await client.channel(topic).ready();
            const sdk = createServerSdk({ url: server.url });
            await sdk.socket.emit("m", { n: 1 }, topic, { persist: true });
            sdk.close();
            await eventually(() => got.length === 1, "the first message");
            const epoch = client.channel(topic).lastPosition!.epoch;
            client.disconnect();

            if (engine.offline) {
              await server.stop();
              await engine.inject(server, topic, epoch, 1, backlog.count, backlog.data);
              server = await startServer(env, dataDir);
              proxy.retarget(server.port);
            } else {
              await engine.inject(server, topic, epoch, 1, backlog.count, backlog.data);
            }

            const before = rssMB(server.pid);
            let peak = before;
            const watch = setInterval(() => (peak = Math.max(peak, rssMB(server.pid))), 100);
            const started = Date.now();
            await client.connect();
            await eventually(() => got.length >= backlog.count + 1, `all ${backlog.count} messages`, 150_000);
            const elapsed = Date.now() - started;
            clearInterval(watch);
            // Live again afterwards.
            const live = createServerSdk({ url: server.url });
            await live.socket.emit("m", { n: backlog.count + 2 }, topic, { persist: true });
            live.close();
            await eventually(() => got.length === backlog.count + 2, "the live message after recovery");
            console.log(`recovery (${engine.name}, ${transport.name}): ${backlog.count} messages behind caught up in ${elapsed} ms; server RSS ${before.toFixed(0)} MB before, peak ${peak.toFixed(0)} MB`);
            expect(got).toEqual(Array.from({ length: backlog.count + 2 }, (_, k) => k + 1));
            expect(gaps).toBe(0);
            expect(peak - before).toBeLessThan(RSS_BOUND_MB);
          } finally {
            client?.disconnect();
            await proxy.close();
            await server.stop();
            removeDir(dataDir);
          }
        });
      }
    }
  });
}
