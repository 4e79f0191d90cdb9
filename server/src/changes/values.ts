/**
 * Database values as JSON, the same whichever source they come from (a
 * query's result, a PGlite change log row, a pgoutput tuple): numbers stay
 * numbers unless JSON readers would lose digits (then they are strings),
 * timestamps are ISO 8601 strings, json/jsonb are values, bytea is base64,
 * arrays are arrays, everything else is its text.
 */

/** Digits a JavaScript number holds exactly: integers up to 2^53, decimals of 15 significant digits. */
function numberIsExact(text: string): boolean {
  const integer = /^-?\d+$/.test(text);
  if (integer) return Number.isSafeInteger(Number(text));
  const digits = text.replace(/^-/, "").replace(/[eE].*$/, "").replace(".", "").replace(/^0+/, "").replace(/0+$/, "");
  return digits.length <= 15 && Number.isFinite(Number(text));
}

/**
 * JSON text with every number a JavaScript reader would round (bigint and
 * numeric beyond 2^53 or 15 digits) turned into a string of its digits.
 * Text without such numbers is returned as it is.
 */
export function safeJsonText(text: string): string {
  let out: string[] | undefined;
  let last = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      for (i++; i < text.length && text.charCodeAt(i) !== 34; i++) if (text.charCodeAt(i) === 92 /* \ */) i++;
      continue;
    }
    if (c === 45 /* - */ || (c >= 48 && c <= 57)) {
      let end = i + 1;
      while (end < text.length && /[0-9.eE+-]/.test(text[end]!)) end++;
      const token = text.slice(i, end);
      if (token.length > 15 && !numberIsExact(token)) {
        (out ??= []).push(text.slice(last, i), JSON.stringify(token));
        last = end;
      }
      i = end - 1;
    }
  }
  if (!out) return text;
  out.push(text.slice(last));
  return out.join("");
}

/** PostgreSQL type OIDs this module converts; anything else is its text. */
const BOOL = 16;
const BYTEA = 17;
const INT8 = 20;
const INT2 = 21;
const INT4 = 23;
const OID = 26;
const JSON_OID = 114;
const FLOAT4 = 700;
const FLOAT8 = 701;
const TIMESTAMP = 1114;
const TIMESTAMPTZ = 1184;
const NUMERIC = 1700;
const JSONB = 3802;

/** Array type OID → element type OID, for the arrays of the types above and the usual text ones. */
const ARRAY_OF: Record<number, number> = {
  1000: BOOL,
  1001: BYTEA,
  1005: INT2,
  1007: INT4,
  1016: INT8,
  1021: FLOAT4,
  1022: FLOAT8,
  1115: TIMESTAMP,
  1185: TIMESTAMPTZ,
  1231: NUMERIC,
  199: JSON_OID,
  3807: JSONB,
  1009: 25,
  1015: 1043,
  1014: 1042,
  2951: 2950,
  1182: 1082,
};

/** The type OIDs whose text this module turns into something else than a string (arrays included). */
export const CONVERTED_TYPES: readonly number[] = [BOOL, BYTEA, INT8, INT2, INT4, OID, JSON_OID, FLOAT4, FLOAT8, TIMESTAMP, TIMESTAMPTZ, NUMERIC, JSONB, ...Object.keys(ARRAY_OF).map(Number)];

/** `2026-12-01 16:24:52.373+00` → `2026-12-01T16:24:52.373+00:00` (what PostgreSQL's own JSON writes). */
function isoTimestamp(text: string): string {
  if (text === "infinity" || text === "-infinity") return text;
  const t = text.replace(" ", "T");
  return /[+-]\d\d$/.test(t) ? `${t}:00` : t;
}

function numeric(text: string): number | string {
  if (!/^-?\d/.test(text)) return text; // NaN, Infinity
  return numberIsExact(text) ? Number(text) : text;
}

/** One value from its PostgreSQL text form, by type. */
export function fromPgText(oid: number, text: string): unknown {
  switch (oid) {
    case BOOL:
      return text === "t" || text === "true";
    case INT2:
    case INT4:
    case OID:
      return Number(text);
    case INT8:
    case NUMERIC:
      return numeric(text);
    case FLOAT4:
    case FLOAT8:
      return Number.isFinite(Number(text)) ? Number(text) : text;
    case JSON_OID:
    case JSONB:
      return JSON.parse(safeJsonText(text));
    case BYTEA:
      return text.startsWith("\\x") ? Buffer.from(text.slice(2), "hex").toString("base64") : text;
    case TIMESTAMP:
    case TIMESTAMPTZ:
      return isoTimestamp(text);
  }
  const element = ARRAY_OF[oid];
  if (element !== undefined) return parseArray(text, (item) => fromPgText(element, item));
  return text;
}

/** A PostgreSQL array literal (`{1,2}`, `{"a b",NULL}`, `{{1,2},{3,4}}`), elements converted by `item`. */
export function parseArray(text: string, item: (text: string) => unknown): unknown[] {
  let i = 0;
  // An array with explicit bounds (`[0:1]={1,2}`): the bounds are dropped.
  if (text.startsWith("[")) i = text.indexOf("=") + 1;
  const parse = (): unknown[] => {
    const out: unknown[] = [];
    i++; // {
    while (i < text.length && text[i] !== "}") {
      if (text[i] === "{") out.push(parse());
      else if (text[i] === '"') {
        let value = "";
        for (i++; i < text.length && text[i] !== '"'; i++) value += text[i] === "\\" ? text[++i] : text[i];
        i++;
        out.push(item(value));
      } else {
        const start = i;
        while (i < text.length && text[i] !== "," && text[i] !== "}") i++;
        const raw = text.slice(start, i);
        out.push(raw === "NULL" ? null : item(raw));
      }
      if (text[i] === ",") i++;
    }
    i++; // }
    return out;
  };
  return text[i] === "{" ? parse() : [];
}
