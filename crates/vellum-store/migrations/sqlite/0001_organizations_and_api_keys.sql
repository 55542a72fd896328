-- Organizations. `id` is the public 16-byte ULID; `seq` is a small internal key that other
-- tables use, so that per-event indexes do not repeat a 16-byte id millions of times.
-- Timestamps are milliseconds since the Unix epoch (UTC).
-- A deleted organization keeps its row (deleted_at set): its audit trail outlives it.
create table organizations (
    seq integer primary key,
    id blob not null unique,
    name text not null,
    external_id text,
    metadata text not null,      -- JSON object of strings
    domains text not null,       -- JSON array of {id, domain, state, created_at, updated_at}
    stripe_customer_id text,
    allow_profiles_outside_organization integer not null default 0,
    retention_period_in_days integer,
    created_at integer not null,
    updated_at integer not null,
    deleted_at integer
) strict;

-- An external id names one live organization; a deleted one frees it.
create unique index organizations_external_id
    on organizations (external_id)
    where external_id is not null and deleted_at is null;

-- API keys: only the SHA-256 of the secret is stored.
create table api_keys (
    id blob primary key not null,
    name text not null,
    secret_hash blob not null unique,
    redacted_secret text not null,
    created_at integer not null,
    revoked_at integer
) strict, without rowid;
