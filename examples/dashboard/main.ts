// `npm run example:dashboard`: an embedded Chorus, the dashboard's back end and its page.
// `npm run example:dashboard:load` (another terminal) then places orders.
import { runExample } from "@chorus/example-kit";
import { createDashboardBackend } from "./backend.js";

await runExample({ name: "dashboard", backend: (sdk) => createDashboardBackend(sdk), web: new URL("./web/", import.meta.url), setup: "/setup" }, "and run the load script beside it");
