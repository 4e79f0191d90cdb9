// The built-in page served at `/`: Chorus working, without writing code.
// It uses the browser SDK as an app would, plus the node's own endpoints
// (ServerService for the demo table, /_chorus/stats for the inspector).
// Bundled into the server by server/build.mjs.
import type { DescMessage, DescMethodUnary, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { RealtimeClient, type Channel, type ConnectionStatus, type HistoryMessage, type RealtimePayload } from "../../clients/src/browser.js";
import { FetchCalls } from "../../clients/src/fetch-calls.js";
import { ServerService } from "../../gen/chorus/v1/server_pb.js";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const url = location.origin;
const stored = (key: string) => localStorage.getItem(`chorus.${key}`) ?? "";
const store = (key: string, value: string) => (value ? localStorage.setItem(`chorus.${key}`, value) : localStorage.removeItem(`chorus.${key}`));
const DEMO_TABLE = "demo_items";

/** A line in a list, newest at the top (or bottom), the list kept short. */
function addLine(list: HTMLElement, text: string, kind = "", atTop = false, max = 200): void {
  const line = document.createElement("li");
  line.textContent = text;
  if (kind) line.className = kind;
  if (atTop) list.prepend(line);
  else list.append(line);
  while (list.children.length > max) (atTop ? list.lastElementChild : list.firstElementChild)!.remove();
}

const show = (value: unknown) => (typeof value === "string" ? value : JSON.stringify(value));

// ---- connection ----

let realtime = newClient();

function newClient(): RealtimeClient {
  const token = stored("token");
  const client = new RealtimeClient({ url, ...(token ? { token } : {}) });
  client.onStatusChange((status: ConnectionStatus, error) => {
    $("status").textContent = status;
    $("status").dataset.status = status;
    // A node that verifies tokens refuses us without one: ask for it.
    const refused = error?.code === 16; // UNAUTHENTICATED
    $("token-form").hidden = !refused && !stored("token");
    if (refused) $("token-why").textContent = error.rawMessage;
  });
  client.onError(() => {}); // shown in the panels that made the call
  client.connect().catch(() => {});
  return client;
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  store("token", $<HTMLInputElement>("token").value.trim());
  channel?.unsubscribe().catch(() => {});
  channel = undefined;
  realtime.disconnect();
  realtime = newClient();
});

// ---- a topic: messages in and out, presence, history ----

let channel: Channel | undefined;
let oldestShown: number | undefined;

$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  void join($<HTMLInputElement>("topic").value.trim());
});

async function join(topic: string): Promise<void> {
  if (channel) await channel.unsubscribe().catch(() => {});
  for (const id of ["messages", "members", "history", "stream-out"]) $(id).replaceChildren();
  oldestShown = undefined;
  const ch = realtime.channel(topic);
  channel = ch;
  ch.on("*", (p: RealtimePayload) => {
    if (p.type === "presence") return renderMembers(ch);
    if (p.type === "stream") return;
    addLine($("messages"), `← ${p.event} ${show(p.data)}${p.userId ? ` (${p.userId})` : ""}`, "in");
  });
  ch.onStream((s) => {
    $("stream-out").textContent = s.text + (s.done ? `  [${s.status}]` : " …");
  });
  ch.subscribe((status, error) => {
    $("joined").textContent = error ? `${status}: ${error.rawMessage}` : status === "SUBSCRIBED" ? `joined ${topic}` : status.toLowerCase();
    $("joined").dataset.state = status;
  });
  for (const el of document.querySelectorAll<HTMLFieldSetElement>("fieldset.needs-topic")) el.disabled = false;
}

function renderMembers(ch: Channel): void {
  if (ch !== channel) return;
  const members = Object.values(ch.presence()).flat();
  $("members").replaceChildren();
  for (const m of members) addLine($("members"), `${show((m.data as { name?: string })?.name ?? m.userId)}  ·  ${m.userId}`);
  $("member-count").textContent = String(members.length);
}

$("send-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (!channel) return;
  const event = $<HTMLInputElement>("event").value.trim() || "message";
  let data: unknown;
  try {
    data = JSON.parse($<HTMLTextAreaElement>("data").value);
  } catch {
    data = $<HTMLTextAreaElement>("data").value;
  }
  const persist = $<HTMLInputElement>("persist").checked;
  channel.publish(event, data, { persist }).then(
    (r) => addLine($("messages"), `→ ${event} ${show(data)}${r.position ? ` (stored at ${r.position.seq})` : ""}`, "out"),
    (error: Error) => addLine($("messages"), `✗ ${error.message}`, "error"),
  );
});

$("track-form").addEventListener("submit", (e) => {
  e.preventDefault();
  channel?.track({ name: $<HTMLInputElement>("name").value.trim() || "someone" }).catch((error: Error) => addLine($("members"), `✗ ${error.message}`, "error"));
});

async function loadHistory(older: boolean): Promise<void> {
  if (!channel) return;
  try {
    const page: HistoryMessage[] = await channel.getHistory(10, older ? oldestShown : undefined);
    if (!older) $("history").replaceChildren();
    for (const m of page) addLine($("history"), `#${m.seq} ${m.event} ${show(m.data)}`);
    if (page.length > 0) oldestShown = page[page.length - 1]!.created_at;
    $<HTMLButtonElement>("history-older").disabled = page.length < 10;
  } catch (error) {
    addLine($("history"), `✗ ${(error as Error).message}`, "error");
  }
}
$("history-load").addEventListener("click", () => void loadHistory(false));
$("history-older").addEventListener("click", () => void loadHistory(true));

// ---- an AI stream into the topic ----

const REPLY = "Chorus streams each token to every viewer as it is produced; a viewer who joins late gets the text so far, and every stream ends, even when its producer goes away.";

$("stream-start").addEventListener("click", async () => {
  if (!channel) return;
  const writer = channel.stream("answer", { meta: { model: "demo" } });
  try {
    for (const word of REPLY.split(/(?<= )/)) {
      writer.write(word);
      await new Promise((r) => setTimeout(r, 40));
    }
    await writer.end();
  } catch (error) {
    $("stream-out").textContent = `✗ ${(error as Error).message}`;
  }
});

// ---- the node's own endpoints (ServerService: an API key, unless in development mode) ----

const calls = new FetchCalls(url);
const backendHeaders = (): Record<string, string> => (stored("apiKey") ? { authorization: `Bearer ${stored("apiKey")}` } : {});

/** A ServerService call. Generous: the first one that needs the database opens it (the embedded one takes seconds). */
function call<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, input: MessageInitShape<I>): Promise<MessageShape<O>> {
  return calls.unary(method, input, backendHeaders(), AbortSignal.timeout(60_000));
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  store("apiKey", $<HTMLInputElement>("api-key").value.trim());
  void refreshStats();
  void openTable();
});

// ---- a demo table, live ----

type Row = { id: number; label: string; qty: number };
const rows = new Map<number, Row>();
let tableChannel: Channel | undefined;

function renderRows(): void {
  const body = $("rows");
  body.replaceChildren();
  for (const row of [...rows.values()].sort((a, b) => a.id - b.id)) {
    const tr = document.createElement("tr");
    for (const value of [row.id, row.label, row.qty]) tr.append(Object.assign(document.createElement("td"), { textContent: String(value) }));
    body.append(tr);
  }
}

async function openTable(): Promise<void> {
  $("table-state").textContent = "opening the database…";
  try {
    await call(ServerService.method.exec, { sql: `CREATE TABLE IF NOT EXISTS ${DEMO_TABLE} (id SERIAL PRIMARY KEY, label TEXT NOT NULL, qty INTEGER NOT NULL DEFAULT 1)` });
    if (!tableChannel) {
      tableChannel = realtime.channel(DEMO_TABLE);
      tableChannel
        .on("INSERT", ({ data }) => (rows.set((data as Row).id, data as Row), renderRows()))
        .on("UPDATE", ({ data }) => (rows.set((data as Row).id, data as Row), renderRows()))
        .on("DELETE", ({ old }) => (rows.delete((old as Row).id), renderRows()))
        .subscribe();
      await tableChannel.ready();
    }
    const result = await call(ServerService.method.query, { sql: `SELECT id, label, qty FROM ${DEMO_TABLE} ORDER BY id`, params: "[]" });
    rows.clear();
    for (const row of JSON.parse(result.rows) as Row[]) rows.set(row.id, row);
    renderRows();
    $("table-state").textContent = `live: INSERT, UPDATE and DELETE on ${DEMO_TABLE} arrive as they commit`;
    for (const b of document.querySelectorAll<HTMLButtonElement>("#table-panel button.row-op")) b.disabled = false;
  } catch (error) {
    $("table-state").textContent = `✗ ${(error as Error).message}`;
    $("key-form").hidden = false;
  }
}

const FRUIT = ["apple", "pear", "plum", "fig", "kiwi", "lime", "mango", "peach"];
const rowOps: Record<string, () => Promise<unknown>> = {
  insert: () => call(ServerService.method.query, { sql: `INSERT INTO ${DEMO_TABLE} (label, qty) VALUES ($1, $2)`, params: JSON.stringify([FRUIT[Math.floor(Math.random() * FRUIT.length)], 1]) }),
  update: () => call(ServerService.method.query, { sql: `UPDATE ${DEMO_TABLE} SET qty = qty + 1 WHERE id = (SELECT min(id) FROM ${DEMO_TABLE})`, params: "[]" }),
  delete: () => call(ServerService.method.query, { sql: `DELETE FROM ${DEMO_TABLE} WHERE id = (SELECT max(id) FROM ${DEMO_TABLE})`, params: "[]" }),
};
for (const [op, run] of Object.entries(rowOps)) {
  $(`row-${op}`).addEventListener("click", () => void run().catch((error: Error) => ($("table-state").textContent = `✗ ${error.message}`)));
}
$("table-open").addEventListener("click", () => void openTable());

// ---- the node ----

let lastPublished: { count: number; at: number } | undefined;

async function refreshStats(): Promise<void> {
  try {
    const response = await fetch(`${url}/_chorus/stats`, { headers: backendHeaders() });
    const stats = await response.json();
    if (!response.ok) throw new Error(stats.message ?? `HTTP ${response.status}`);
    const now = Date.now();
    const rate = lastPublished ? ((stats.published - lastPublished.count) * 1000) / Math.max(1, now - lastPublished.at) : 0;
    lastPublished = { count: stats.published, at: now };
    const facts: Array<[string, string]> = [
      ["node", stats.nodeId],
      ["connections", `${stats.sessions.total} (${stats.sessions.connect} bidi, ${stats.sessions.listen} browser, ${stats.sessions.sse} SSE)`],
      ["topics", String(stats.topics)],
      ["messages per second", rate.toFixed(1)],
      ["messages published", String(stats.published)],
      ["engine", stats.engine],
      ["database", `${stats.database.kind}${stats.database.open ? `, open, ${stats.database.changesStored} changes stored` : ", not opened yet"}`],
      ["mode", stats.developmentMode ? "development (no auth)" : "tokens verified"],
    ];
    $("facts").replaceChildren(...facts.flatMap(([k, v]) => [Object.assign(document.createElement("dt"), { textContent: k }), Object.assign(document.createElement("dd"), { textContent: v, id: `fact-${k.replace(/ /g, "-")}` })]));
    $("topics").replaceChildren();
    for (const t of stats.busiestTopics as Array<{ topic: string; subscribers: number }>) addLine($("topics"), `${t.topic}: ${t.subscribers} subscriber${t.subscribers === 1 ? "" : "s"}`);
    $("key-form").hidden = true;
  } catch (error) {
    $("facts").replaceChildren(Object.assign(document.createElement("dd"), { textContent: `✗ ${(error as Error).message}` }));
    $("key-form").hidden = false;
  }
}
setInterval(() => void refreshStats(), 1000);
void refreshStats();
void join($<HTMLInputElement>("topic").value.trim());
