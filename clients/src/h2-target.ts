import { Http2SessionManager } from "@connectrpc/connect-node";

/**
 * Where the Node clients send their hand-framed calls: one HTTP/2 session
 * (connect-node's manager: connection, keep-alive, reconnection) and the
 * URL's path, which prefixes every method (a server behind a proxy at
 * /realtime is reached at /realtime/chorus.v1.…).
 */
export class H2Target {
  readonly sessions: Http2SessionManager;
  private readonly base: string;

  constructor(url: string) {
    this.sessions = new Http2SessionManager(url);
    this.base = new URL(url).pathname.replace(/\/+$/, "");
  }

  /** The request path of `method` ("chorus.v1.ServerService/Emit"). */
  path(method: string): string {
    return `${this.base}/${method}`;
  }
}
