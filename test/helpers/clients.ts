import { RealtimeClient as NodeClient } from "../../clients/src/node.js";
import { RealtimeClient as BrowserClient } from "../../clients/src/browser.js";
import type { RealtimeClient as BaseClient, RealtimeClientOptions } from "../../clients/src/client.js";

/** The two transports every behavioural test runs over. */
export const transports = [
  { name: "node (bidi over HTTP/2)", create: (o: RealtimeClientOptions): BaseClient => new NodeClient(o) },
  { name: "browser (Listen + unary over fetch)", create: (o: RealtimeClientOptions): BaseClient => new BrowserClient(o) },
] as const;

export type Transport = (typeof transports)[number];
export { NodeClient, BrowserClient };
