import { ChorusProvider } from "@chorus/react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { Auction } from "./Auction.js";

declare global {
  interface Window {
    CHORUS_URL: string;
  }
}

const params = new URLSearchParams(location.search);

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <ChorusProvider url={window.CHORUS_URL}>
      <Auction auctionId={params.get("auction") ?? "lamp"} userId={params.get("user") ?? `bidder-${Math.random().toString(36).slice(2, 6)}`} />
    </ChorusProvider>
  </StrictMode>,
);
