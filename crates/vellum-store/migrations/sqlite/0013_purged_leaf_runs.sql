-- Purged leaves, packed. A purge step keeps the leaf of each position it removes; one row per
-- position in `purged_leaves` cost about 54 bytes (its key, the 32-byte hash, the record's
-- position, page slack). Here one row holds a run of up to 24 consecutive positions removed by
-- the same record, their leaf hashes end to end: about 33 bytes per position, a row small enough
-- to stay within its b-tree page (five to a 4 KiB page). Rows an earlier version wrote to
-- `purged_leaves` stay there and are read as before.
create table purged_leaf_runs (
    organization_seq integer not null,
    first_index integer not null,   -- the run's first position
    purged_by integer not null,     -- the position of the purge record that removed the run
    leaves blob not null,           -- 32 bytes per position, from first_index on
    primary key (organization_seq, first_index)
) strict, without rowid;
