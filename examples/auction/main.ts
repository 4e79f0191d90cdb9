// `npm run example:auction`: an embedded Chorus, the auction's back end and its page.
import { runExample } from "@chorus/example-kit";
import { createAuctionBackend } from "./backend.js";

await runExample({ name: "auction", backend: createAuctionBackend, web: new URL("./web/", import.meta.url), setup: "/setup" }, "in two tabs (?user=… to name each bidder)");
