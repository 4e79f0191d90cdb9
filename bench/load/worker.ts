// A load-generator process: opens its share of connections, subscribes,
// publishes when told, and reports what it received. Run by bench/run.ts,
// never inside a server process.
import { performance } from "node:perf_hooks";
import { publisher, SAMPLE_EVERY, subscribe, type Counter, type Publisher, type ServerKind, type Subscriber } from "./adapters.js";
import { Histogram } from "./histogram.js";

export interface WorkerConfig {
  kind: ServerKind;
  url: string;
  connections: number;
  /** Index of this worker's first connection among all workers. */
  offset: number;
  /** Connection i uses `${topic}/${Math.floor(i / roomSize)}` when roomSize > 0, else `topic`. */
  topic: string;
  roomSize: number;
  subscribe: boolean;
  publish?: { mode: "window"; window: number } | { mode: "rate"; perSecond: number; count?: number };
  payloadBytes: number;
}

export type ToWorker = { cmd: "measure" } | { cmd: "publish" } | { cmd: "stop-publish" } | { cmd: "rate"; perSecond: number } | { cmd: "report" } | { cmd: "exit" };

export interface WorkerReport {
  received: number;
  published: number;
  histogram: ReturnType<Histogram["toJSON"]>;
}

const config = JSON.parse(process.argv[2]!) as WorkerConfig;
const now = () => performance.timeOrigin + performance.now();

/** `{"n":…,"t":…,"p":"xxx…"}` padded to exactly payloadBytes of JSON. */
function payload(n: number): string {
  const head = `{"n":${n},"t":${now().toFixed(3)},"p":"`;
  return head + "x".repeat(Math.max(0, config.payloadBytes - head.length - 2)) + '"}';
}

let histogram = new Histogram();
let received = 0;
let published = 0;
let measuring = false;
let publishing = false;
const timers: NodeJS.Timeout[] = [];

let seen = 0;
const counter: Counter = {
  count() {
    if (!measuring) return false;
    received++;
    return ++seen % SAMPLE_EVERY === 0;
  },
  sampled(sentAt) {
    histogram.record(now() - sentAt);
  },
};

const topicOf = (i: number) => (config.roomSize > 0 ? `${config.topic}/${Math.floor((config.offset + i) / config.roomSize)}` : config.topic);

const connections: Subscriber[] = [];
let windowPublisher: Publisher | undefined;
async function open(): Promise<void> {
  if (!config.subscribe) {
    windowPublisher = await publisher(config.kind, config.url);
    return;
  }
  const BATCH = 100;
  for (let start = 0; start < config.connections; start += BATCH) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(BATCH, config.connections - start) }, (_, k) => subscribe(config.kind, config.url, topicOf(start + k), counter)),
    );
    connections.push(...batch);
  }
}

function startPublishing(): void {
  publishing = true;
  const spec = config.publish;
  if (!spec) return;
  if (spec.mode === "window") {
    const pub = windowPublisher!;
    for (let w = 0; w < spec.window; w++) {
      void (async () => {
        while (publishing) {
          await pub.publish(topicOf(0), payload(published));
          published++;
        }
      })().catch(() => {}); // in flight when the run ends
    }
    return;
  }
  if (!config.subscribe) {
    // A rate-limited publisher with its own stock client (the steady scenario).
    const pub = windowPublisher!;
    const timer = setInterval(() => {
      if (!publishing || (spec.count !== undefined && published >= spec.count)) return;
      void pub.publish(topicOf(0), payload(published++)).catch(() => {});
    }, 1000 / spec.perSecond);
    timers.push(timer);
    return;
  }
  const interval = 1000 / spec.perSecond;
  connections.forEach((conn, i) => {
    let sent = 0;
    const fire = () => {
      if (!publishing || (spec.count !== undefined && sent >= spec.count)) return;
      sent++;
      conn.send(payload(published++));
    };
    // Spread connections over the interval so a thousand timers do not fire together.
    timers.push(
      setTimeout(() => {
        fire();
        timers.push(setInterval(fire, interval));
      }, Math.random() * interval),
    );
  });
}

process.on("message", (message: ToWorker) => {
  switch (message.cmd) {
    case "measure":
      histogram = new Histogram();
      received = 0;
      measuring = true;
      break;
    case "publish":
      startPublishing();
      break;
    case "stop-publish":
      publishing = false;
      for (const t of timers) clearInterval(t);
      break;
    case "rate":
      // Each member publishes at this rate from now on (the rooms ramp).
      publishing = false;
      for (const t of timers.splice(0)) clearInterval(t);
      if (config.publish?.mode === "rate") config.publish.perSecond = message.perSecond;
      startPublishing();
      break;
    case "report":
      process.send!({ report: { received, published, histogram: histogram.toJSON() } satisfies WorkerReport });
      break;
    case "exit":
      publishing = false;
      for (const t of timers) clearInterval(t);
      for (const c of connections) c.close();
      windowPublisher?.close();
      setTimeout(() => process.exit(0), 100).unref();
      break;
  }
});

open().then(
  () => process.send!({ ready: connections.length }),
  (error: unknown) => {
    process.send!({ error: String((error as Error)?.stack ?? error) });
    process.exit(1);
  },
);
