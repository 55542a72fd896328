-- Log streams (docs/streams.md): each delivers one organization's events, in log order, to a
-- destination. `cursor` is the next log position to deliver; it moves only after the
-- destination accepted a batch, in the statement that checks the worker still holds the
-- stream's lease and that no replay moved the cursor meanwhile. Claims skip locked rows, so
-- nodes claiming at once pass each other by, and one node delivers a stream at a time.
create table log_streams (
    id bytea primary key,
    seq bigserial unique,
    organization_id bytea not null references organizations (id),
    type text not null,
    config text not null,           -- JSON: the settings shown back (no secrets)
    secrets bytea not null,         -- the write-only settings, sealed by the streams service
    state text not null,            -- active | error | invalid | inactive
    cursor bigint not null,
    failures integer not null default 0,
    error text,
    next_attempt_at bigint,
    last_synced_at bigint,
    lease_owner text,
    lease_until bigint,             -- also when it was last let go: claims take the longest-waiting first
    deliveries bigint not null default 0,        -- accepted requests (or objects), since creation
    events_delivered bigint not null default 0,  -- events they carried
    failed_attempts bigint not null default 0,   -- attempts that failed, since creation
    created_at bigint not null,
    updated_at bigint not null
);
create index log_streams_by_organization on log_streams (organization_id, seq);
