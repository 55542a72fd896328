-- Actions and their immutable, versioned schemas. Schemas apply to every organization.
create table audit_log_actions (
    seq integer primary key,
    id blob not null unique,        -- ULID; the list cursor (`ala_…`)
    name text not null unique,
    latest_version integer not null,
    created_at integer not null,
    updated_at integer not null
) strict;

create table audit_log_schemas (
    action_seq integer not null references audit_log_actions (seq),
    version integer not null,
    id blob not null unique,        -- ULID; the list cursor (`als_…`)
    definition text not null,       -- JSON: {targets: [{type, metadata?}], actor?: {metadata}, metadata?}
    created_at integer not null,
    primary key (action_seq, version)
) strict, without rowid;

-- Events: append-only. `seq` is the global insertion order; `log_index` is the event's position
-- in its organization's log (0, 1, 2, ... with no gaps). Listing orders by (occurred_at, seq).
create table events (
    seq integer primary key,
    id blob not null unique,
    organization_seq integer not null references organizations (seq),
    log_index integer not null,
    occurred_at integer not null,
    received_at integer not null,
    action text not null,
    actor_id text not null,
    actor_name text,
    schema_version integer not null,
    payload text not null,          -- JSON: {actor, targets, context, metadata?}
    leaf_hash blob not null         -- SHA-256(0x00 ‖ canonical bytes): the event's leaf in its log
) strict;

create unique index events_organization_log on events (organization_seq, log_index);
-- One index per single-filter listing, each ending in occurred_at (and the implicit rowid, seq),
-- so that "newest page of one organization with this filter" is one index range scan.
create index events_organization_time on events (organization_seq, occurred_at);
create index events_organization_action_time on events (organization_seq, action, occurred_at);
create index events_organization_actor_time on events (organization_seq, actor_id, occurred_at);
create index events_organization_actor_name_time on events (organization_seq, actor_name, occurred_at)
    where actor_name is not null;

-- Targets of events, for the target-type and target-id filters.
create table event_targets (
    organization_seq integer not null,
    target_type text not null,
    target_id text not null,
    occurred_at integer not null,
    event_seq integer not null,
    position integer not null,
    primary key (organization_seq, target_type, occurred_at, event_seq, position)
) strict, without rowid;
create index event_targets_by_id on event_targets (organization_seq, target_id, occurred_at, event_seq);

-- The verifiable log of each organization (docs/log-format.md): hashes of its complete, aligned
-- subtrees at even levels 2, 4, 6, ... (level l node i covers leaves [i·2^l, (i+1)·2^l)). Leaves
-- live in events.leaf_hash; odd levels are one hash away from the level below. Storing every
-- other level costs a third of an insert per event instead of two. Written in the same commit
-- as the events, never changed afterwards; proofs and roots are composed from these rows.
create table log_nodes (
    organization_seq integer not null,
    level integer not null,
    node_index integer not null,
    hash blob not null,
    primary key (organization_seq, level, node_index)
) strict, without rowid;

-- The latest checkpoint signed for each organization's log. A new checkpoint is signed only
-- after checking that it is consistent with this one.
create table log_checkpoints (
    organization_seq integer primary key,
    tree_size integer not null,
    root_hash blob not null,
    note text not null,
    signed_at integer not null
) strict;

-- Idempotency keys of ingest requests, kept 24 hours. Keys and bodies are stored as 16-byte
-- prefixes of their SHA-256, so a key costs the same small amount whatever its length.
create table idempotency_keys (
    organization_seq integer not null,
    key_hash blob not null,
    request_hash blob not null,
    response text,                  -- the response body when it is not {"success": true}
    created_at integer not null,
    primary key (organization_seq, key_hash)
) strict, without rowid;
create index idempotency_keys_created on idempotency_keys (created_at);
