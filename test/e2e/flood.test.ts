import { Code } from "@connectrpc/connect";
import { execFile } from "node:child_process";
import { expect, it } from "vitest";
import type { RealtimeClient } from "../../clients/src/client.js";
import { NodeClient } from "../helpers/clients.js";
import { ROOT, serverForSuite, sleep } from "../helpers/server.js";

const server = serverForSuite({ CHORUS_MAX_CONNECTIONS: "150", CHORUS_MAX_PUBLISH_RATE: "50" });

/** Publish→receive latency of a bystander pair, at 20 messages per second. */
async function bystanderLatency(pub: RealtimeClient, sub: RealtimeClient, topic: string, count: number): Promise<{ p50: number; p99: number; max: number }> {
  const sent = new Map<number, number>();
  const latencies: number[] = [];
  const listener = ({ data }: { data: { n: number } }) => latencies.push(performance.now() - sent.get(data.n)!);
  sub.channel(topic).on("m", listener);
  for (let n = 0; n < count; n++) {
    sent.set(n, performance.now());
    await pub.channel(topic).publish("m", { n });
    await sleep(50);
  }
  await sleep(200);
  sub.channel(topic).off("m", listener);
  expect(latencies).toHaveLength(count); // nothing lost for the bystander
  latencies.sort((a, b) => a - b);
  const at = (q: number) => Math.round(latencies[Math.min(count - 1, Math.floor(q * count))]! * 10) / 10;
  return { p50: at(0.5), p99: at(0.99), max: at(1) };
}

it("holds maxConnections and the publish rate under a flood while other clients lose nothing", { timeout: 60_000 }, async () => {
  const topic = "chat/bystander";
  const pub = new NodeClient({ url: server.url, token: "calm-pub" });
  const sub = new NodeClient({ url: server.url, token: "calm-sub" });
  sub.channel(topic).subscribe();
  await sub.channel(topic).ready();
  const before = await bystanderLatency(pub, sub, topic, 40);

  // The flood, from its own process (so it does not share the bystanders' event loop):
  // 300 connection attempts against a limit of 150, then 20 admitted clients publishing as fast as they can.
  const flood = `
    import { RealtimeClient } from "./clients/src/node.ts";
    const attempts = Array.from({ length: 300 }, (_, i) => new RealtimeClient({ url: ${JSON.stringify(server.url)}, token: "flood-" + i, reconnect: false }));
    const results = await Promise.allSettled(attempts.map((c) => c.connect()));
    const admitted = attempts.filter((_, i) => results[i].status === "fulfilled");
    const refused = results.filter((r) => r.status === "rejected").map((r) => r.reason.code);
    const started = performance.now();
    const publishes = await Promise.allSettled(admitted.slice(0, 20).flatMap((c) => Array.from({ length: 300 }, (_, n) => c.channel("chat/flood").publish("m", { n }))));
    const elapsedMs = performance.now() - started;
    const health = await (await fetch(${JSON.stringify(server.url)} + "/healthz")).json();
    console.log(JSON.stringify({
      admitted: admitted.length, refused, sessions: health.sessions,
      accepted: publishes.filter((r) => r.status === "fulfilled").length, publishes: publishes.length,
      publishRefusal: publishes.find((r) => r.status === "rejected")?.reason.code, elapsedMs,
    }));
    for (const c of attempts) c.disconnect();
  `;
  const flooding = new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ["--import", "tsx", "--input-type=module", "-e", flood], { cwd: ROOT, timeout: 30_000 }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
  );
  await sleep(300); // the flood is under way
  const during = await bystanderLatency(pub, sub, topic, 40);
  const result = JSON.parse(await flooding) as { admitted: number; refused: number[]; sessions: number; accepted: number; publishes: number; publishRefusal: number; elapsedMs: number };

  console.log(
    `flood: ${result.admitted} of 300 connection attempts admitted (limit 150, 2 bystanders), ${result.refused.length} refused; ` +
      `${result.accepted} of ${result.publishes} flood publishes accepted (limit 50/s per user, one user per connection); ` +
      `bystander publish→receive latency before p50 ${before.p50} ms p99 ${before.p99} ms max ${before.max} ms, ` +
      `during p50 ${during.p50} ms p99 ${during.p99} ms max ${during.max} ms`,
  );
  expect(result.admitted).toBe(148);
  expect(result.sessions).toBeLessThanOrEqual(150);
  expect(new Set(result.refused)).toEqual(new Set([Code.ResourceExhausted]));
  // A token bucket admits at most its burst plus the rate times the time, per user.
  expect(result.accepted).toBeGreaterThanOrEqual(20 * 50);
  expect(result.accepted).toBeLessThanOrEqual(20 * (50 + Math.ceil((50 * result.elapsedMs) / 1000)));
  expect(result.accepted).toBeLessThan(result.publishes);
  expect(result.publishRefusal).toBe(Code.ResourceExhausted);
  // The bystanders lost nothing (bystanderLatency checks it); their latency under the flood is the
  // benchmark's to measure (`npm run bench`, its flood section), as a ratio to a quiet node.
  for (const c of [pub, sub]) c.disconnect();
});
