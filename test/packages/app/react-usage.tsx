// Type-checked by `tsc --noEmit` against the installed @chorus/react and React's own types.
import { ChorusProvider, useChannel, useConnectionStatus, useHistory, usePresence, useRealtime, useStream, useTable } from "@chorus/react";
import { useState } from "react";

interface ChatMessage {
  text: string;
}

function Chat({ room }: { room: string }) {
  const { realtime } = useRealtime();
  const status = useConnectionStatus();
  const [texts, setTexts] = useState<string[]>([]);
  const { publish, state } = useChannel<{ message: ChatMessage }>(`chat/${room}`, { message: ({ data }) => setTexts((t) => [...t, data.text]) });
  const { members } = usePresence<{ name: string }>(`chat/${room}`, { name: "Ada" });
  const { messages, loadMore } = useHistory<ChatMessage>(`chat/${room}`, 20);
  const { rows } = useTable<{ id: number; title: string }>("todos", { filter: "done=eq.false", initialRows: [] });
  const { latest } = useStream(`ai/${room}`);
  return (
    <div data-status={status} data-state={state} data-user={realtime.userId}>
      {texts.concat(messages.map((m) => m.data.text), members.map((m) => m.data.name), rows.map((r) => r.title), latest ? [latest.text] : []).join(" ")}
      <button onClick={() => void publish("message", { text: "hi" }, { persist: true })}>send</button>
      <button onClick={() => void loadMore()}>older</button>
    </div>
  );
}

export const App = () => (
  <ChorusProvider url="http://localhost:8080" token="ada">
    <Chat room="general" />
  </ChorusProvider>
);
