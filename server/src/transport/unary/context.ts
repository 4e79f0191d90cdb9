import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import { one, requestTimeoutMs, type RawHeaders, type UnaryProtocol } from "./route.js";

/**
 * The handler context of a call on the lean path: what a service
 * implementation may read, built only when it reads it. Implementations
 * read the request's headers and nothing else; the signal, response
 * headers and context values exist for the ones that will want them.
 */
export class UnaryContext implements HandlerContext {
  private header: Headers | undefined;
  private abort: AbortController | undefined;
  private responseHeaders: Headers | undefined;
  private responseTrailers: Headers | undefined;
  private contextValues: ContextValues | undefined;
  private readonly startedAt = Date.now();
  readonly requestMethod = "POST";

  constructor(
    readonly method: DescMethod,
    readonly protocolName: UnaryProtocol,
    private readonly raw: RawHeaders,
    private readonly authority: string,
  ) {}

  get service(): DescService {
    return this.method.parent;
  }

  get url(): string {
    return `http://${this.authority}/${this.method.parent.typeName}/${this.method.name}`;
  }

  get requestHeader(): Headers {
    if (this.header) return this.header;
    const header = new Headers();
    try {
      for (const name in this.raw) {
        const value = one(this.raw[name]);
        if (value !== null && name.charCodeAt(0) !== 58 /* ":" */) header.append(name, value);
      }
    } catch {
      throw new ConnectError("a request header holds characters no header may hold", Code.InvalidArgument);
    }
    return (this.header = header);
  }

  get signal(): AbortSignal {
    return (this.abort ??= new AbortController()).signal;
  }

  timeoutMs(): number | undefined {
    const timeout = requestTimeoutMs(this.protocolName, this.raw);
    return timeout === undefined ? undefined : timeout - (Date.now() - this.startedAt);
  }

  get responseHeader(): Headers {
    return (this.responseHeaders ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.responseTrailers ??= new Headers());
  }

  get values(): ContextValues {
    return (this.contextValues ??= createContextValues());
  }

  /** Headers and trailers the implementation set, if it set any. */
  get extraHeaders(): Headers | undefined {
    return this.responseHeaders;
  }

  get extraTrailers(): Headers | undefined {
    return this.responseTrailers;
  }

  /** The call is over: a signal handed out says so, as connect's does. */
  done(reason?: unknown): void {
    this.abort?.abort(reason);
  }
}
