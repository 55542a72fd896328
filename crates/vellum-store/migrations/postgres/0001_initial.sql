-- The PostgreSQL store, version 1: everything the embedded store holds, laid out for many
-- writers. Ids are the 16 bytes of their ULIDs; times are Unix milliseconds (bigint).
--
-- Every table of an organization's data leads its key with organization_id, so that a
-- deployment sharded by organization (Citus: distribute by organization_id) needs no change.
-- Events, their target rows and their legacy rows are partitioned by month of receipt
-- (partitions are created ahead by the server: see `postgres/partitions.rs`); the log itself
-- (leaf hashes, subtrees, heads, checkpoints) is not partitioned, because it outlives payloads.

create table organizations (
    id bytea primary key,
    name text not null,
    external_id text,
    metadata text not null,         -- JSON object of strings
    domains text not null,          -- JSON array of {id, domain, state, created_at, updated_at}
    stripe_customer_id text,
    allow_profiles_outside_organization boolean not null default false,
    retention_period_in_days integer,
    created_at bigint not null,
    updated_at bigint not null,
    deleted_at bigint
);
create unique index organizations_external_id on organizations (external_id)
    where external_id is not null and deleted_at is null;

create table api_keys (
    id bytea primary key,
    name text not null,
    secret_hash bytea not null unique,
    redacted_secret text not null,
    created_at bigint not null,
    revoked_at bigint
);

create table operators (
    id bytea primary key,
    email text not null unique,
    password_hash text not null,
    created_at bigint not null,
    updated_at bigint not null
);

create table operator_sessions (
    token_hash bytea primary key,
    operator_id bytea not null references operators (id) on delete cascade,
    created_at bigint not null,
    expires_at bigint not null
);
create index operator_sessions_operator on operator_sessions (operator_id);
create index operator_sessions_expiry on operator_sessions (expires_at);

create table audit_log_actions (
    id bytea primary key,           -- the list cursor (`ala_…`)
    name text not null unique,
    latest_version integer not null,
    created_at bigint not null,
    updated_at bigint not null
);

create table audit_log_schemas (
    action_id bytea not null references audit_log_actions (id),
    version integer not null,
    id bytea not null unique,       -- the list cursor (`als_…`)
    definition text not null,
    created_at bigint not null,
    primary key (action_id, version)
);

-- The next free position of each organization's log. An append takes it under this row's lock
-- (`update … returning`), so positions are gap-free and in commit order across every node.
create table log_heads (
    organization_id bytea primary key,
    size bigint not null
);

-- The verifiable log: one leaf per position (the event's id says where its payload is).
create table log_leaves (
    organization_id bytea not null,
    log_index bigint not null,
    leaf_hash bytea not null,
    event_id bytea not null,
    received_at bigint not null,
    primary key (organization_id, log_index)
);

create table log_nodes (
    organization_id bytea not null,
    level integer not null,
    node_index bigint not null,
    hash bytea not null,
    primary key (organization_id, level, node_index)
);

create table log_checkpoints (
    organization_id bytea primary key,
    tree_size bigint not null,
    root_hash bytea not null,
    note text not null,
    signed_at bigint not null
);

-- Listing order is (occurred_at, seq); seq follows commit order within an organization.
create sequence events_seq;

create table events (
    organization_id bytea not null,
    received_at bigint not null,
    seq bigint not null default nextval('events_seq'),
    id bytea not null,
    log_index bigint not null,
    occurred_at bigint not null,
    action text not null,
    actor_id text not null,
    actor_name text,
    schema_version integer not null,
    payload text not null,          -- JSON: {actor, targets, context, metadata?, audit_trail?}
    target_count integer not null,
    primary key (organization_id, received_at, seq)
) partition by range (received_at);
create index events_id on events (id);
create index events_log on events (organization_id, log_index);
create index events_time on events (organization_id, occurred_at, seq);
create index events_action_time on events (organization_id, action, occurred_at, seq);
create index events_actor_time on events (organization_id, actor_id, occurred_at, seq);
create index events_actor_name_time on events (organization_id, actor_name, occurred_at, seq)
    where actor_name is not null;

create table event_targets (
    organization_id bytea not null,
    received_at bigint not null,
    event_seq bigint not null,
    position integer not null,
    target_type text not null,
    target_id text not null,
    occurred_at bigint not null,
    primary key (organization_id, received_at, event_seq, position)
) partition by range (received_at);
create index event_targets_type on event_targets (organization_id, target_type, occurred_at, event_seq);
create index event_targets_id on event_targets (organization_id, target_id, occurred_at, event_seq);

create table audit_trail_events (
    organization_id bytea not null,
    received_at bigint not null,
    event_seq bigint not null,
    occurred_at bigint not null,
    group_name text not null,
    action_type text not null,      -- C, R, U or D
    target_name text not null,
    target_id text not null,
    primary key (organization_id, received_at, event_seq)
) partition by range (received_at);
create index audit_trail_events_time on audit_trail_events (occurred_at, event_seq);
create index audit_trail_events_group_time on audit_trail_events (group_name, occurred_at, event_seq);

-- Rows received outside every monthly partition (a clock far off) land here rather than fail.
create table events_default partition of events default;
create table event_targets_default partition of event_targets default;
create table audit_trail_events_default partition of audit_trail_events default;

create table idempotency_keys (
    organization_id bytea not null,
    key_hash bytea not null,
    request_hash bytea not null,
    response text,
    event_ids bytea,
    created_at bigint not null,
    primary key (organization_id, key_hash)
);
create index idempotency_keys_created on idempotency_keys (created_at);

create table exports (
    id bytea primary key,
    seq bigserial unique,
    organization_id bytea not null references organizations (id),
    format text not null,
    filter text not null,
    state text not null,
    error text,
    object_path text,
    rows bigint,
    bytes bigint,
    attempts integer not null default 0,
    created_at bigint not null,
    updated_at bigint not null,
    lease_owner text,
    lease_until bigint
);
create index exports_by_state on exports (state, updated_at);
create index exports_pending on exports (seq) where state = 'pending';

-- Secrets every node shares (the export download-link key; the log signing key when no key
-- file is configured), created by the first node that needs one.
create table shared_secrets (
    name text primary key,
    secret bytea not null,
    created_at bigint not null
);
