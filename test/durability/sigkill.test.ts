// Acknowledged means durable, proven with SIGKILL: 16 publishers send
// persisted messages (each retried with the same id until acknowledged)
// while the server is killed and restarted on the same data directory 5
// times; 8 subscribers per transport follow the topic throughout. Every
// acknowledged message must be in history exactly once and reach every
// subscriber exactly once, in order. The run is repeated 3 times.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import type { RealtimeClient } from "../../clients/src/client.js";
import { BrowserClient, NodeClient } from "../helpers/clients.js";
import { LoopbackProxy } from "../helpers/proxy.js";
import { eventually, removeDir, sleep, startServer, type ServerProcess } from "../helpers/server.js";

const PUBLISHERS = 16;
const SUBSCRIBERS_PER_TRANSPORT = 8;
const KILLS = 5;
const TOPIC = "chat/durable";
const ENV = { CHORUS_MAX_PUBLISH_RATE: "0", CHORUS_HEARTBEAT_MS: "1000" };

interface Outcome {
  acknowledged: number;
  retries: number;
  lost: number;
  duplicatedInHistory: number;
  deliveriesMissing: number;
  deliveriesDuplicated: number;
}

async function run(round: number): Promise<Outcome> {
  const dir = mkdtempSync(join(tmpdir(), `chorus-sigkill-${round}-`));
  let server: ServerProcess = await startServer(ENV, dir);
  const proxy = await LoopbackProxy.start(server.port);
  const clients: RealtimeClient[] = [];
  try {
    // Subscribers: what each received, by message id, in order.
    const received: string[][] = [];
    for (let s = 0; s < SUBSCRIBERS_PER_TRANSPORT * 2; s++) {
      const client = s % 2 ? new BrowserClient({ url: proxy.url, token: `sub-${s}` }) : new NodeClient({ url: proxy.url, token: `sub-${s}` });
      clients.push(client);
      const got: string[] = [];
      received.push(got);
      client.channel(TOPIC).on("m", (p) => got.push(p.id)).subscribe();
      await client.channel(TOPIC).ready();
    }

    // Publishers: each sends its messages one after another, retrying a failed one with the same id.
    const acknowledged = new Map<string, number>();
    let retries = 0;
    let publishing = true;
    const publishers = Array.from({ length: PUBLISHERS }, (_, p) => {
      const client = new NodeClient({ url: proxy.url, token: `pub-${p}` });
      clients.push(client);
      return (async () => {
        for (let n = 0; publishing; n++) {
          const id = `p${p}-${n}`;
          for (;;) {
            try {
              const result = await client.channel(TOPIC).publish("m", { p, n }, { persist: true, id });
              acknowledged.set(id, result.position!.seq);
              break;
            } catch {
              retries++;
              await sleep(50);
            }
          }
        }
      })();
    });

    for (let kill = 0; kill < KILLS; kill++) {
      await sleep(300 + Math.random() * 400);
      await server.kill();
      server = await startServer(ENV, dir);
      proxy.retarget(server.port);
      proxy.dropAll(); // connections to the dead node die with it
    }
    await sleep(500);
    publishing = false;
    await Promise.all(publishers);

    // History: every stored message, oldest first.
    const reader = new NodeClient({ url: server.url, token: "reader" });
    clients.push(reader);
    const history: string[] = [];
    for (let before: number | undefined; ; ) {
      const page = await reader.channel(TOPIC).getHistory(1000, before);
      history.push(...page.map((m) => m.id));
      if (page.length < 1000) break;
      before = page.at(-1)!.created_at;
    }
    const inHistory = new Map<string, number>();
    for (const id of history) inHistory.set(id, (inHistory.get(id) ?? 0) + 1);
    const lost = [...acknowledged.keys()].filter((id) => !inHistory.has(id)).length;
    const duplicatedInHistory = [...inHistory.values()].filter((n) => n > 1).length;

    // Deliveries: each subscriber gets every acknowledged message, once.
    // Clients back off after failed reconnects (up to 30 s, with jitter): give them the time.
    const wanted = [...acknowledged.keys()];
    await eventually(() => received.every((got) => got.length >= wanted.length && wanted.every((id) => got.includes(id))), "every subscriber to catch up", 90_000).catch(() => {});
    let deliveriesMissing = 0;
    let deliveriesDuplicated = 0;
    for (const got of received) {
      const seen = new Set<string>();
      for (const id of got) {
        if (seen.has(id)) deliveriesDuplicated++;
        seen.add(id);
      }
      deliveriesMissing += [...acknowledged.keys()].filter((id) => !seen.has(id)).length;
      // In position order: the order history has.
      const order = got.filter((id) => inHistory.has(id));
      expect(order).toEqual(history.filter((id) => seen.has(id)).reverse());
    }
    return { acknowledged: acknowledged.size, retries, lost, duplicatedInHistory, deliveriesMissing, deliveriesDuplicated };
  } finally {
    for (const c of clients) c.disconnect();
    await proxy.close();
    await server.stop();
    removeDir(dir);
  }
}

it(`loses and duplicates nothing acknowledged across ${KILLS} SIGKILLs, 3 runs`, { timeout: 400_000 }, async () => {
  const outcomes: Outcome[] = [];
  for (let round = 1; round <= 3; round++) {
    const outcome = await run(round);
    outcomes.push(outcome);
    console.log(
      `SIGKILL run ${round}: ${outcome.acknowledged} acknowledged (${outcome.retries} failed attempts retried), ${outcome.lost} lost, ${outcome.duplicatedInHistory} duplicated in history; ` +
        `deliveries to ${SUBSCRIBERS_PER_TRANSPORT * 2} subscribers: ${outcome.deliveriesMissing} missing, ${outcome.deliveriesDuplicated} duplicated`,
    );
  }
  for (const o of outcomes) {
    expect(o.acknowledged).toBeGreaterThan(100);
    expect(o).toMatchObject({ lost: 0, duplicatedInHistory: 0, deliveriesMissing: 0, deliveriesDuplicated: 0 });
  }
});
