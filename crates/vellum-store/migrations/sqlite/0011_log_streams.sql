-- Log streams (docs/streams.md): each delivers one organization's events, in log order, to a
-- destination. `cursor` is the next log position to deliver; it moves only after the
-- destination accepted a batch, in the same statement that checks the worker still holds the
-- stream's lease and that no replay moved the cursor meanwhile.
create table log_streams (
    seq integer primary key,
    id blob not null unique,
    organization_seq integer not null references organizations (seq),
    type text not null,
    config text not null,           -- JSON: the settings shown back (no secrets)
    secrets blob not null,          -- the write-only settings, sealed by the streams service
    state text not null,            -- active | error | invalid | inactive
    cursor integer not null,
    failures integer not null default 0,
    error text,
    next_attempt_at integer,
    last_synced_at integer,
    lease_owner text,
    lease_until integer,            -- also when it was last let go: claims take the longest-waiting first
    deliveries integer not null default 0,       -- accepted requests (or objects), since creation
    events_delivered integer not null default 0, -- events they carried
    failed_attempts integer not null default 0,  -- attempts that failed, since creation
    created_at integer not null,
    updated_at integer not null
) strict;
create index log_streams_by_organization on log_streams (organization_seq, seq);
