// One component per hook, each rendering what a test reads back.
import { useChannel, useConnectionStatus, useHistory, usePresence, useStream, useTable } from "@chorus/react";
import { useState } from "react";
import { useAuth } from "./auth.js";

interface ChatMessage {
  text: string;
}

export function Status() {
  return <p id="status">{useConnectionStatus()}</p>;
}

export function Messages({ topic }: { topic: string }) {
  const [texts, setTexts] = useState<string[]>([]);
  // A new handler every render: must not subscribe again.
  const { state } = useChannel<{ message: ChatMessage }>(topic, { message: ({ data }) => setTexts((t) => [...t, data.text]) });
  return (
    <div id="messages" data-state={state}>
      {texts.map((t, i) => (
        <p key={i}>{t}</p>
      ))}
    </div>
  );
}

export function Members({ topic }: { topic: string }) {
  const { user } = useAuth();
  const [cursor, setCursor] = useState(0);
  const { members, users } = usePresence<{ name: string; cursor: number }>(topic, { name: user.name, cursor });
  return (
    <div id="members" data-users={users.slice().sort().join(",")}>
      {members
        .map((m) => `${m.data.name}@${m.data.cursor}`)
        .sort()
        .map((m) => (
          <span key={m}>{m} </span>
        ))}
      <button id="move" onClick={() => setCursor((c) => c + 1)}>
        move
      </button>
    </div>
  );
}

export function History({ topic }: { topic: string }) {
  const { messages, loading, hasMore, loadMore } = useHistory<ChatMessage>(topic, 5);
  return (
    <div id="history" data-loading={String(loading)} data-more={String(hasMore)} data-texts={messages.map((m) => m.data.text).join(",")}>
      <button id="older" onClick={() => void loadMore()}>
        older
      </button>
    </div>
  );
}

export function Todos() {
  const { rows, loading } = useTable<{ id: number; title: string; done: boolean }>("todos");
  const shown = rows
    .slice()
    .sort((a, b) => a.id - b.id)
    .map((r) => `${r.id}:${r.title}:${r.done ? "done" : "open"}`);
  return <div id="todos" data-loading={String(loading)} data-rows={shown.join(",")} />;
}

export function Answer({ topic }: { topic: string }) {
  const { latest, streams } = useStream(topic);
  return <div id="answer" data-count={streams.length} data-status={latest?.status ?? ""} data-text={latest?.text ?? ""} />;
}
