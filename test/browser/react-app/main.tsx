// Renders the view the query string names, in StrictMode (every effect runs
// twice on mount, as in development), under one ChorusProvider.
import { ChorusProvider } from "@chorus/react";
import { StrictMode, type ReactNode } from "react";
import { createRoot } from "react-dom/client";
import { Answer, History, Members, Messages, Status, Todos } from "./hooks.js";
import { Chat, ChatRoom, CollaborativeTodos, ConnectionIndicator, LiveFeed, LiveMetrics, LiveOrders, OnlineUsers } from "./reference.js";

const params = new URLSearchParams(location.search);
const views: Record<string, () => ReactNode> = {
  reference: () => (
    <>
      <p id="indicator"><ConnectionIndicator /></p>
      <div id="chat"><ChatRoom roomId={params.get("room")!} /></div>
      <div id="online"><OnlineUsers roomId={params.get("room")!} /></div>
      <div id="orders"><LiveOrders /></div>
    </>
  ),
  complete: () => (
    <>
      <div id="full-chat"><Chat roomId={params.get("room")!} /></div>
      <div id="todo-list"><CollaborativeTodos listId={Number(params.get("list"))} /></div>
      <div id="metrics"><LiveMetrics /></div>
      <div id="feed"><LiveFeed /></div>
    </>
  ),
  hooks: () => (
    <>
      <Status />
      <Messages topic={`chat/${params.get("room")}`} />
      <Members topic={`chat/${params.get("room")}`} />
      <History topic={`chat/${params.get("room")}`} />
      <Todos />
      <Answer topic={`ai/${params.get("room")}`} />
    </>
  ),
};

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <ChorusProvider url={params.get("chorus")!} token={params.get("user") ?? undefined}>
      {views[params.get("view") ?? "hooks"]!()}
    </ChorusProvider>
  </StrictMode>,
);
