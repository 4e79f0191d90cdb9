/**
 * `?` placeholders, as the reference docs write them (`WHERE id = ?`),
 * numbered the way PostgreSQL takes them (`$1`, `$2` …). Statements that
 * already use `$n`, or have no parameters, are left alone (so jsonb's `?`
 * operator keeps working there). Quoted strings, quoted identifiers,
 * dollar-quoted bodies and comments are never touched.
 */
export function numberPlaceholders(sql: string, paramCount: number): string {
  if (paramCount === 0) return sql;
  const out: string[] = [];
  let numbered = 0;
  let last = 0;
  let sawDollarParam = false;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i]!;
    if (c === "'" || c === '"') {
      for (i++; i < sql.length; i++) {
        if (sql[i] === c) {
          if (sql[i + 1] === c) i++; // a doubled quote inside
          else break;
        }
      }
    } else if (c === "-" && sql[i + 1] === "-") {
      while (i < sql.length && sql[i] !== "\n") i++;
    } else if (c === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? sql.length : end + 1;
    } else if (c === "$") {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (tag) {
        const end = sql.indexOf(tag[0], i + tag[0].length);
        i = end < 0 ? sql.length : end + tag[0].length - 1;
      } else if (/\d/.test(sql[i + 1] ?? "")) sawDollarParam = true;
    } else if (c === "?") {
      out.push(sql.slice(last, i), `$${++numbered}`);
      last = i + 1;
    }
  }
  if (sawDollarParam || numbered === 0) return sql;
  out.push(sql.slice(last));
  return out.join("");
}
