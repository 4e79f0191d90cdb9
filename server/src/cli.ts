// The `chorus` command (bin/chorus.mjs runs this, compiled to dist/cli.mjs).
import { run } from "./cli/program.js";

await run(process.argv);
