-- Retention: legal holds, and which purge record removed the event of a kept leaf.

alter table organizations add column if not exists legal_hold_since bigint;
alter table organizations add column if not exists legal_hold_reason text;

-- Set when a purge removed the position's event: the position of the purge record. The leaf
-- itself stays, so the tree, its roots and proofs are unchanged.
alter table log_leaves add column if not exists purged_by bigint;
