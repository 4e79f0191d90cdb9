import * as http from "node:http";
import { createServerSdk } from "@chorus/client/server";
import { createChatBackend } from "./backend.js";
import { buildPage } from "./page.js";

export interface ChatApp {
  /** Where the page and POST /examples/chat/send are served. */
  url: string;
  /** The server SDK the back end emits with. */
  sdk: ReturnType<typeof createServerSdk>;
  close(): void;
}

/**
 * The chat back end and its page, talking to the Chorus at `chorusUrl`
 * (the browser connects there directly; it is another origin).
 */
export async function startChatApp(options: { chorusUrl: string; port?: number; apiKey?: string }): Promise<ChatApp> {
  const page = await buildPage(options.chorusUrl);
  const sdk = createServerSdk({ url: options.chorusUrl, apiKey: options.apiKey });
  const backend = http.createServer(createChatBackend(sdk, () => page));
  await new Promise<void>((resolve) => backend.listen(options.port ?? 0, "127.0.0.1", resolve));
  const { port } = backend.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    sdk,
    close: () => {
      backend.close();
      sdk.close();
    },
  };
}
