import type { HeaderField } from "./hpack.js";

/**
 * HTTP message rules for requests carried over HTTP/2 (RFC 9113 §8.2 and
 * §8.3), checked where a header block has just been decoded. A request
 * that breaks one is malformed: a stream error of type PROTOCOL_ERROR
 * (§8.1.1). What passes here is safe to hand to `new Headers()`, to CORS
 * and to any handler: names are lower-case tokens and values hold no NUL,
 * CR or LF.
 */

export interface RequestHead {
  method: string;
  path: string;
  scheme: string;
  authority: string;
  /** Regular header fields; repeated names joined with ", " ("; " for cookie). */
  headers: Record<string, string>;
  /** The declared body length, when the request has a content-length. */
  contentLength: number | undefined;
}

/** A decoded request, or why it is malformed. */
export type HeadResult = { head: RequestHead } | { malformed: string };

/** Hop-by-hop fields that HTTP/2 forbids (§8.2.2). */
const CONNECTION_SPECIFIC = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]);

/** tchar of RFC 9110 §5.6.2, lower-case letters only (§8.2.1: upper case is malformed). */
const TOKEN_CHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") TOKEN_CHAR[c.charCodeAt(0)] = 1;

function isLowerToken(name: string, from = 0): boolean {
  if (name.length <= from) return false;
  for (let i = from; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || TOKEN_CHAR[c] === 0) return false;
  }
  return true;
}

/** §8.2.1: no NUL, CR or LF anywhere, no whitespace at either end. */
function valueProblem(value: string): string | undefined {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 10 || c === 13) return "holds NUL, CR or LF";
  }
  if (value.length > 0) {
    const first = value.charCodeAt(0);
    const last = value.charCodeAt(value.length - 1);
    if (first === 32 || first === 9 || last === 32 || last === 9) return "starts or ends with whitespace";
  }
  return undefined;
}

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*$/;
const METHOD_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const CONTENT_LENGTH = /^[0-9]{1,15}$/;

/** Checks and collects a request's header block (§8.3.1). */
export function requestHead(fields: readonly HeaderField[]): HeadResult {
  const head: RequestHead = { method: "", path: "", scheme: "", authority: "", headers: {}, contentLength: undefined };
  const seen = new Set<string>();
  let regular = false;
  for (const [name, value] of fields) {
    const bad = valueProblem(value);
    if (bad) return { malformed: `value of ${name} ${bad}` };
    if (name.charCodeAt(0) === 58 /* : */) {
      if (regular) return { malformed: `pseudo-header ${name} after a regular field` };
      if (seen.has(name)) return { malformed: `pseudo-header ${name} repeated` };
      seen.add(name);
      if (name === ":method") head.method = value;
      else if (name === ":path") head.path = value;
      else if (name === ":scheme") head.scheme = value;
      else if (name === ":authority") head.authority = value;
      else return { malformed: `pseudo-header ${name} is not a request pseudo-header` };
      continue;
    }
    regular = true;
    if (!isLowerToken(name)) return { malformed: `field name ${JSON.stringify(name)} is not a lower-case token` };
    if (CONNECTION_SPECIFIC.has(name)) return { malformed: `connection-specific field ${name}` };
    if (name === "te" && value !== "trailers") return { malformed: 'te other than "trailers"' };
    if (name === "content-length") {
      if (!CONTENT_LENGTH.test(value)) return { malformed: "content-length is not a number" };
      const length = Number(value);
      if (head.contentLength !== undefined && head.contentLength !== length) return { malformed: "content-length given twice, differently" };
      head.contentLength = length;
    }
    const previous = head.headers[name];
    head.headers[name] = previous === undefined ? value : `${previous}${name === "cookie" ? "; " : ", "}${value}`;
  }
  if (!METHOD_CHARS.test(head.method)) return { malformed: ":method is missing or not a token" };
  if (head.method === "CONNECT") {
    // §8.5: only :method and :authority. Chorus tunnels nothing; the handler answers 405.
    if (seen.has(":scheme") || seen.has(":path")) return { malformed: "CONNECT with :scheme or :path" };
    if (!head.authority) return { malformed: "CONNECT without :authority" };
    return { head };
  }
  if (!SCHEME.test(head.scheme)) return { malformed: ":scheme is missing or malformed" };
  if (head.path === "") return { malformed: ":path is missing or empty" };
  if (head.path.charCodeAt(0) !== 47 /* / */ && !(head.path === "*" && head.method === "OPTIONS")) return { malformed: ":path must start with /" };
  const host = head.headers.host;
  if (host !== undefined && head.authority !== "" && host !== head.authority) return { malformed: "host differs from :authority" };
  if (!head.authority) head.authority = host ?? "";
  return { head };
}

/** Checks a trailer block (§8.1): regular fields only, by the same rules. */
export function trailersProblem(fields: readonly HeaderField[]): string | undefined {
  for (const [name, value] of fields) {
    if (name.charCodeAt(0) === 58) return `pseudo-header ${name} in trailers`;
    if (!isLowerToken(name)) return `field name ${JSON.stringify(name)} is not a lower-case token`;
    if (CONNECTION_SPECIFIC.has(name)) return `connection-specific field ${name}`;
    const bad = valueProblem(value);
    if (bad) return `value of ${name} ${bad}`;
  }
  return undefined;
}
