// `npm run example:chat`: an embedded Chorus, the chat's back end and its page.
import { runExample } from "@chorus/example-kit";
import { createChatBackend } from "./backend.js";

await runExample({ name: "chat", backend: createChatBackend, web: new URL("./web/", import.meta.url), setup: "/setup" }, "in two tabs (?room=… for another room)");
