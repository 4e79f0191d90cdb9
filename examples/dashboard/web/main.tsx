import { ChorusProvider } from "@chorus/react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { LiveMetrics } from "./LiveMetrics.js";

declare global {
  interface Window {
    CHORUS_URL: string;
  }
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <ChorusProvider url={window.CHORUS_URL}>
      <LiveMetrics />
    </ChorusProvider>
  </StrictMode>,
);
