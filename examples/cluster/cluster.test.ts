// The scale-out recipe, run as the README gives it: three NATS servers
// (replicas 3), three Chorus nodes and HAProxy in front. Clients of both
// kinds connect through the balancer; one Chorus node is restarted (it
// drains on SIGTERM) and then one NATS server; nothing persisted is lost
// or repeated.
import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BrowserClient, NodeClient } from "../../test/helpers/clients.js";
import { eventually, sleep } from "../../test/helpers/server.js";
import { startCluster, type RunningCluster } from "./cluster.js";

const installed = (command: string) => spawnSync(command, ["--version"]).status === 0 || spawnSync(command, ["-v"]).status === 0;
const ready = installed("nats-server") && installed("haproxy");
if (!ready) {
  const message = "\n*** nats-server or haproxy not found: the cluster example's test is SKIPPED (apt-get install haproxy) ***\n";
  if (process.env.CI === "true") throw new Error(message);
  console.warn(message);
}

describe.runIf(ready)("the cluster example: three NATS servers, three Chorus nodes, HAProxy", () => {
  let cluster: RunningCluster;
  beforeAll(async () => {
    cluster = await startCluster();
  }, 90_000);
  afterAll(() => cluster?.stop());

  it("loses and repeats nothing persisted while a Chorus node and then a NATS server restart", { timeout: 120_000 }, async () => {
    const topic = "chat/cluster";
    const viewers = [new NodeClient({ url: cluster.url, token: "bidi-viewer" }), new BrowserClient({ url: cluster.url, token: "browser-viewer" })];
    const got: number[][] = viewers.map(() => []);
    viewers.forEach((v, i) => v.channel(topic).on("m", ({ data }) => got[i]!.push(data)).subscribe());
    await Promise.all(viewers.map((v) => v.channel(topic).ready()));
    const publisher = new NodeClient({ url: cluster.url, token: "publisher" });
    let sent = 0;
    // Each message is published until acknowledged, under its own id: stored once however often it is tried.
    const publish = async (count: number) => {
      for (let k = 0; k < count; k++) {
        const n = ++sent;
        for (let attempt = 0; ; attempt++) {
          try {
            await publisher.channel(topic).publish("m", n, { persist: true, id: `m-${n}` });
            break;
          } catch (error) {
            if (attempt > 100) throw error;
            await sleep(200);
          }
        }
      }
    };

    await publish(30);
    // A deploy: one node drains (its clients move through the balancer to the others) and comes back.
    const draining = cluster.chorus[0]!.stop();
    await publish(30);
    await draining;
    await cluster.chorus[0]!.start();
    await publish(20);
    // A NATS server goes away and returns; the stream has two more replicas.
    await cluster.nats[1]!.stop();
    await publish(20);
    await cluster.nats[1]!.start();
    await publish(20);

    const all = Array.from({ length: sent }, (_, k) => k + 1);
    for (let i = 0; i < viewers.length; i++) {
      await eventually(() => got[i]!.length >= sent, `viewer ${i} to have all ${sent}`, 30_000).catch((error: Error) => {
        const missing = all.filter((n) => !got[i]!.includes(n));
        throw new Error(`${error.message}: it has ${got[i]!.length}, missing ${missing.join(",")}; status ${viewers[i]!.status}, position ${JSON.stringify(viewers[i]!.channel(topic).lastPosition)}`);
      });
      await sleep(200);
      expect(got[i]).toEqual(all);
    }
    const history = await publisher.channel(topic).getHistory(1000);
    expect(history.map((m) => m.data).reverse()).toEqual(all);
    console.log(`cluster: ${sent} messages persisted through a Chorus restart and a NATS restart; each viewer got ${got.map((g) => g.length).join(" and ")}, in order, none twice`);
    for (const c of [...viewers, publisher]) c.disconnect();
  });
});
