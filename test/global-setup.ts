// The end-to-end suites run the server exactly as `npm start` does: the
// compiled bundle, built once per test run.
import { buildServer } from "../server/build.mjs";

export async function setup(): Promise<void> {
  await buildServer();
}
