-- Retention: legal holds, and what a purge leaves of each position it removed.

-- A legal hold in force: since when (milliseconds), and why.
alter table organizations add column legal_hold_since integer;
alter table organizations add column legal_hold_reason text;

-- A purged position keeps its leaf (so the tree, its roots and proofs stay as they were) and the
-- position of the purge record that removed its event (so a verifier can account for it).
create table purged_leaves (
    organization_seq integer not null,
    log_index integer not null,
    leaf_hash blob not null,
    purged_by integer not null,
    primary key (organization_seq, log_index)
) strict, without rowid;
