-- Exports are claimed with a lease (docs/exports.md, "How exports run"), so that several
-- processes sharing the database never write the same export at once. A claim takes the
-- oldest pending export whose lease is absent or has run out, names the claiming worker in
-- `lease_owner` until `lease_until` (milliseconds since the Unix epoch) and counts a start in
-- `attempts`. The worker renews the lease while it writes; only the owner may finish the export,
-- and finishing clears the lease. Rows written before this migration have no lease, so the
-- exports an upgraded store left pending are taken up at once.
alter table exports add column lease_owner text;
alter table exports add column lease_until integer;

-- The claim's scan: pending exports in creation order.
create index exports_pending on exports (seq) where state = 'pending';
