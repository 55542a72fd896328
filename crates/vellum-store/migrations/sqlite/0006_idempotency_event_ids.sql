-- A claimed Idempotency-Key remembers the ids of the events its append stored, so that a replay
-- can name them without the store keeping any response body. `response` now holds the ingest
-- service's own record of the outcome (rows written before this migration hold the batch
-- response body they answered with, and no ids).
alter table idempotency_keys add column event_ids blob;
