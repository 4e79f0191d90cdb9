// /metrics in Prometheus' text format: what an operator graphs (sessions,
// subscriptions, messages, command latencies by method and code,
// refusals), with no user data in any label; the internal port; and the
// Grafana dashboard in the repository, whose queries use exactly the names
// a node exports.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RealtimeService } from "../../gen/chorus/v1/realtime_pb.js";
import { createServerSdk } from "../../clients/src/server-sdk.js";
import { NodeClient } from "../helpers/clients.js";
import { freePort } from "../helpers/nats.js";
import { codeOf, eventually, ROOT, serverForSuite } from "../helpers/server.js";
import { SseReader } from "../helpers/sse.js";

/** The samples of a scrape: `name{labels} value` → value, by the whole series text. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}
const scrape = async (url: string) => {
  const response = await fetch(`${url}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
};

describe("metrics", () => {
  const server = serverForSuite({ CHORUS_MAX_CONNECTIONS: "4" });
  const secret = `s${Math.random().toString(36).slice(2, 10)}`;

  it("counts sessions, subscriptions, messages, commands by method and code, and refusals; no label holds a topic or a user", async () => {
    const topic = `chat/metrics-${secret}`;
    const ada = new NodeClient({ url: server.url, token: `ada-${secret}` });
    const got: unknown[] = [];
    ada.channel(topic).on("m", ({ data }) => got.push(data)).subscribe();
    await ada.channel(topic).ready();
    await ada.channel(topic).publish("m", 1, { persist: true });
    const sdk = createServerSdk({ url: server.url });
    await sdk.socket.emit("m", 2, topic, { persist: true });
    await eventually(() => got.length === 2, "both messages");
    const sse = new SseReader(`${server.url}/sse?topics=${topic}`);
    await eventually(() => sse.named("system:subscribed").length === 1, "the SSE stream");
    const rpc = createClient(RealtimeService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
    await rpc.getHistory({ topic, limit: 5 });
    expect(await codeOf(rpc.getHistory({ topic, limit: 5000 }))).toBe("InvalidArgument");
    // Two sessions open now (bidi, SSE): two more fill the node's four, the next is refused.
    const more = [new NodeClient({ url: server.url }), new NodeClient({ url: server.url })];
    await Promise.all(more.map((c) => c.connect()));
    const refused = new NodeClient({ url: server.url, reconnect: false });
    expect(await codeOf(refused.connect())).toBe("ResourceExhausted");

    const text = await scrape(server.url);
    const s = samples(text);
    expect(s.get('chorus_sessions{kind="connect"}')).toBe(3);
    expect(s.get('chorus_sessions{kind="sse"}')).toBe(1);
    expect(s.get('chorus_sessions_opened_total{kind="connect"}')).toBeGreaterThanOrEqual(3);
    expect(s.get('chorus_sessions_refused_total{reason="connection_limit"}')).toBe(1);
    expect(s.get("chorus_subscriptions")).toBe(2);
    expect(s.get("chorus_topics")).toBe(1);
    expect(s.get("chorus_messages_published_total")).toBe(2);
    expect(s.get("chorus_frames_sent_total")).toBeGreaterThan(4);
    expect(s.get('chorus_command_duration_seconds_count{method="Subscribe",code="ok"}')).toBe(1);
    expect(s.get('chorus_command_duration_seconds_count{method="Publish",code="ok"}')).toBe(1);
    expect(s.get('chorus_command_duration_seconds_count{method="GetHistory",code="ok"}')).toBe(1);
    expect(s.get('chorus_command_duration_seconds_count{method="GetHistory",code="invalid_argument"}')).toBe(1);
    expect(s.get("chorus_engine_publish_duration_seconds_count")).toBe(2);
    expect(s.get("chorus_fanout_flush_duration_seconds_count")).toBeGreaterThan(0);
    expect(s.get("chorus_engine_connected")).toBe(1);
    expect(s.get("chorus_ready")).toBe(1);
    // Histograms, not summaries; Node's own metrics beside ours.
    for (const name of ["chorus_command_duration_seconds", "chorus_engine_publish_duration_seconds", "chorus_fanout_flush_duration_seconds"]) {
      expect(text).toContain(`# TYPE ${name} histogram`);
    }
    expect(s.has("process_cpu_user_seconds_total")).toBe(true);
    expect(s.has("nodejs_eventloop_lag_p99_seconds")).toBe(true);
    // Cardinality: no topic, no user id, anywhere.
    expect(text).not.toContain(secret);

    // A session that ends says how.
    for (const c of more) c.disconnect();
    let after = samples(await scrape(server.url));
    for (let i = 0; i < 40 && (after.get('chorus_sessions_closed_total{kind="connect",reason="client"}') ?? 0) < 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = samples(await scrape(server.url));
    }
    expect(after.get('chorus_sessions_closed_total{kind="connect",reason="client"}')).toBe(2);
    sse.close();
    ada.disconnect();
    refused.disconnect();
    sdk.close();
  });

  it("the Grafana dashboard asks only for names a node exports", async () => {
    const dashboard = JSON.parse(readFileSync(join(ROOT, "deploy/grafana/chorus.json"), "utf8")) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    // Every family a node registers is announced by its TYPE line, samples or not yet.
    const families = new Map([...(await scrape(server.url)).matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const asked = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((t) => t.expr.match(/\b(?:chorus|nodejs|process)_[a-z0-9_]+/g) ?? [])));
    expect(asked.size).toBeGreaterThan(15);
    const exported = (name: string) => families.has(name) || families.get(name.replace(/_(bucket|sum|count)$/, "")) === "histogram";
    const missing = [...asked].filter((name) => !exported(name));
    expect(missing).toEqual([]);
  });
});

describe("the internal port", async () => {
  const internalPort = await freePort();
  const server = serverForSuite({ CHORUS_INTERNAL_PORT: String(internalPort) });

  it("serves /metrics, /readyz and the admin RPCs there only; the public port keeps /healthz and the rest", async () => {
    expect((await fetch(`${server.url}/metrics`)).status).toBe(404);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(404);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const internal = `http://127.0.0.1:${internalPort}`;
    expect((await scrape(internal)).length).toBeGreaterThan(0);
    expect(await (await fetch(`${internal}/readyz`)).json()).toMatchObject({ status: "ready" });
    expect((await fetch(`${internal}/anything`)).status).toBe(404);

    // The admin API: refused on the public port (a gRPC client hears UNIMPLEMENTED), answered on the internal one.
    const client = new NodeClient({ url: server.url, token: "admin-seen" });
    await client.connect();
    const outside = createServerSdk({ url: server.url, onError: () => {} });
    expect(await codeOf(outside.connections.list())).toBe("Unimplemented");
    expect(await codeOf(outside.presence("chat/x"))).toBe("Unimplemented");
    const inside = createServerSdk({ url: internal });
    expect((await inside.connections.list()).connections.map((c) => c.userId)).toEqual(["admin-seen"]);
    expect(await inside.connections.disconnectUser("admin-seen", { reconnect: false })).toBe(1);
    // Everything else is the public port's: an emit on the internal port is not served.
    const wrongPort = createServerSdk({ url: internal, onError: () => {} });
    expect(await codeOf(wrongPort.socket.emit("m", 1, "chat/x"))).not.toBe("OK");
    wrongPort.close();
    outside.close();
    inside.close();
    client.disconnect();
  });
});
