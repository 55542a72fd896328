//! Appends, in group commits per organization.
//!
//! Each node keeps one queue per organization with appends waiting. The first append to find its
//! organization's queue empty starts a task that drains it: it takes every waiting append (up to
//! [`MAX_BATCH_EVENTS`] events) into one transaction, commits, answers each caller, and goes on
//! until the queue is empty. So concurrent appends of one organization share a commit, while
//! appends of different organizations run side by side on separate connections.
//!
//! Inside the transaction, idempotency keys are claimed first, in key order, then positions are
//! taken from the organization's `log_heads` row (`update … returning`), which holds that row's
//! lock until commit: across every node, one organization's appends take positions one
//! transaction at a time, in commit order, without gaps (a rolled-back transaction gives its
//! positions back). Claiming keys before the head, each in a fixed order, means two
//! transactions never wait on each other in a cycle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use deadpool_postgres::Transaction;
use tokio::sync::{Notify, oneshot};
use tracing::Instrument;
use vellum_core::{Event, EventId, OrganizationId};

use super::log::PgLog;
use super::partitions::Partitions;
use super::{id_bytes, ulid_from};
use crate::payload::PreparedEvent;
use crate::verifiable_log::Frontiers;
use crate::{AppendOutcome, IDEMPOTENCY_WINDOW_MILLIS, IdempotencyClaim, StoreError};

/// The most events one group commit takes (a single append larger than this commits alone).
const MAX_BATCH_EVENTS: usize = 4_000;

/// Whether the organization is live (`None`: unknown).
const LIVE: &str = "select deleted_at is null from organizations where id = $1";

/// Claims an idempotency key: a new key, or one whose claim is older than the window ($7), is
/// taken (a row returned); a live claim is left alone (no row).
const CLAIM_KEY: &str =
    "insert into idempotency_keys (organization_id, key_hash, request_hash, response, event_ids, created_at)
     values ($1, $2, $3, $4, $5, $6)
     on conflict (organization_id, key_hash) do update set request_hash = excluded.request_hash,
     response = excluded.response, event_ids = excluded.event_ids, created_at = excluded.created_at
     where idempotency_keys.created_at <= $7
     returning 1";

/// Takes $2 positions of the organization's log under its head row's lock, held until commit;
/// returns the first.
const TAKE_POSITIONS: &str = "insert into log_heads (organization_id, size) values ($1, $2)
     on conflict (organization_id) do update set size = log_heads.size + excluded.size
     returning size - $2";

/// A live claim of a key.
const STORED_CLAIM: &str = "select request_hash, response, event_ids from idempotency_keys
     where organization_id = $1 and key_hash = $2 and created_at > $3";

/// The leaves of a group commit.
const INSERT_LEAVES: &str = "insert into log_leaves (organization_id, log_index, leaf_hash, event_id, received_at)
     select $1, * from unnest($2::bigint[], $3::bytea[], $4::bytea[], $5::bigint[])";

/// The events of a group commit; returns each position with its listing `seq`.
const INSERT_EVENTS: &str =
    "insert into events (organization_id, received_at, id, log_index, occurred_at, action, actor_id,
     actor_name, schema_version, payload, target_count)
     select $1, * from unnest($2::bigint[], $3::bytea[], $4::bigint[], $5::bigint[], $6::text[],
     $7::text[], $8::text[], $9::int[], $10::text[], $11::int[])
     returning log_index, seq";

/// The events' target rows.
const INSERT_TARGETS: &str =
    "insert into event_targets (organization_id, received_at, event_seq, position, target_type,
     target_id, occurred_at)
     select $1, * from unnest($2::bigint[], $3::bigint[], $4::int[], $5::text[], $6::text[], $7::bigint[])";

/// The rows of the events received through the legacy Audit Trail API.
const INSERT_TRAIL: &str =
    "insert into audit_trail_events (organization_id, received_at, event_seq, occurred_at, group_name,
     action_type, target_name, target_id)
     select $1, * from unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],
     $7::text[], $8::text[])";

/// One caller's append, waiting for its group commit.
struct Job {
    events: Vec<PreparedEvent>,
    idempotency: Option<IdempotencyClaim>,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// The per-organization queues of one node, and the tasks draining them.
pub(super) struct Appender {
    pool: deadpool_postgres::Pool,
    partitions: Arc<Partitions>,
    frontiers: Frontiers<[u8; 16]>,
    queues: Mutex<HashMap<OrganizationId, Vec<Job>>>,
    draining: AtomicUsize,
    drained: Notify,
}

impl Appender {
    pub(super) fn new(pool: deadpool_postgres::Pool, partitions: Arc<Partitions>) -> Self {
        Self {
            pool,
            partitions,
            frontiers: Frontiers::new(),
            queues: Mutex::new(HashMap::new()),
            draining: AtomicUsize::new(0),
            drained: Notify::new(),
        }
    }

    /// Appends events to a live organization's log, with their claim, and returns once durable.
    pub(super) async fn append(
        self: &Arc<Self>,
        organization_id: OrganizationId,
        events: Vec<PreparedEvent>,
        idempotency: Option<IdempotencyClaim>,
    ) -> Result<AppendOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            events,
            idempotency,
            reply,
        };
        let start = {
            let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
            match queues.get_mut(&organization_id) {
                Some(queue) => {
                    queue.push(job);
                    false
                }
                None => {
                    queues.insert(organization_id, vec![job]);
                    true
                }
            }
        };
        if start {
            self.draining.fetch_add(1, Ordering::AcqRel);
            let appender = Arc::clone(self);
            tokio::spawn(async move { appender.drain(organization_id).await });
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Internal("the append was dropped".into())))
    }

    /// Waits until every queued append has been answered.
    pub(super) async fn close(&self) {
        loop {
            let drained = self.drained.notified();
            if self.draining.load(Ordering::Acquire) == 0 {
                return;
            }
            drained.await;
        }
    }

    /// Commits the organization's waiting appends, batch after batch, until none waits.
    async fn drain(&self, organization_id: OrganizationId) {
        let mut guard = Draining {
            appender: self,
            organization_id,
            done: false,
        };
        loop {
            let jobs = {
                let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(queue) = queues.get_mut(&organization_id) else {
                    guard.done = true;
                    return;
                };
                if queue.is_empty() {
                    queues.remove(&organization_id);
                    guard.done = true;
                    return;
                }
                let mut events = 0;
                let take = queue
                    .iter()
                    .take_while(|job| {
                        events += job.events.len();
                        events <= MAX_BATCH_EVENTS
                    })
                    .count()
                    .max(1);
                queue.drain(..take).collect::<Vec<_>>()
            };
            self.commit(organization_id, jobs).await;
        }
    }

    /// One group commit: answers every job, with its outcome or the batch's error.
    async fn commit(&self, organization_id: OrganizationId, jobs: Vec<Job>) {
        let key = organization_id.ulid().to_bytes();
        let (outcomes, replies): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .map(|job| ((job.events, job.idempotency), job.reply))
            .unzip();
        let started = std::time::Instant::now();
        let batch = replies.len();
        let ran = self
            .run(organization_id, outcomes)
            .instrument(tracing::debug_span!("commit", jobs = batch, organization = %organization_id))
            .await;
        crate::observe_commit(batch, started.elapsed());
        match ran {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                // Rolled back (or its commit's fate unknown): the cached right edge may be ahead.
                self.frontiers.forget(&key);
                for reply in replies {
                    let _ = reply.send(Err(same_error(&error)));
                }
            }
        }
    }

    /// Appends prepared events inside the caller's transaction, which then holds the log's head
    /// row lock until it ends. The caller forgets the cached right edge if it rolls back.
    pub(super) async fn append_in(
        &self,
        transaction: &Transaction<'_>,
        organization_id: OrganizationId,
        prepared: &[&PreparedEvent],
    ) -> Result<Vec<Event>, StoreError> {
        let organization = id_bytes(organization_id.ulid());
        let count_i64 = i64::try_from(prepared.len()).unwrap_or(i64::MAX);
        let first: i64 = transaction
            .query_one(
                &transaction.prepare_cached(TAKE_POSITIONS).await?,
                &[&organization, &count_i64],
            )
            .await?
            .get(0);
        let mut batch = Batch::default();
        let mut events = Vec::with_capacity(prepared.len());
        for (position, prepared) in (first..).zip(prepared) {
            let mut event = prepared.event.clone();
            event.log_index = super::log::index_u64(position)?;
            let leaf = prepared.leaf.leaf_hash(event.log_index);
            batch.push(&event, &prepared.payload, leaf, position);
            events.push(event);
        }
        batch.insert(transaction, &organization).await?;
        let log = PgLog {
            transaction,
            organization: organization.clone(),
        };
        self.frontiers
            .append(
                &log,
                organization_id.ulid().to_bytes(),
                super::log::index_u64(first)?,
                &batch.leaves,
            )
            .await?;
        Ok(events)
    }

    /// Forgets the cached right edge of a log (after a transaction that appended rolled back).
    pub(super) fn forget(&self, organization_id: OrganizationId) {
        self.frontiers.forget(&organization_id.ulid().to_bytes());
    }

    async fn run(
        &self,
        organization_id: OrganizationId,
        jobs: Vec<(Vec<PreparedEvent>, Option<IdempotencyClaim>)>,
    ) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
        let now = crate::now();
        if self.partitions.due(now) {
            self.partitions.ensure(&self.pool, now).await?;
        }
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let organization = id_bytes(organization_id.ulid());
        let live: Option<bool> = transaction
            .query_opt(&transaction.prepare_cached(LIVE).await?, &[&organization])
            .await?
            .map(|row| row.get(0));
        let Some(live) = live else {
            return Ok(jobs
                .iter()
                .map(|_| Err(StoreError::not_found("Organization", organization_id)))
                .collect());
        };

        // Claims first, in key order (see the module's comment). A claim within 24 hours answers
        // its job (replay or reuse); an older one starts over.
        let mut results: Vec<Option<Result<AppendOutcome, StoreError>>> = jobs.iter().map(|_| None).collect();
        let mut claim_order: Vec<usize> = (0..jobs.len()).filter(|&job| jobs[job].1.is_some()).collect();
        claim_order.sort_by_key(|&job| jobs[job].1.as_ref().map(|claim| claim.key_hash));
        let cutoff = now.unix_millis() - IDEMPOTENCY_WINDOW_MILLIS;
        for job in claim_order {
            let (events, Some(claim)) = &jobs[job] else {
                continue;
            };
            let claimed = if live {
                let event_ids: Vec<u8> = events
                    .iter()
                    .flat_map(|event| event.event.id.ulid().to_bytes())
                    .collect();
                transaction
                    .query_opt(
                        &transaction.prepare_cached(CLAIM_KEY).await?,
                        &[
                            &organization,
                            &claim.key_hash.as_slice(),
                            &claim.request_hash.as_slice(),
                            &claim.record,
                            &event_ids,
                            &now.unix_millis(),
                            &cutoff,
                        ],
                    )
                    .await?
                    .is_some()
            } else {
                false
            };
            if !claimed {
                results[job] = Some(match stored_claim(&transaction, &organization, claim, cutoff).await? {
                    Some(outcome) => Ok(outcome),
                    None => Err(StoreError::not_found("Organization", organization_id)),
                });
            }
        }
        if !live {
            return Ok(results
                .into_iter()
                .map(|result| result.unwrap_or_else(|| Err(StoreError::not_found("Organization", organization_id))))
                .collect());
        }

        let appending: Vec<usize> = (0..jobs.len()).filter(|&job| results[job].is_none()).collect();
        let count: usize = appending.iter().map(|&job| jobs[job].0.len()).sum();
        let mut stored: Vec<Vec<Event>> = Vec::new();
        if count > 0 {
            let prepared: Vec<&PreparedEvent> = appending.iter().flat_map(|&job| jobs[job].0.iter()).collect();
            let mut events = self
                .append_in(&transaction, organization_id, &prepared)
                .await?
                .into_iter();
            for &job in &appending {
                stored.push(events.by_ref().take(jobs[job].0.len()).collect());
            }
        }
        transaction.commit().await?;
        let mut stored = stored.into_iter();
        Ok(results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| Ok(AppendOutcome::Appended(stored.next().unwrap_or_default()))))
            .collect())
    }
}

/// The drain of one organization's queue, in progress. However the drain ends (a panic in a
/// commit included), the count of drains goes down; if it did not end by emptying the queue,
/// the queue is dropped with it, which answers its waiting callers with an error rather than
/// leaving them, and every later append of the organization, waiting for a drain that is gone.
struct Draining<'a> {
    appender: &'a Appender,
    organization_id: OrganizationId,
    done: bool,
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.appender
                .queues
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&self.organization_id);
        }
        if self.appender.draining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.appender.drained.notify_waiters();
        }
    }
}

/// An error for each caller of a failed group commit.
fn same_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::NotFound { kind, id } => StoreError::NotFound { kind, id: id.clone() },
        StoreError::Conflict(message) => StoreError::Conflict(message.clone()),
        StoreError::Unavailable(message) => StoreError::Unavailable(message.clone()),
        StoreError::InvalidInput { field, message } => StoreError::InvalidInput {
            field,
            message: message.clone(),
        },
        StoreError::Internal(message) => StoreError::Internal(message.clone()),
    }
}

/// What a live claim of this key answers, if there is one.
async fn stored_claim(
    transaction: &Transaction<'_>,
    organization: &[u8],
    claim: &IdempotencyClaim,
    cutoff: i64,
) -> Result<Option<AppendOutcome>, StoreError> {
    let Some(row) = transaction
        .query_opt(
            &transaction.prepare_cached(STORED_CLAIM).await?,
            &[&organization, &claim.key_hash.as_slice(), &cutoff],
        )
        .await?
    else {
        return Ok(None);
    };
    claim_outcome(&row, claim.request_hash).map(Some)
}

/// What a stored claim (`request_hash, response, event_ids`) answers a request with this hash.
pub(super) fn claim_outcome(row: &tokio_postgres::Row, request_hash: [u8; 16]) -> Result<AppendOutcome, StoreError> {
    let stored_hash: Vec<u8> = row.try_get(0)?;
    if stored_hash != request_hash {
        return Ok(AppendOutcome::KeyReused);
    }
    let event_ids: Option<Vec<u8>> = row.try_get(2)?;
    let event_ids = event_ids.unwrap_or_default();
    if !event_ids.len().is_multiple_of(16) {
        return Err(StoreError::Internal("stored event ids are not 16 bytes each".into()));
    }
    Ok(AppendOutcome::Replayed {
        record: row.try_get(1)?,
        event_ids: event_ids
            .chunks_exact(16)
            .map(|id| Ok(EventId::from_ulid(ulid_from(id)?)))
            .collect::<Result<_, StoreError>>()?,
    })
}

/// The rows of one group commit, column by column, inserted with one statement per table.
#[derive(Default)]
pub(super) struct Batch {
    received_at: Vec<i64>,
    ids: Vec<Vec<u8>>,
    log_index: Vec<i64>,
    occurred_at: Vec<i64>,
    action: Vec<String>,
    actor_id: Vec<String>,
    actor_name: Vec<Option<String>>,
    schema_version: Vec<i32>,
    payload: Vec<String>,
    target_count: Vec<i32>,
    pub(super) leaves: Vec<vellum_core::merkle::Hash>,
    // event_targets, by the event's position in the batch
    target_event: Vec<i32>,
    target_position: Vec<i32>,
    target_type: Vec<String>,
    target_id: Vec<String>,
    // audit_trail_events
    trail_event: Vec<i32>,
    trail_group: Vec<String>,
    trail_action_type: Vec<String>,
    trail_target_name: Vec<String>,
    trail_target_id: Vec<String>,
}

impl Batch {
    pub(super) fn push(&mut self, event: &Event, payload: &str, leaf: vellum_core::merkle::Hash, position: i64) {
        let index = i32::try_from(self.ids.len()).unwrap_or(i32::MAX);
        let input = &event.input;
        self.received_at.push(event.received_at.unix_millis());
        self.ids.push(id_bytes(event.id.ulid()));
        self.log_index.push(position);
        self.occurred_at.push(input.occurred_at.unix_millis());
        self.action.push(input.action.clone());
        self.actor_id.push(input.actor.id.clone());
        self.actor_name.push(input.actor.name.clone());
        self.schema_version
            .push(i32::try_from(event.schema_version).unwrap_or(i32::MAX));
        self.payload.push(payload.to_owned());
        self.target_count
            .push(i32::try_from(input.targets.len()).unwrap_or(i32::MAX));
        self.leaves.push(leaf);
        for (position, target) in input.targets.iter().enumerate() {
            self.target_event.push(index);
            self.target_position.push(i32::try_from(position).unwrap_or(i32::MAX));
            self.target_type.push(target.target_type.clone());
            self.target_id.push(target.id.clone());
        }
        if let Some(flat) = vellum_core::audit_trail::FlatEvent::of(input) {
            self.trail_event.push(index);
            self.trail_group.push(flat.fields.group.clone());
            self.trail_action_type.push(flat.fields.crud());
            self.trail_target_name.push(flat.target_name.to_owned());
            self.trail_target_id.push(flat.target_id.to_owned());
        }
    }

    pub(super) async fn insert(&self, transaction: &Transaction<'_>, organization: &[u8]) -> Result<(), StoreError> {
        let leaves: Vec<&[u8]> = self.leaves.iter().map(|leaf| leaf.as_slice()).collect();
        transaction
            .execute(
                &transaction.prepare_cached(INSERT_LEAVES).await?,
                &[&organization, &self.log_index, &leaves, &self.ids, &self.received_at],
            )
            .await?;
        let returned = transaction
            .query(
                &transaction.prepare_cached(INSERT_EVENTS).await?,
                &[
                    &organization,
                    &self.received_at,
                    &self.ids,
                    &self.log_index,
                    &self.occurred_at,
                    &self.action,
                    &self.actor_id,
                    &self.actor_name,
                    &self.schema_version,
                    &self.payload,
                    &self.target_count,
                ],
            )
            .await?;
        // Positions are consecutive from the first: place each returned seq by its position.
        let first = self.log_index.first().copied().unwrap_or_default();
        let mut seqs = vec![-1_i64; self.ids.len()];
        for row in &returned {
            let position: i64 = row.try_get(0)?;
            let slot = usize::try_from(position - first)
                .ok()
                .and_then(|slot| seqs.get_mut(slot))
                .ok_or_else(|| StoreError::Internal("the database returned an unknown position".into()))?;
            *slot = row.try_get(1)?;
        }
        if returned.len() != seqs.len() || seqs.contains(&-1) {
            return Err(StoreError::Internal(
                "the database returned a different set of rows".into(),
            ));
        }
        let by_event = |events: &[i32]| -> (Vec<i64>, Vec<i64>, Vec<i64>) {
            let mut received = Vec::with_capacity(events.len());
            let mut seq = Vec::with_capacity(events.len());
            let mut occurred = Vec::with_capacity(events.len());
            for &event in events {
                let event = usize::try_from(event).unwrap_or_default();
                received.push(self.received_at[event]);
                seq.push(seqs[event]);
                occurred.push(self.occurred_at[event]);
            }
            (received, seq, occurred)
        };
        if !self.target_event.is_empty() {
            let (received, seq, occurred) = by_event(&self.target_event);
            transaction
                .execute(
                    &transaction.prepare_cached(INSERT_TARGETS).await?,
                    &[
                        &organization,
                        &received,
                        &seq,
                        &self.target_position,
                        &self.target_type,
                        &self.target_id,
                        &occurred,
                    ],
                )
                .await?;
        }
        if !self.trail_event.is_empty() {
            let (received, seq, occurred) = by_event(&self.trail_event);
            transaction
                .execute(
                    &transaction.prepare_cached(INSERT_TRAIL).await?,
                    &[
                        &organization,
                        &received,
                        &seq,
                        &occurred,
                        &self.trail_group,
                        &self.trail_action_type,
                        &self.trail_target_name,
                        &self.trail_target_id,
                    ],
                )
                .await?;
        }
        Ok(())
    }
}
