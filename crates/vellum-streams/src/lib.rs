//! Log streams: each organization's events delivered, in log order and at least once, to the
//! destinations it configured (Datadog, Splunk HEC, any HTTPS endpoint signed per Standard
//! Webhooks), with WorkOS's states and a replay API.
//!
//! **Invariants:**
//! - A stream's cursor (the next log position to deliver) moves only after its destination
//!   accepted a batch, in a store operation that checks that this worker still holds the stream
//!   and that the cursor is still where the batch began ([`StreamStore::finish_delivery`]). So a
//!   crash at any moment loses nothing, and re-sends at most the batch in flight.
//! - One worker of one process delivers a stream at a time: deliveries are claimed through the
//!   store under a lease ([`StreamStore::claim_stream`]), which another worker takes over only
//!   once it ran out.
//! - Deliveries read through the store's read path and never hold up ingest: a stream that is
//!   behind catches up batch by batch, each one read, sent and acknowledged before the next.
//! - Secrets are sealed at rest ([`secrets::SecretBox`]), never returned by the API after the
//!   response that created them, and never logged.
//! - Without the operator's setting, no request reaches a loopback, private, link-local or
//!   otherwise special address ([`transport`]).

mod objects;
pub mod secrets;
mod sentinel;
mod snowflake;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use async_trait::async_trait;
use serde_json::Value;
use vellum_core::stream::{
    Delivery, OBJECT_WINDOW, SigningSecret, StreamItem, StreamSecrets, StreamState, StreamType, TEST_ACTION, Verdict,
    encode, encode_object, judge, object_window, parse_settings, retry_delay, test_object_key,
};
use vellum_core::{Event, OrganizationId, StreamId, Timestamp, ValidationErrors};
use vellum_jobs::{Job, JobError, Schedule, StepContext, StepOutcome};
use vellum_store::{DeliveryOutcome, NewStream, Store, StoreError, Stream, StreamChange};

use crate::secrets::SecretBox;
use crate::transport::{SendError, Transport};

/// Renders an event as the API returns it (the HTTP layer owns wire shapes).
pub type RenderEvent = Arc<dyn Fn(&Event) -> Value + Send + Sync>;

/// How streams are delivered.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// Allow destinations at loopback, private, link-local and other special addresses, and
    /// plain `http://` URLs (development and tests).
    pub allow_private_destinations: bool,
    /// Streams delivered at once per process.
    pub workers: usize,
    /// How long a claim keeps other workers off a stream; a crashed worker's streams wait at most
    /// this long to be taken over.
    pub lease: Duration,
    /// Timeout of each request to a destination.
    pub request_timeout: Duration,
    /// Events read per batch (a destination may take fewer per request).
    pub batch_events: u32,
    /// How long a worker keeps one stream before letting the next one have a turn.
    pub turn: Duration,
    /// How often idle workers look for streams with new events (ingest also wakes them).
    pub poll: Duration,
    /// While clients are ingesting (a commit within the last second), the share of its time a
    /// delivery worker spends working: after a batch that took `w` to read and encode, it
    /// rests `w × (1 / share − 1)`. Streams that are behind then catch up more slowly, and
    /// ingest keeps its latency; when ingest is idle they go at full speed.
    pub busy_share: f64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            allow_private_destinations: false,
            workers: 2,
            // A turn, then one request that takes its whole timeout, with room to spare: a
            // lease extended at each accepted batch never runs out under a live worker.
            lease: Duration::from_secs(30),
            request_timeout: Duration::from_secs(15),
            batch_events: 1_000,
            turn: Duration::from_secs(5),
            poll: Duration::from_secs(1),
            busy_share: 0.2,
        }
    }
}

/// Why a streams call failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The request's settings are not valid.
    #[error("{0}")]
    Invalid(ValidationErrors),
    /// A limit was reached.
    #[error("{0}")]
    Limit(String),
    /// The store said no (not found, conflict, invalid input) or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Drawing random bytes or sealing failed.
    #[error("{0}")]
    Internal(String),
}

/// What a connection test found: whether the destination accepted the test event, and what it
/// said when it did not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestOutcome {
    /// The destination accepted it.
    pub success: bool,
    /// Why not (empty on success).
    pub message: String,
}

/// A stream as shown: the stored stream, and the signing secret when this call made one (shown
/// once).
#[derive(Debug)]
pub struct Shown {
    /// The stream.
    pub stream: Stream,
    /// `whsec_…`, only in the answer that created it.
    pub signing_secret: Option<String>,
}

/// What an update asks for.
#[derive(Debug, Default)]
pub struct Update {
    /// New settings (secrets not given again are kept).
    pub config: Option<Value>,
    /// `Active` or `Inactive`; when absent, an inactive stream stays inactive and any other
    /// becomes active again (an update is the way out of `invalid`).
    pub state: Option<StreamState>,
    /// Make a new signing secret (generic HTTPS); the old one keeps signing beside it for
    /// [`vellum_core::stream::ROTATION_OVERLAP`].
    pub rotate_signing_secret: bool,
}

/// How far behind a stream is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lag {
    /// Log positions after the stream's position (purged ones included).
    pub events: u64,
    /// Seconds since the oldest event not yet delivered was received.
    pub seconds: f64,
}

/// Where a replay starts.
#[derive(Clone, Copy, Debug)]
pub enum ReplayFrom {
    /// The first event, in log order, that occurred at or after this time.
    Since(Timestamp),
    /// This log position.
    Position(u64),
}

/// The streams service: the API's use cases, and the delivery job.
pub struct StreamService {
    /// When ingest last committed (milliseconds since the epoch).
    last_ingest: std::sync::atomic::AtomicI64,
    store: Arc<dyn Store>,
    secrets: SecretBox,
    settings: StreamSettings,
    render: RenderEvent,
    transport: Transport,
    tokens: sentinel::Tokens,
}

impl StreamService {
    /// The service over `store`, sealing secrets under `key`.
    pub fn new(
        store: Arc<dyn Store>,
        key: &[u8; 32],
        settings: StreamSettings,
        render: RenderEvent,
    ) -> Result<Arc<Self>, StreamError> {
        let transport = Transport::new(settings.allow_private_destinations, settings.request_timeout)
            .map_err(|error| StreamError::Internal(format!("cannot build the HTTP client: {error}")))?;
        Ok(Arc::new(Self {
            last_ingest: std::sync::atomic::AtomicI64::new(0),
            store,
            secrets: SecretBox::new(key),
            settings,
            render,
            transport,
            tokens: sentinel::Tokens::default(),
        }))
    }

    /// Tells the service that ingest just committed (deliveries yield to ingest for a second).
    pub fn ingest_committed(&self) {
        self.last_ingest
            .store(vellum_store::now().unix_millis(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Rests after a batch that took `work`, while ingest is busy (see
    /// [`StreamSettings::busy_share`]).
    async fn yield_to_ingest(&self, work: Duration) {
        let last = self.last_ingest.load(std::sync::atomic::Ordering::Relaxed);
        let share = self.settings.busy_share;
        if vellum_store::now().unix_millis() - last > 1_000 || !(share > 0.0 && share < 1.0) {
            return;
        }
        tokio::time::sleep(work.mul_f64(1.0 / share - 1.0).min(Duration::from_secs(5))).await;
    }

    /// The settings in force.
    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    fn seal(&self, organization_id: OrganizationId, secrets: &StreamSecrets) -> Result<Vec<u8>, StreamError> {
        self.secrets
            .seal(organization_id, secrets)
            .map_err(|error| StreamError::Internal(format!("cannot seal the stream's secrets: {error}")))
    }

    /// Creates a stream delivering `organization_id`'s events from the end of its log onwards
    /// (a replay sends older ones).
    pub async fn create(
        &self,
        organization_id: OrganizationId,
        kind: StreamType,
        config: &Value,
        state: StreamState,
    ) -> Result<Shown, StreamError> {
        let parsed = parse_settings(kind, config, None, self.settings.allow_private_destinations)
            .map_err(StreamError::Invalid)?;
        check_key(&parsed.destination, &parsed.secrets)?;
        let existing = self.store.list_streams(organization_id).await?;
        if existing.len() >= vellum_core::stream::MAX_STREAMS_PER_ORGANIZATION {
            return Err(StreamError::Limit(format!(
                "an organization has at most {} streams",
                vellum_core::stream::MAX_STREAMS_PER_ORGANIZATION
            )));
        }
        let mut secrets = parsed.secrets;
        let mut signing_secret = None;
        if kind == StreamType::GenericHttps {
            let secret = new_signing_secret()?;
            signing_secret = Some(secret.display());
            secrets.signing_secrets = vec![secret];
        }
        let cursor = self.store.log_tree_head(organization_id).await?.size;
        let stream = self
            .store
            .create_stream(NewStream {
                organization_id,
                destination: parsed.destination,
                sealed_secrets: self.seal(organization_id, &secrets)?,
                state,
                cursor,
            })
            .await?;
        Ok(Shown { stream, signing_secret })
    }

    /// A stream.
    pub async fn get(&self, id: StreamId) -> Result<Stream, StreamError> {
        Ok(self.store.get_stream(id).await?)
    }

    /// An organization's streams.
    pub async fn list(&self, organization_id: OrganizationId) -> Result<Vec<Stream>, StreamError> {
        Ok(self.store.list_streams(organization_id).await?)
    }

    /// Changes a stream's settings or state, or rotates its signing secret.
    pub async fn update(&self, id: StreamId, update: Update) -> Result<Shown, StreamError> {
        let stream = self.store.get_stream(id).await?;
        let kind = stream.destination.stream_type();
        let previous = self.secrets.open(stream.organization_id, &stream.sealed_secrets).ok();
        let (destination, mut secrets) = match &update.config {
            Some(config) => {
                let parsed = parse_settings(
                    kind,
                    config,
                    previous.as_ref(),
                    self.settings.allow_private_destinations,
                )
                .map_err(StreamError::Invalid)?;
                check_key(&parsed.destination, &parsed.secrets)?;
                (parsed.destination, parsed.secrets)
            }
            None => match previous {
                Some(previous) => (stream.destination.clone(), previous),
                None => {
                    let mut errors = ValidationErrors::new();
                    errors.push(
                        "config",
                        "required",
                        "the stream's secrets cannot be read (the stream key changed): give its settings again",
                    );
                    return Err(StreamError::Invalid(errors));
                }
            },
        };
        let mut signing_secret = None;
        if update.rotate_signing_secret {
            if kind != StreamType::GenericHttps {
                let mut errors = ValidationErrors::new();
                errors.push(
                    "rotate_signing_secret",
                    "invalid",
                    "only GenericHttps streams have a signing secret",
                );
                return Err(StreamError::Invalid(errors));
            }
            let now = vellum_store::now().unix_millis();
            let overlap = i64::try_from(vellum_core::stream::ROTATION_OVERLAP.as_millis()).unwrap_or(i64::MAX);
            secrets.signing_secrets.retain(|secret| {
                secret
                    .retired_at
                    .is_none_or(|retired| now < retired.saturating_add(overlap))
            });
            for secret in &mut secrets.signing_secrets {
                secret.retired_at.get_or_insert(now);
            }
            let secret = new_signing_secret()?;
            signing_secret = Some(secret.display());
            secrets.signing_secrets.insert(0, secret);
        } else if kind == StreamType::GenericHttps && secrets.signing_secrets.is_empty() {
            let secret = new_signing_secret()?;
            signing_secret = Some(secret.display());
            secrets.signing_secrets.push(secret);
        }
        let state = update.state.unwrap_or(if stream.state == StreamState::Inactive {
            StreamState::Inactive
        } else {
            StreamState::Active
        });
        let stream = self
            .store
            .update_stream(
                id,
                StreamChange {
                    destination,
                    sealed_secrets: self.seal(stream.organization_id, &secrets)?,
                    state,
                },
            )
            .await?;
        Ok(Shown { stream, signing_secret })
    }

    /// How far behind a stream is: the log positions after its position, and how long ago the
    /// oldest event it has not delivered was received (zero when caught up).
    pub async fn lag(&self, stream: &Stream) -> Result<Lag, StreamError> {
        let size = self.store.log_tree_head(stream.organization_id).await?.size;
        let next = self
            .store
            .stream_events(stream.organization_id, stream.cursor, 1)
            .await?;
        let seconds = next.first().map_or(0.0, |event| {
            let millis = vellum_store::now().unix_millis() - event.received_at.unix_millis();
            (millis.max(0) as f64) / 1_000.0
        });
        Ok(Lag {
            events: size.saturating_sub(stream.cursor),
            seconds,
        })
    }

    /// Deletes a stream.
    pub async fn delete(&self, id: StreamId) -> Result<(), StreamError> {
        Ok(self.store.delete_stream(id).await?)
    }

    /// Delivers again from a point of the log.
    pub async fn replay(&self, id: StreamId, from: ReplayFrom) -> Result<Stream, StreamError> {
        let position = match from {
            ReplayFrom::Position(position) => position,
            ReplayFrom::Since(since) => {
                let stream = self.store.get_stream(id).await?;
                self.store.first_position_since(stream.organization_id, since).await?
            }
        };
        Ok(self.store.replay_stream(id, position).await?)
    }

    /// Sends one test event to the stream's destination now, the way a delivery sends events
    /// (same encoding, credentials and transport rules), and says whether it was accepted.
    /// Nothing of the stream changes: not its position, state or counters. The event's action is
    /// [`TEST_ACTION`]; it has no `log_index` and a fresh id, and a bucket gets it in an object
    /// of its own ([`test_object_key`]).
    pub async fn test(&self, id: StreamId) -> Result<TestOutcome, StreamError> {
        let stream = self.store.get_stream(id).await?;
        let failed = |message: String| TestOutcome {
            success: false,
            message,
        };
        let Ok(secrets) = self.secrets.open(stream.organization_id, &stream.sealed_secrets) else {
            return Ok(failed(
                "the stream's secrets cannot be read (the stream key changed): update the stream".into(),
            ));
        };
        let now = vellum_store::now();
        let item = self.test_item(&stream, now)?;
        let verdict = if stream.destination.is_object_storage() {
            match objects::open(
                &stream.destination,
                &secrets,
                &self.transport,
                self.settings.request_timeout,
            ) {
                Ok(store) => {
                    let organization = stream.organization_id.to_string();
                    let mut object = encode_object(&stream.destination, &organization, &[item], now.unix_millis());
                    object.key = test_object_key(&object.key);
                    objects::put(&*store, object).await
                }
                Err(verdict) => verdict,
            }
        } else {
            let prefix = format!("{}_test_{}", stream.id, ulid::Ulid::generate());
            let mut delivery = encode_request(
                &stream.destination,
                &secrets,
                &[item],
                &prefix,
                now.unix_millis().div_euclid(1_000),
            );
            match self.authorize(&stream, &secrets, &mut delivery).await {
                Err(verdict) => verdict,
                Ok(()) => self.send(&stream, &delivery).await,
            }
        };
        Ok(match verdict {
            Verdict::Accepted => TestOutcome {
                success: true,
                message: String::new(),
            },
            Verdict::Invalid { reason } | Verdict::Retry { reason, .. } => failed(reason),
        })
    }

    /// The test event, rendered as the API renders events, without a position.
    fn test_item(&self, stream: &Stream, now: Timestamp) -> Result<StreamItem, StreamError> {
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert(
            "stream_id".to_owned(),
            vellum_core::event::MetadataValue::String(stream.id.to_string()),
        );
        let input = vellum_core::log_record::access_input(
            TEST_ACTION,
            &stream.organization_id.to_string(),
            &vellum_core::log_record::RecordedBy::vellum("connection test"),
            now,
            metadata,
            None,
            None,
        );
        let event = Event {
            id: vellum_core::EventId::from_ulid(ulid::Ulid::generate()),
            organization_id: stream.organization_id,
            log_index: 0,
            received_at: now,
            schema_version: vellum_core::log_record::RECORD_SCHEMA_VERSION,
            input,
            seals: None,
            erased_by: Vec::new(),
        };
        let mut rendered = (self.render)(&event);
        if let Some(object) = rendered.as_object_mut() {
            // Not in the log: no position to give it.
            object.remove("log_index");
        }
        Ok(StreamItem {
            log_index: 0,
            occurred_at_millis: now.unix_millis(),
            event: rendered,
        })
    }

    /// The delivery job, for the runner.
    pub fn job(self: &Arc<Self>) -> DeliveryJob {
        DeliveryJob {
            service: Arc::clone(self),
        }
    }

    /// Delivers one claimed stream for a turn, then lets it go.
    async fn deliver(&self, context: &StepContext, stream: Stream) -> Result<(), StoreError> {
        let worker = context.worker();
        let started = tokio::time::Instant::now();
        let Ok(secrets) = self.secrets.open(stream.organization_id, &stream.sealed_secrets) else {
            let reason = "the stream's secrets cannot be read (the stream key changed): update the stream".to_owned();
            return self
                .fail(&stream, worker, stream.cursor, StreamState::Invalid, reason, None)
                .await;
        };
        let objects = if stream.destination.is_object_storage() {
            match objects::open(
                &stream.destination,
                &secrets,
                &self.transport,
                self.settings.request_timeout,
            ) {
                Ok(store) => Some(store),
                Err(verdict) => {
                    let reason = match verdict {
                        Verdict::Invalid { reason } | Verdict::Retry { reason, .. } => reason,
                        Verdict::Accepted => String::new(),
                    };
                    return self
                        .fail(&stream, worker, stream.cursor, StreamState::Invalid, reason, None)
                        .await;
                }
            }
        } else {
            None
        };
        let mut position = Position {
            cursor: stream.cursor,
            failures: stream.failures,
        };
        let mut first = true;
        while !context.is_stopping() && started.elapsed() < self.settings.turn {
            // A change by hand (new settings or secrets, disabled, deleted) takes effect at the
            // next batch: this worker lets the stream go, and the next claim reads it afresh.
            if !first && !self.unchanged(&stream).await? {
                break;
            }
            first = false;
            let work = tokio::time::Instant::now();
            let sent = match &objects {
                Some(store) => self.send_window(&stream, &**store, &mut position, worker, work).await?,
                None => self.send_batch(&stream, &secrets, &mut position, worker, work).await?,
            };
            match sent {
                Sent::Done => {}
                Sent::Nothing => break,
                Sent::Stopped => return Ok(()),
            }
        }
        self.store.release_stream(stream.id, worker, vellum_store::now()).await
    }

    /// Whether the stream is as this worker claimed it (not updated, disabled or deleted since).
    async fn unchanged(&self, claimed: &Stream) -> Result<bool, StoreError> {
        match self.store.get_stream(claimed.id).await {
            Ok(now) => Ok(now.updated_at == claimed.updated_at && now.state.delivers()),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Reads, encodes and sends the next batch from the position, one request at a time.
    async fn send_batch(
        &self,
        stream: &Stream,
        secrets: &StreamSecrets,
        position: &mut Position,
        worker: &str,
        work: tokio::time::Instant,
    ) -> Result<Sent, StoreError> {
        let events = self
            .store
            .stream_events(stream.organization_id, position.cursor, self.settings.batch_events)
            .await?;
        if events.is_empty() {
            return Ok(Sent::Nothing);
        }
        // Rendering and encoding are CPU work: off the runtime's threads, so that a stream
        // catching up never holds up the requests the server is answering.
        let (render, destination, batch_secrets, prefix) = (
            Arc::clone(&self.render),
            stream.destination.clone(),
            secrets.clone(),
            stream.id.to_string(),
        );
        let deliveries = tokio::task::spawn_blocking(move || {
            let items = items_of(&events, &*render);
            let now_seconds = vellum_store::now().unix_millis().div_euclid(1_000);
            let mut deliveries = Vec::new();
            let mut sent = 0;
            while sent < items.len() {
                let delivery = encode_request(&destination, &batch_secrets, &items[sent..], &prefix, now_seconds);
                let last = items[sent + delivery.items - 1].log_index;
                sent += delivery.items;
                deliveries.push((delivery, last));
            }
            deliveries
        })
        .await
        .map_err(|error| StoreError::Internal(format!("encoding a batch failed: {error}")))?;
        let work = work.elapsed();
        // Sent one request at a time, each acknowledged before the position moves past it.
        for (mut delivery, last) in deliveries {
            let carried = u64::try_from(delivery.items).unwrap_or(u64::MAX);
            if let Err(verdict) = self.authorize(stream, secrets, &mut delivery).await {
                self.record(stream, worker, position, verdict, last, carried).await?;
                return Ok(Sent::Stopped);
            }
            let verdict = self.send(stream, &delivery).await;
            if matches!(verdict, Verdict::Invalid { .. }) {
                self.tokens.forget(stream.id);
            }
            if !self.record(stream, worker, position, verdict, last, carried).await? {
                return Ok(Sent::Stopped);
            }
        }
        self.yield_to_ingest(work).await;
        Ok(Sent::Done)
    }

    /// Sends one request and judges the destination's answer (a refused address is invalid, a
    /// failed connection worth a retry).
    async fn send(&self, stream: &Stream, delivery: &Delivery) -> Verdict {
        match self.transport.send(delivery).await {
            Ok(answer) => judge(
                stream.destination.stream_type(),
                answer.status,
                answer.retry_after.as_deref(),
                &answer.body,
                vellum_store::now().unix_millis().div_euclid(1_000),
            ),
            Err(SendError::Refused(reason)) => Verdict::Invalid { reason },
            Err(SendError::Failed(reason)) => Verdict::Retry {
                reason,
                retry_after: None,
            },
        }
    }

    /// Adds the credentials that are made rather than configured: Microsoft Sentinel's Entra
    /// token, Snowflake's key-pair JWT.
    async fn authorize(
        &self,
        stream: &Stream,
        secrets: &StreamSecrets,
        delivery: &mut Delivery,
    ) -> Result<(), Verdict> {
        let token = match &stream.destination {
            vellum_core::stream::Destination::MicrosoftSentinel { .. } => {
                self.tokens.get(stream, secrets, &self.transport).await?
            }
            vellum_core::stream::Destination::Snowflake { .. } => {
                snowflake::Signer::new(&stream.destination, secrets.private_key.as_deref().unwrap_or_default())
                    .and_then(|signer| signer.token(vellum_store::now().unix_millis().div_euclid(1_000)))
                    .map_err(|reason| Verdict::Invalid { reason })?
            }
            _ => return Ok(()),
        };
        delivery
            .headers
            .push(("authorization".to_owned(), format!("Bearer {token}")));
        Ok(())
    }

    /// Writes the object of the window holding the next event at or after the position: the
    /// whole window, so an object written before (when the window was not full yet) is
    /// replaced by a complete one.
    async fn send_window(
        &self,
        stream: &Stream,
        store: &dyn object_store::ObjectStore,
        position: &mut Position,
        worker: &str,
        work: tokio::time::Instant,
    ) -> Result<Sent, StoreError> {
        let organization = stream.organization_id;
        let Some(next) = self.store.stream_events(organization, position.cursor, 1).await?.pop() else {
            return Ok(Sent::Nothing);
        };
        let window = object_window(next.log_index);
        let window_size = u32::try_from(OBJECT_WINDOW).unwrap_or(u32::MAX);
        let mut events = self.store.stream_events(organization, window, window_size).await?;
        events.retain(|event| event.log_index < window + OBJECT_WINDOW);
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(Sent::Nothing);
        };
        let (received, last) = (first.received_at.unix_millis(), last.log_index);
        let carried = u64::try_from(events.len()).unwrap_or(u64::MAX);
        let (render, destination, organization_text) = (
            Arc::clone(&self.render),
            stream.destination.clone(),
            organization.to_string(),
        );
        let object = tokio::task::spawn_blocking(move || {
            encode_object(&destination, &organization_text, &items_of(&events, &*render), received)
        })
        .await
        .map_err(|error| StoreError::Internal(format!("encoding an object failed: {error}")))?;
        let work = work.elapsed();
        let verdict = objects::put(store, object).await;
        if !self.record(stream, worker, position, verdict, last, carried).await? {
            return Ok(Sent::Stopped);
        }
        self.yield_to_ingest(work).await;
        Ok(Sent::Done)
    }

    /// Records a verdict on what was sent up to `last`. `true`: go on with the next batch;
    /// `false`: the stream was let go (failed, or no longer this worker's).
    async fn record(
        &self,
        stream: &Stream,
        worker: &str,
        position: &mut Position,
        verdict: Verdict,
        last: u64,
        events: u64,
    ) -> Result<bool, StoreError> {
        match verdict {
            Verdict::Accepted => {
                let next = last + 1;
                let now = vellum_store::now();
                let outcome = DeliveryOutcome::Delivered {
                    next,
                    events,
                    lease_until: later(now, self.settings.lease),
                };
                match self
                    .store
                    .finish_delivery(stream.id, worker, position.cursor, outcome, now)
                    .await
                {
                    Ok(()) => {}
                    // A replay moved the position, or the lease was lost: stop; the next claim
                    // starts from wherever the stream now stands.
                    Err(StoreError::Conflict(_)) => {
                        self.store
                            .release_stream(stream.id, worker, vellum_store::now())
                            .await?;
                        return Ok(false);
                    }
                    Err(error) => return Err(error),
                }
                metrics::counter!("vellum_stream_deliveries_total", "outcome" => "delivered").increment(1);
                metrics::counter!("vellum_stream_events_delivered_total").increment(events);
                tracing::debug!(stream = %stream.id, from = position.cursor, last, "delivered");
                position.cursor = next;
                position.failures = 0;
                Ok(true)
            }
            Verdict::Retry { reason, retry_after } => {
                position.failures = position.failures.saturating_add(1);
                let delay = retry_delay(position.failures, jitter(), retry_after);
                tracing::warn!(
                    stream = %stream.id,
                    %reason,
                    failures = position.failures,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "delivery failed; will retry"
                );
                metrics::counter!("vellum_stream_deliveries_total", "outcome" => "failed").increment(1);
                let next = later(vellum_store::now(), delay);
                self.fail(stream, worker, position.cursor, StreamState::Error, reason, Some(next))
                    .await?;
                Ok(false)
            }
            Verdict::Invalid { reason } => {
                tracing::warn!(stream = %stream.id, %reason, "delivery refused; the stream is invalid until updated");
                metrics::counter!("vellum_stream_deliveries_total", "outcome" => "invalid").increment(1);
                self.fail(stream, worker, position.cursor, StreamState::Invalid, reason, None)
                    .await?;
                Ok(false)
            }
        }
    }

    async fn fail(
        &self,
        stream: &Stream,
        worker: &str,
        cursor: u64,
        state: StreamState,
        reason: String,
        next_attempt_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let outcome = DeliveryOutcome::Failed {
            state,
            reason,
            next_attempt_at,
        };
        match self
            .store
            .finish_delivery(stream.id, worker, cursor, outcome, vellum_store::now())
            .await
        {
            Err(StoreError::Conflict(_)) => self.store.release_stream(stream.id, worker, vellum_store::now()).await,
            other => other,
        }
    }
}

/// Compresses a request's body with gzip and says so in its headers (unchanged if compressing
/// fails, which writing into memory does not).
/// One request of a batch (or a test) as the destination takes it: encoded by the core, and
/// gzipped for Datadog (its 5 MB limit counts the uncompressed body; audit events shrink about
/// tenfold).
fn encode_request(
    destination: &vellum_core::stream::Destination,
    secrets: &StreamSecrets,
    items: &[StreamItem],
    prefix: &str,
    now_seconds: i64,
) -> Delivery {
    let mut delivery = encode(destination, secrets, items, prefix, now_seconds);
    if matches!(destination, vellum_core::stream::Destination::Datadog { .. }) {
        gzip(&mut delivery);
    }
    delivery
}

fn gzip(delivery: &mut Delivery) {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if encoder.write_all(&delivery.body).is_ok()
        && let Ok(compressed) = encoder.finish()
    {
        delivery.body = compressed;
        delivery
            .headers
            .push(("content-encoding".to_owned(), "gzip".to_owned()));
    }
}

/// Where a delivery worker stands in one stream.
struct Position {
    /// The next position to deliver.
    cursor: u64,
    /// Failures in a row.
    failures: u32,
}

/// What one round of a delivery did.
enum Sent {
    /// Sent and accepted: go on.
    Done,
    /// Nothing to send: caught up.
    Nothing,
    /// The stream was let go (a failure recorded, or no longer this worker's).
    Stopped,
}

/// Events as the destination receives them.
fn items_of(events: &[Event], render: &(dyn Fn(&Event) -> Value + Send + Sync)) -> Vec<StreamItem> {
    events
        .iter()
        .map(|event| StreamItem {
            log_index: event.log_index,
            occurred_at_millis: event.input.occurred_at.unix_millis(),
            event: render(event),
        })
        .collect()
}

/// A Snowflake stream's private key must be one Vellum can sign with: refused at once rather
/// than found out at the first delivery.
fn check_key(destination: &vellum_core::stream::Destination, secrets: &StreamSecrets) -> Result<(), StreamError> {
    if matches!(destination, vellum_core::stream::Destination::Snowflake { .. })
        && let Err(reason) = snowflake::Signer::new(destination, secrets.private_key.as_deref().unwrap_or_default())
    {
        let mut errors = ValidationErrors::new();
        errors.push("config.private_key", "invalid", reason);
        return Err(StreamError::Invalid(errors));
    }
    Ok(())
}

fn new_signing_secret() -> Result<SigningSecret, StreamError> {
    let key = vellum_store::random_bytes().map_err(|error| StreamError::Internal(error.to_string()))?;
    Ok(SigningSecret {
        key: key.to_vec(),
        retired_at: None,
    })
}

/// A number in `[0, 1]` for a retry's jitter.
fn jitter() -> f64 {
    let mut bytes = [0_u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        return 1.0;
    }
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

fn later(now: Timestamp, by: Duration) -> Timestamp {
    let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_unix_millis(now.unix_millis().saturating_add(millis)).unwrap_or(now)
}

/// The job delivering streams: each step claims the stream that waited longest among those with
/// events to deliver, and delivers it for a turn.
pub struct DeliveryJob {
    service: Arc<StreamService>,
}

#[async_trait]
impl Job for DeliveryJob {
    fn name(&self) -> &'static str {
        "log-streams"
    }

    fn schedule(&self) -> Schedule {
        Schedule::every(self.service.settings.poll).with_workers(self.service.settings.workers)
    }

    async fn step(&self, context: &StepContext) -> Result<StepOutcome, JobError> {
        let service = &self.service;
        let now = vellum_store::now();
        let Some(stream) = service
            .store
            .claim_stream(context.worker(), now, later(now, service.settings.lease))
            .await?
        else {
            return Ok(StepOutcome::Idle);
        };
        let span = tracing::info_span!("stream_delivery", stream = %stream.id, organization = %stream.organization_id);
        service.deliver(context, stream).instrument(span).await?;
        Ok(StepOutcome::Worked)
    }
}
