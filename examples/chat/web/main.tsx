import { ChorusProvider } from "@chorus/react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { RealtimeChat } from "./RealtimeChat.js";

declare global {
  interface Window {
    CHORUS_URL: string;
  }
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <ChorusProvider url={window.CHORUS_URL}>
      <RealtimeChat />
    </ChorusProvider>
  </StrictMode>,
);
