-- Segments (docs/storage.md). Each organization's log is cut into segments of 2^15 = 32,768
-- positions (segment = log_index >> 15). Every index that serves a listing filter leads with
-- (organization, segment), so the part of it being written is the current segment's: a few
-- hundred pages that stay in cache, whatever the size of the store. Before, those indexes were
-- keyed by (organization, actor or target, time), and at millions of events each event of a batch
-- dirtied its own page of each of them at every commit.
--
-- Listings walk an organization's segments newest first and stop once no older segment can hold
-- a row of the page; `event_segments` keeps each segment's time span for that. Retention will
-- drop whole segments.
create table event_segments (
    organization_seq integer not null,
    segment integer not null,
    min_occurred_at integer not null,
    max_occurred_at integer not null,
    primary key (organization_seq, segment)
) strict, without rowid;
insert into event_segments (organization_seq, segment, min_occurred_at, max_occurred_at)
    select organization_seq, log_index >> 15, min(occurred_at), max(occurred_at)
    from events group by organization_seq, log_index >> 15;

drop index events_organization_time;
drop index events_organization_action_time;
drop index events_organization_actor_time;
drop index events_organization_actor_name_time;
create index events_segment_time on events (organization_seq, (log_index >> 15), occurred_at);
create index events_segment_action_time on events (organization_seq, (log_index >> 15), action, occurred_at);
create index events_segment_actor_time on events (organization_seq, (log_index >> 15), actor_id, occurred_at);
create index events_segment_actor_name_time on events (organization_seq, (log_index >> 15), actor_name, occurred_at)
    where actor_name is not null;

create table event_targets_segmented (
    organization_seq integer not null,
    segment integer not null,
    target_type text not null,
    target_id text not null,
    occurred_at integer not null,
    event_seq integer not null,
    position integer not null,
    primary key (organization_seq, segment, target_type, occurred_at, event_seq, position)
) strict, without rowid;
insert into event_targets_segmented
    select t.organization_seq, e.log_index >> 15, t.target_type, t.target_id, t.occurred_at, t.event_seq, t.position
    from event_targets t join events e on e.seq = t.event_seq;
drop table event_targets;
alter table event_targets_segmented rename to event_targets;
create index event_targets_by_id on event_targets (organization_seq, segment, target_id, occurred_at, event_seq);
