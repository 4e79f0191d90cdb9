// The reference CollaborativeTodos, with our import names (useRealtime for
// useAerostack). Beyond the reference: the list's rows when it opens (the
// change events bring what changes after), and controls that call the back
// end to add, tick and delete: the page never broadcasts anything itself.
import { useRealtime as useAerostack } from "@chorus/react";
import { useEffect, useState } from "react";
import { useAuth } from "./auth.js";

interface Todo {
  id: number;
  list_id: number;
  text: string;
  done: boolean;
}

const api = (path: string, method = "GET", body?: unknown) =>
  fetch(`/api${path}`, { method, headers: body ? { "content-type": "application/json" } : {}, body: body ? JSON.stringify(body) : undefined });

export function CollaborativeTodos({ listId }: { listId: number }) {
  const { realtime } = useAerostack();
  const { user } = useAuth();
  const [todos, setTodos] = useState<Todo[]>([]);
  const [editors, setEditors] = useState(new Map());
  const [text, setText] = useState("");

  useEffect(() => {
    // DB change channel for the todos table
    const dbChannel = realtime.channel("todos");

    dbChannel
      .on("INSERT", ({ data }) => {
        if (data.list_id === listId) {
          setTodos((prev) => (prev.some((t) => t.id === data.id) ? prev : [...prev, data]));
        }
      })
      .on("UPDATE", ({ data }) => {
        setTodos((prev) => prev.map((t) => (t.id === data.id ? data : t)));
      })
      .on("DELETE", ({ data }) => {
        setTodos((prev) => prev.filter((t) => t.id !== data.id));
      })
      .subscribe();

    // The rows already there (after subscribing: a row added meanwhile comes either way, once).
    let current = true;
    dbChannel
      .ready()
      .then(() => api(`/todos?listId=${listId}`))
      .then((r) => r.json())
      .then((rows: Todo[]) => current && setTodos((prev) => [...rows, ...prev.filter((t) => !rows.some((r) => r.id === t.id))].sort((a, b) => a.id - b.id)))
      .catch(() => {});

    // Presence channel for who's editing
    const presenceChannel = realtime.channel(`todos/${listId}`);

    presenceChannel.track({
      userId: user.id,
      name: user.name,
      viewing: true,
    });

    presenceChannel
      .on("presence:join", ({ data }) => {
        setEditors((prev) => new Map(prev).set(data.userId, data));
      })
      .on("presence:leave", ({ data }) => {
        setEditors((prev) => {
          const next = new Map(prev);
          next.delete(data.userId);
          return next;
        });
      })
      .subscribe();

    return () => {
      current = false;
      dbChannel.unsubscribe();
      presenceChannel.untrack();
      presenceChannel.unsubscribe();
    };
  }, [realtime, listId, user]);

  return (
    <div>
      <p id="editors">Editors: {[...editors.values()].map((e) => e.name).sort().join(", ")}</p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (text.trim()) void api("/todos", "POST", { listId, text });
          setText("");
        }}
      >
        <input value={text} onChange={(e) => setText(e.target.value)} placeholder="What needs doing?" />
        <button type="submit">Add</button>
      </form>
      <ul>
        {todos.map((todo) => (
          <li key={todo.id} data-id={todo.id} className={todo.done ? "done" : ""} style={{ textDecoration: todo.done ? "line-through" : "none" }}>
            <span onClick={() => void api(`/todos/${todo.id}`, "PATCH", { done: !todo.done })}>{todo.text}</span>
            <button aria-label={`delete ${todo.text}`} onClick={() => void api(`/todos/${todo.id}`, "DELETE")}>
              ×
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}
