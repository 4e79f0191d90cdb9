import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterEach, describe, expect, it } from "vitest";
import type { HistoryMessage, RealtimePayload } from "../../clients/src/types.js";
import { NodeClient } from "../helpers/clients.js";
import { natsEngineEnv, NatsServer, natsServerInstalled, startCluster } from "../helpers/nats.js";
import { codeOf, eventually, removeDir, sleep, startServer, type ServerProcess } from "../helpers/server.js";

const installed = natsServerInstalled();

/** Everything a test started, stopped afterwards whatever happened. */
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
});

async function chorusOn(urls: string[], extra: Record<string, string> = {}, onOutput?: (everything: string) => void): Promise<ServerProcess> {
  const node = await startServer(natsEngineEnv(urls.join(","), "faults", { CHORUS_MAX_PUBLISH_RATE: "0", ...extra }), undefined, { onOutput });
  cleanup.push(async () => {
    await node.stop();
    removeDir(node.dataDir);
  });
  return node;
}

/** All of a topic's history, oldest first, paged 1000 at a time. */
async function fullHistory(client: NodeClient, topic: string): Promise<HistoryMessage[]> {
  const all: HistoryMessage[] = [];
  let before: number | undefined;
  for (;;) {
    const page = await client.channel(topic).getHistory(1000, before);
    all.push(...page);
    if (page.length < 1000) return all.reverse();
    before = page[page.length - 1]!.created_at;
  }
}

describe.skipIf(!installed)("the NATS engine under faults (private nats-server processes)", () => {
  it("starts while NATS is unreachable, saying so, and serves once NATS appears", async () => {
    const nats = await NatsServer.create("late");
    cleanup.push(() => nats.destroy());
    let said = "";
    const starting = chorusOn([nats.url], {}, (everything) => (said = everything));
    // NATS comes up only once the node has tried it and said it is unreachable (however slowly the node started).
    await eventually(() => /NATS unreachable/.test(said), "the node to find NATS unreachable", 20_000);
    await nats.start();
    const node = await starting;
    expect(node.output()).toMatch(/NATS unreachable at nats:\/\/127\.0\.0\.1:\d+ .*retrying in 2 s/);
    const client = new NodeClient({ url: node.url });
    const sent = await client.channel("chat/late").publish("m", 1, { persist: true });
    expect(sent.position?.seq).toBe(1);
    client.disconnect();
  });

  it("passes credentials through, and brings the stream to the configured retention at start-up", async () => {
    const nats = await NatsServer.create("auth", undefined, ["--auth", "s3cret-token"]);
    cleanup.push(() => nats.destroy());
    await nats.start();
    const topic = "chat/retained";
    const first = await chorusOn([nats.url], { NATS_TOKEN: "s3cret-token", CHORUS_RETENTION: "**=count:5" });
    const client = new NodeClient({ url: first.url });
    for (let n = 0; n < 8; n++) await client.channel(topic).publish("m", n, { persist: true });
    expect((await client.channel(topic).getHistory()).map((m) => m.data)).toEqual([7, 6, 5, 4, 3]);
    client.disconnect();
    await first.stop();

    const second = await chorusOn([nats.url], { NATS_TOKEN: "s3cret-token", CHORUS_RETENTION: "**=count:3" });
    expect(second.output()).toContain("faults-messages updated");
    const again = new NodeClient({ url: second.url });
    expect((await again.channel(topic).getHistory()).map((m) => m.data)).toEqual([7, 6, 5]);
    again.disconnect();
  });

  it("NATS stopped under a running node: publishes fail fast with UNAVAILABLE; after NATS restarts, the node recovers by itself", async () => {
    const nats = await NatsServer.create("restart");
    cleanup.push(() => nats.destroy());
    await nats.start();
    const node = await chorusOn([nats.url]);
    const topic = "chat/outage";
    const listener = new NodeClient({ url: node.url });
    const publisher = new NodeClient({ url: node.url });
    cleanup.push(async () => (listener.disconnect(), publisher.disconnect()));
    const got: number[] = [];
    listener.channel(topic).on("m", ({ data }) => got.push(data)).subscribe();
    await listener.channel(topic).ready();
    await publisher.channel(topic).publish("m", 0, { persist: true });
    await eventually(() => got.length === 1, "the first message");
    const ready = () => fetch(`${node.url}/readyz`).then(async (r) => ({ ...((await r.json()) as object), http: r.status }));
    expect(await ready()).toMatchObject({ http: 200, status: "ready", engine: true, database: true, draining: false });

    await nats.stop();
    await eventually(() => node.output().includes("NATS connection lost"), "the node to notice", 5_000);
    // Alive, but not ready: a load balancer reading /readyz sends new clients elsewhere.
    expect(await ready()).toMatchObject({ http: 503, status: "not ready", engine: false });
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
    const started = Date.now();
    expect(await codeOf(publisher.channel(topic).publish("m", -1, { persist: true }))).toBe("Unavailable");
    expect(await codeOf(publisher.channel(topic).publish("typing", -1))).toBe("Unavailable");
    expect(await codeOf(publisher.channel(topic).getHistory())).toBe("Unavailable");
    expect(Date.now() - started).toBeLessThan(1000);
    // The clients' own sessions with the node stay up throughout.
    expect(listener.status).toBe("connected");
    // A subscription asked for now cannot start yet: it says so, and is tried again by itself.
    const late: number[] = [];
    const lateStatus: string[] = [];
    listener.channel("chat/outage-late").on("m", ({ data }) => late.push(data)).subscribe((s) => lateStatus.push(s));
    expect(await codeOf(listener.channel("chat/outage-late").ready())).toBe("Unavailable");

    await nats.start();
    await eventually(() => node.output().includes("NATS connection back"), "the node to reconnect", 10_000);
    expect(await ready()).toMatchObject({ http: 200, engine: true });
    for (let n = 1; n <= 3; n++) await publisher.channel(topic).publish("m", n, { persist: true });
    await eventually(() => got.length === 4, "delivery after the restart", 5_000);
    expect(got).toEqual([0, 1, 2, 3]);
    await eventually(() => listener.channel("chat/outage-late").subscribed, "the late subscription to start", 10_000);
    await publisher.channel("chat/outage-late").publish("m", 7, { persist: true });
    await eventually(() => late.length === 1, "delivery on the late subscription");
    // Refused while NATS was away (once per retry: how many depends on how long it took to return), then subscribed once.
    expect(lateStatus.at(-1)).toBe("SUBSCRIBED");
    expect(lateStatus.slice(0, -1).length).toBeGreaterThanOrEqual(1);
    expect(new Set(lateStatus.slice(0, -1))).toEqual(new Set(["CHANNEL_ERROR"]));
    expect((await publisher.channel(topic).getHistory()).map((m) => m.data)).toEqual([3, 2, 1, 0]);
  });

  it(
    "3-node cluster, replicas 3: one NATS node killed while a publisher sends persisted messages; every acknowledged message is delivered and in history, none twice",
    { timeout: 90_000 },
    async () => {
      const cluster = await startCluster(3);
      cleanup.push(async () => void (await Promise.all(cluster.map((s) => s.destroy()))));
      const urls = cluster.map((s) => s.url);
      // Two Chorus nodes: the subscriber's is not the publisher's.
      const [pubNode, subNode] = await Promise.all([chorusOn(urls, { CHORUS_NATS_REPLICAS: "3" }), chorusOn(urls, { CHORUS_NATS_REPLICAS: "3" })]);
      const topic = "orders/stream";
      const subscriber = new NodeClient({ url: subNode.url });
      const publisher = new NodeClient({ url: pubNode.url });
      cleanup.push(async () => (subscriber.disconnect(), publisher.disconnect()));
      const delivered: RealtimePayload[] = [];
      subscriber.channel(topic).on("m", (p) => delivered.push(p)).subscribe();
      await subscriber.channel(topic).ready();

      const acked = new Set<string>();
      let ackedAfterKill = 0;
      let killed = false;
      let failures = 0;
      let stop = false;
      const publishing = (async () => {
        for (let i = 0; !stop; i++) {
          const id = `m-${i}`;
          // Retry with the same id until acknowledged: the stream stores it once.
          for (let attempt = 0; ; attempt++) {
            try {
              await publisher.channel(topic).publish("m", { i }, { persist: true, id });
              acked.add(id);
              if (killed) ackedAfterKill++;
              break;
            } catch {
              failures++;
              if (attempt > 100) throw new Error(`${id} never acknowledged`);
              await sleep(100);
            }
          }
          await sleep(5);
        }
      })();

      // Enough on either side of the failover, however fast this machine publishes today.
      await eventually(() => acked.size >= 30, "30 messages acknowledged before the kill", 30_000);
      // Kill the stream's leader: the worst moment for an in-flight publish.
      const admin = await connect({ servers: urls });
      const leader = (await (await jetstreamManager(admin)).streams.info("faults-messages")).cluster?.leader;
      await admin.close();
      const victim = cluster.find((s) => s.name === leader) ?? cluster[0]!;
      await victim.kill();
      killed = true;
      await eventually(() => ackedAfterKill >= 50, "50 messages acknowledged after the kill", 45_000);
      stop = true;
      await publishing;

      const ids = (list: Array<{ id: string }>) => list.map((m) => m.id);
      await eventually(() => [...acked].every((id) => delivered.some((p) => p.id === id)), "every acknowledged message delivered", 20_000);
      const history = await fullHistory(publisher, topic);
      expect(new Set(ids(delivered)).size).toBe(delivered.length); // none twice
      expect(new Set(ids(history)).size).toBe(history.length);
      const stored = new Set(ids(history));
      expect([...acked].filter((id) => !stored.has(id))).toEqual([]);
      // Delivered in the topic's order, with contiguous positions.
      expect(delivered.map((p) => p.position!.seq)).toEqual(delivered.map((_, k) => k + 1));
      console.log(`cluster failover: ${acked.size} acknowledged, ${failures} failed attempts retried, ${delivered.length} delivered, ${history.length} in history (killed ${victim.name})`);
    },
  );
});
