import { ChorusProvider } from "@chorus/react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { CollaborativeTodos } from "./CollaborativeTodos.js";
import { user } from "./auth.js";

declare global {
  interface Window {
    CHORUS_URL: string;
  }
}

const listId = Number(new URLSearchParams(location.search).get("list") ?? 1);

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    {/* Development mode: the token is the user id. */}
    <ChorusProvider url={window.CHORUS_URL} token={user.id}>
      <h1>List {listId}</h1>
      <CollaborativeTodos listId={listId} />
    </ChorusProvider>
  </StrictMode>,
);
