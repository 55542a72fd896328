-- Export jobs (docs/exports.md). A job is written `pending`, picked up by a worker (again after a
-- restart: `attempts` counts the starts), and ends `ready` with its file's object path, or
-- `error` with a reason. A ready export whose file was deleted after its time to live is
-- `expired`.
create table exports (
    seq integer primary key,
    id blob not null unique,        -- ULID (`audit_log_export_…`)
    organization_seq integer not null references organizations (seq),
    format text not null,           -- csv | ndjson
    filter text not null,           -- JSON: {range_start, range_end, actions, actor_names, actor_ids, targets}
    state text not null,            -- pending | ready | error | expired
    error text,
    object_path text,
    rows integer,
    bytes integer,
    attempts integer not null default 0,
    created_at integer not null,
    updated_at integer not null
) strict;
create index exports_by_state on exports (state, updated_at);
