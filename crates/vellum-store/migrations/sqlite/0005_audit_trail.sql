-- Events received through the legacy Audit Trail API (`POST /events`, docs/audit-trail.md).
-- Each is an ordinary row of `events` (same log, exports and listings); this side table holds,
-- for those events only, what `GET /events` filters on that `events` has no column for, and the
-- indexes of that listing, which spans every organization. Events of the newer API cost nothing
-- here. Append-only, written in the same commit as the event.
create table audit_trail_events (
    event_seq integer primary key references events (seq),
    occurred_at integer not null,
    group_name text not null,
    action_type text not null,      -- C, R, U or D (upper case; the event keeps the case sent)
    target_name text not null,
    target_id text not null
) strict;

-- Newest first across all groups, and within groups: (occurred_at, event_seq) order.
create index audit_trail_events_time on audit_trail_events (occurred_at);
create index audit_trail_events_group_time on audit_trail_events (group_name, occurred_at);
