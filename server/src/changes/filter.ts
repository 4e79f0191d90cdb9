import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Row filters: `column=op.value` conditions joined by `&` (all must hold),
 * the shape PostgREST and Supabase use: `status=eq.shipped`,
 * `list_id=in.(1,2)`, `deleted_at=is.null`, `total=gte.100`.
 *
 * A value is compared with a row's value as numbers when both read as
 * numbers, as text otherwise; `is` takes `null`, `true` or `false`. A
 * condition on a column the row does not have never holds.
 */
export type FilterOp = "eq" | "neq" | "lt" | "lte" | "gt" | "gte" | "in" | "is";

export interface Condition {
  column: string;
  op: FilterOp;
  /** One value, or the list of `in`. */
  values: string[];
}

export const FILTER_LIMITS = { length: 1024, conditions: 16, inValues: 100 } as const;

const OPS = new Set<FilterOp>(["eq", "neq", "lt", "lte", "gt", "gte", "in", "is"]);
const COLUMN = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

function bad(message: string): ConnectError {
  return new ConnectError(`filter: ${message}`, Code.InvalidArgument);
}

/** `(a,"b,c",d)` → [a, "b,c", d]. */
function parseList(text: string, column: string): string[] {
  if (!text.startsWith("(") || !text.endsWith(")")) throw bad(`in on "${column}" takes a list in parentheses, as in ${column}=in.(1,2)`);
  const body = text.slice(1, -1);
  const values: string[] = [];
  let i = 0;
  while (i <= body.length) {
    if (body[i] === '"') {
      let value = "";
      for (i++; i < body.length && body[i] !== '"'; i++) value += body[i] === "\\" ? body[++i] : body[i];
      if (i >= body.length) throw bad(`an unterminated quote in the list of "${column}"`);
      values.push(value);
      i++;
    } else {
      const end = body.indexOf(",", i);
      values.push(body.slice(i, end < 0 ? body.length : end));
      i = end < 0 ? body.length : end;
    }
    if (i >= body.length) break;
    if (body[i] !== ",") throw bad(`expected a comma in the list of "${column}"`);
    i++;
  }
  if (values.length > FILTER_LIMITS.inValues) throw bad(`the list of "${column}" has ${values.length} values; the limit is ${FILTER_LIMITS.inValues}`);
  return values;
}

/** Parses a filter; throws INVALID_ARGUMENT saying what is wrong. An empty filter has no conditions. */
export function parseFilter(text: string): Condition[] {
  if (text === "") return [];
  if (text.length > FILTER_LIMITS.length) throw bad(`${text.length} characters; the limit is ${FILTER_LIMITS.length}`);
  const parts = text.split("&");
  if (parts.length > FILTER_LIMITS.conditions) throw bad(`${parts.length} conditions; the limit is ${FILTER_LIMITS.conditions}`);
  return parts.map((part) => {
    const eq = part.indexOf("=");
    if (eq <= 0) throw bad(`"${part}" is not column=op.value (for example status=eq.shipped)`);
    const column = part.slice(0, eq);
    if (!COLUMN.test(column)) throw bad(`"${column}" is not a column name`);
    const rest = part.slice(eq + 1);
    const dot = rest.indexOf(".");
    const op = (dot < 0 ? rest : rest.slice(0, dot)) as FilterOp;
    if (dot < 0 || !OPS.has(op)) throw bad(`"${rest}" on "${column}" does not start with an operator: eq, neq, lt, lte, gt, gte, in or is, then a dot and the value`);
    const value = rest.slice(dot + 1);
    if (op === "in") return { column, op, values: parseList(value, column) };
    if (op === "is" && !["null", "true", "false"].includes(value)) throw bad(`is on "${column}" takes null, true or false, not "${value}"`);
    return { column, op, values: [value] };
  });
}

/** A filter written back in one canonical form: identical filters (in any order) have one key. */
export function filterKey(conditions: readonly Condition[]): string {
  return conditions
    .map((c) => `${c.column}=${c.op}.${c.op === "in" ? `(${c.values.map((v) => JSON.stringify(v)).join(",")})` : c.values[0]}`)
    .sort()
    .join("&");
}

/** -1, 0 or 1 comparing a row's value with a filter's text; undefined when they cannot be compared. */
function compare(value: unknown, text: string): number | undefined {
  const order = <T>(a: T, b: T) => (a < b ? -1 : a > b ? 1 : 0);
  if (value === null || value === undefined) return undefined;
  if (typeof value === "number") {
    const n = text === "" ? Number.NaN : Number(text);
    return Number.isNaN(n) ? undefined : order(value, n);
  }
  if (typeof value === "boolean") return text === "true" || text === "false" ? order(String(value), text) : undefined;
  if (typeof value === "string") {
    // A bigint or numeric too long for a number arrives as a string of digits: compared as an integer.
    if (value.length > 15 && /^-?\d+$/.test(value) && /^-?\d+$/.test(text)) return order(BigInt(value), BigInt(text));
    return order(value, text);
  }
  return order(JSON.stringify(value), text);
}

function holds(c: Condition, row: Record<string, unknown>): boolean {
  if (!Object.hasOwn(row, c.column)) return false;
  const value = row[c.column];
  switch (c.op) {
    case "is":
      return c.values[0] === "null" ? value === null : value === (c.values[0] === "true");
    case "in":
      return c.values.some((v) => compare(value, v) === 0);
    case "neq": {
      const r = compare(value, c.values[0]!);
      return r !== undefined && r !== 0;
    }
  }
  const r = compare(value, c.values[0]!);
  if (r === undefined) return false;
  switch (c.op) {
    case "eq":
      return r === 0;
    case "lt":
      return r < 0;
    case "lte":
      return r <= 0;
    case "gt":
      return r > 0;
    case "gte":
      return r >= 0;
  }
}

/** Whether every condition holds for the row. */
export function matches(conditions: readonly Condition[], row: Record<string, unknown>): boolean {
  for (const c of conditions) if (!holds(c, row)) return false;
  return true;
}
