// The reference "Realtime Chat" component, with our import names
// (useRealtime for useAerostack). Beyond the reference: the room's history
// when it opens and after a reconnect (its emits are not kept by Chorus: the
// back end's table has them), a typing indicator, and who is online.
import { useConnectionStatus, usePresence, useRealtime as useAerostack } from "@chorus/react";
import { useEffect, useRef, useState } from "react";

interface Message {
  id: string;
  userId: string;
  text: string;
  timestamp: number;
}

const params = new URLSearchParams(location.search);

/** Messages by id, oldest first: history, live ones and our own optimistic ones, each once. */
function merge(prev: Message[], more: Message[]): Message[] {
  const byId = new Map(prev.map((m) => [m.id, m]));
  for (const m of more) if (!byId.has(m.id)) byId.set(m.id, m);
  return [...byId.values()].sort((a, b) => a.timestamp - b.timestamp || a.id.localeCompare(b.id));
}

export function RealtimeChat() {
  const { realtime } = useAerostack();
  const [messages, setMessages] = useState<Message[]>([]);
  const [inputText, setInputText] = useState("");
  const [typing, setTyping] = useState<Map<string, number>>(new Map());
  const bottomRef = useRef<HTMLDivElement>(null);
  const roomId = params.get("room") ?? "general";
  const userId = useRef(params.get("user") ?? `user-${Math.random().toString(36).slice(2, 8)}`);
  const status = useConnectionStatus();
  const { members } = usePresence<{ userId: string; name: string }>(`room/${roomId}`, { userId: userId.current, name: userId.current });
  const online = [...new Set(members.map((m) => m.data?.name ?? m.userId))].sort();
  const lastTyped = useRef(0);

  useEffect(() => {
    const channel = realtime.channel(`chat/${roomId}`);
    channel
      .on("*", ({ data }) => {
        if (data && data.text) {
          setMessages((prev) => {
            // Avoid duplicate if we already added it optimistically
            if (prev.find((m) => m.id === data.id)) return prev;
            return merge(prev, [data]);
          });
        }
      })
      .on("typing", ({ data }) => {
        if (data?.userId && data.userId !== userId.current) setTyping((prev) => new Map(prev).set(data.userId, Date.now()));
      })
      .subscribe();
    return () => {
      channel.unsubscribe();
    };
  }, [realtime, roomId]);

  // The room's history on joining, and again after each reconnect: what was said while away.
  useEffect(() => {
    if (status !== "connected") return;
    let current = true;
    fetch(`/api/examples/chat/history?roomId=${encodeURIComponent(roomId)}`)
      .then((r) => r.json())
      .then((history: Message[]) => current && setMessages((prev) => merge(prev, history)))
      .catch(() => {});
    return () => {
      current = false;
    };
  }, [status, roomId]);

  // Typing indicators fade after three seconds.
  useEffect(() => {
    if (typing.size === 0) return;
    const timer = setTimeout(() => setTyping((prev) => new Map([...prev].filter(([, at]) => Date.now() - at < 3000))), 500);
    return () => clearTimeout(timer);
  }, [typing]);

  // Auto-scroll to bottom
  useEffect(() => {
    bottomRef.current?.scrollIntoView({ behavior: "smooth" });
  }, [messages]);

  const onInput = (text: string) => {
    setInputText(text);
    if (text && Date.now() - lastTyped.current > 1500) {
      lastTyped.current = Date.now();
      realtime.channel(`chat/${roomId}`).publish("typing", { userId: userId.current }).catch(() => {});
    }
  };

  const sendMessage = async () => {
    if (!inputText.trim()) return;
    const message: Message = {
      id: `${Date.now().toString()}-${Math.random().toString(36).slice(2, 6)}`,
      userId: userId.current,
      text: inputText,
      timestamp: Date.now(),
    };
    // Optimistic update
    setMessages((prev) => [...prev, message]);
    setInputText("");
    // Send to server
    await fetch("/api/examples/chat/send", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ roomId, ...message }),
    });
  };

  const typers = [...typing.keys()];
  return (
    <div className="flex flex-col h-screen max-w-2xl mx-auto p-4">
      <div className="bar">
        <span id="status" data-status={status}>{status}</span>
        <span id="online">
          online:{online.map((u) => (
            <span key={u}>{u}</span>
          ))}
        </span>
      </div>
      <div id="log" className="flex-1 overflow-y-auto space-y-2 mb-4">
        {messages.map((msg) => (
          <div key={msg.id} className={`flex ${msg.userId === userId.current ? "justify-end" : "justify-start"}`}>
            <div className={`max-w-xs px-4 py-2 rounded-2xl text-sm ${msg.userId === userId.current ? "bg-blue-600 text-white" : "bg-gray-800 text-gray-100"}`}>
              {msg.userId !== userId.current && <div className="text-xs text-gray-400 mb-1">{msg.userId}</div>}
              <span className="text">{msg.text}</span>
            </div>
          </div>
        ))}
        <div ref={bottomRef} />
      </div>
      <div id="typing">{typers.length > 0 ? `${typers.join(", ")} ${typers.length === 1 ? "is" : "are"} typing…` : ""}</div>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          sendMessage();
        }}
        className="flex gap-2"
      >
        <input
          value={inputText}
          onChange={(e) => onInput(e.target.value)}
          placeholder="Type a message..."
          className="flex-1 bg-gray-900 border border-gray-700 rounded-xl px-4 py-2 text-white"
        />
        <button type="submit" className="bg-blue-600 text-white px-6 py-2 rounded-xl font-medium">
          Send
        </button>
      </form>
    </div>
  );
}
