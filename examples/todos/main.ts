// `npm run example:todos`: an embedded Chorus, the todos' back end and its page.
import { runExample } from "@chorus/example-kit";
import { createTodosBackend } from "./backend.js";

await runExample({ name: "todos", backend: createTodosBackend, web: new URL("./web/", import.meta.url), setup: "/setup" }, "in two tabs (?user=… to name each editor)");
