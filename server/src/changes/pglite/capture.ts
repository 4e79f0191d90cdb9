/**
 * Change capture inside PGlite, which has no usable logical decoding: a
 * generic AFTER ROW trigger appends each change to `chorus.changes` (the
 * row as JSON text, so bigints keep their digits), a BEFORE TRUNCATE
 * trigger logs every row it is about to remove as a DELETE, and an event
 * trigger gives every tracked table created later the same triggers.
 * PGlite runs one transaction at a time, so the log's order is the commit
 * order; a rolled-back transaction takes its log rows with it. Each row
 * is announced on `chorus_changes` with its log id and contents (or, when
 * it cannot be, by a bare notice to read the log): notifications are
 * delivered at commit, and never for a rollback.
 *
 * Idempotent: run at every start.
 */
export const CAPTURE_SQL = String.raw`
create schema if not exists chorus;

create table if not exists chorus.changes (
  id bigserial primary key,
  tbl text not null,
  op text not null,
  data text not null,
  old text
);

-- Which tables are tracked: schema.table patterns, * for any name (rewritten at every start).
create table if not exists chorus.tracked (pattern text primary key);

create or replace function chorus.topic(schema_name text, table_name text) returns text
language sql immutable as $$
  select case when schema_name = 'public' then table_name else schema_name || '.' || table_name end
$$;

create or replace function chorus.is_tracked(schema_name text, table_name text) returns boolean
language sql stable as $$
  select schema_name <> 'chorus'
     and schema_name !~ '^pg_' and schema_name <> 'information_schema'
     and schema_name ~ '^[A-Za-z_][A-Za-z0-9_$]*$' and table_name ~ '^[A-Za-z_][A-Za-z0-9_$]*$'
     and exists (
       select 1 from chorus.tracked t
       where (split_part(t.pattern, '.', 1) in ('*', schema_name))
         and (split_part(t.pattern, '.', 2) in ('*', table_name))
     )
$$;

create or replace function chorus.capture() returns trigger
language plpgsql as $$
declare
  topic text := chorus.topic(TG_TABLE_SCHEMA, TG_TABLE_NAME);
  row_text text;
  old_text text;
  logged bigint;
  announced int := coalesce(nullif(current_setting('chorus.announced', true), ''), '0')::int;
begin
  if TG_OP = 'DELETE' then
    row_text := row_to_json(OLD)::text;
    old_text := row_text;
  else
    row_text := row_to_json(NEW)::text;
    if TG_OP = 'UPDATE' then old_text := row_to_json(OLD)::text; end if;
  end if;
  insert into chorus.changes (tbl, op, data, old) values (topic, TG_OP, row_text, old_text) returning id into logged;
  -- Announced with the row, so it need not be read back: up to 1000 rows a transaction, each
  -- within NOTIFY's 8000 bytes and free of raw tabs (the separator; only a json column's own
  -- whitespace can hold one). Otherwise a bare id says "read the log", once; the rest of the
  -- transaction then goes unannounced.
  if announced < 1000 and octet_length(row_text) + coalesce(octet_length(old_text), 0) + octet_length(topic) < 7900
     and strpos(row_text, E'\t') = 0 and strpos(coalesce(old_text, ''), E'\t') = 0 then
    perform set_config('chorus.announced', (announced + 1)::text, true);
    perform pg_notify('chorus_changes', logged || E'\t' || topic || E'\t' || TG_OP || E'\t' || row_text || coalesce(E'\t' || old_text, ''));
  elsif announced <= 1000 then
    perform set_config('chorus.announced', '1001', true);
    perform pg_notify('chorus_changes', logged::text);
  end if;
  return null;
end
$$;

create or replace function chorus.capture_truncate() returns trigger
language plpgsql as $$
begin
  execute format(
    'insert into chorus.changes (tbl, op, data, old) select %L, ''DELETE'', row_to_json(t)::text, row_to_json(t)::text from %I.%I t',
    chorus.topic(TG_TABLE_SCHEMA, TG_TABLE_NAME), TG_TABLE_SCHEMA, TG_TABLE_NAME);
  perform pg_notify('chorus_changes', 'truncate'); -- not a row: read the log
  return null;
end
$$;

create or replace function chorus.track(schema_name text, table_name text) returns void
language plpgsql as $$
begin
  if not chorus.is_tracked(schema_name, table_name) then return; end if;
  if not exists (
    select 1 from pg_trigger g join pg_class c on c.oid = g.tgrelid join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = schema_name and c.relname = table_name and g.tgname = 'chorus_capture'
  ) then
    execute format('create trigger chorus_capture after insert or update or delete on %I.%I for each row execute function chorus.capture()', schema_name, table_name);
    execute format('create trigger chorus_capture_truncate before truncate on %I.%I for each statement execute function chorus.capture_truncate()', schema_name, table_name);
  end if;
end
$$;

create or replace function chorus.track_all() returns void
language plpgsql as $$
declare r record;
begin
  for r in select n.nspname as s, c.relname as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where c.relkind in ('r', 'p') loop
    perform chorus.track(r.s, r.t);
  end loop;
end
$$;

create or replace function chorus.on_ddl() returns event_trigger
language plpgsql as $$
declare r record;
begin
  for r in select * from pg_event_trigger_ddl_commands()
           where command_tag in ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE') and object_type = 'table' loop
    perform chorus.track(r.schema_name, (select relname from pg_class where oid = r.objid));
  end loop;
end
$$;

do $$
begin
  if not exists (select 1 from pg_event_trigger where evtname = 'chorus_ddl') then
    create event trigger chorus_ddl on ddl_command_end execute function chorus.on_ddl();
  end if;
end
$$;
`;
