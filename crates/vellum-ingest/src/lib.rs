//! The one way events enter Vellum.
//!
//! [`IngestService`] owns the three ways in (one event, a batch, a legacy Audit Trail event):
//! the `Idempotency-Key` claim, resolving and checking the action's schema, the append, and the
//! typed outcome the HTTP layer renders. Events validated here are appended by the store in
//! one commit with their claim; once the commit is durable, the subscribers of
//! [`IngestService::subscribe`] hear of them promptly (log streams, the live tail and metrics
//! listen there, off the write path), and read the store by log position for anything the
//! announcements did not carry.
//!
//! Shape checks of an event (`vellum_core::event::validate_event`) run in the caller, which
//! alone knows the wire form; everything after them runs here.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use tracing::Instrument;
use vellum_core::schema::SchemaViolation;
use vellum_core::{Event, EventId, EventInput, NewOrganization, OrganizationId, ValidationErrors};
use vellum_store::{AppendOutcome, IdempotencyClaim, NewEvent, Store, StoreError, StoredSchema};

mod record;
mod schemas;

/// The schema version recorded for legacy events: the legacy API has no schemas, so they are
/// checked against the legacy rules only, never against an action's schema.
pub const AUDIT_TRAIL_SCHEMA_VERSION: u32 = 0;

/// The longest `Idempotency-Key` accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 1024;

/// How many commits a subscriber may fall behind before it misses some (it is then told how
/// many it missed, and catches up from the store).
const NOTIFICATION_BUFFER: usize = 1024;

/// Why an event (or a whole request) was refused. Nothing was stored for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Fields that are missing or malformed.
    Fields(ValidationErrors),
    /// The event does not match its action's schema.
    Schema(Vec<SchemaViolation>),
}

/// Why a request failed as a whole. Nothing was stored.
#[derive(Debug)]
pub enum IngestError {
    /// The event was refused.
    Rejected(Rejection),
    /// The `Idempotency-Key` was used within 24 hours with a different request.
    KeyReused,
    /// The store refused or failed (an unknown organization is `StoreError::NotFound`).
    Store(StoreError),
}

impl From<StoreError> for IngestError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// An `Idempotency-Key` bound to the request it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    key_hash: [u8; 16],
    request_hash: [u8; 16],
}

impl IdempotencyKey {
    /// Binds a key to a request: `operation` names the way in (its path), `body` is the request
    /// body as sent. A retry must send both unchanged to be answered as the first was.
    pub fn new(key: &[u8], operation: &str, body: &[u8]) -> Result<Self, ValidationErrors> {
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
            let mut errors = ValidationErrors::new();
            errors.push(
                "Idempotency-Key",
                "invalid",
                format!("an Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes long"),
            );
            return Err(errors);
        }
        let mut key_hash = [0u8; 16];
        key_hash.copy_from_slice(&Sha256::digest(key)[..16]);
        let mut hasher = Sha256::new();
        hasher.update(operation.as_bytes());
        hasher.update([0]);
        hasher.update(body);
        let mut request_hash = [0u8; 16];
        request_hash.copy_from_slice(&hasher.finalize()[..16]);
        Ok(Self { key_hash, request_hash })
    }

    fn claim(&self, record: Option<String>) -> IdempotencyClaim {
        IdempotencyClaim {
            key_hash: self.key_hash,
            request_hash: self.request_hash,
            record,
        }
    }
}

/// What creating one event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// It was stored with this id.
    Stored(EventId),
    /// The same request was stored before under its `Idempotency-Key`: nothing new was stored.
    Replayed,
}

/// One item of a batch, in the order sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchItem {
    /// Stored with this id.
    Stored(EventId),
    /// Refused; nothing was stored for it.
    Rejected(Rejection),
}

/// What a batch did, item by item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOutcome {
    /// One entry per event sent, in order.
    pub items: Vec<BatchItem>,
}

impl BatchOutcome {
    /// How many items were stored.
    pub fn succeeded(&self) -> usize {
        self.items
            .iter()
            .filter(|item| matches!(item, BatchItem::Stored(_)))
            .count()
    }
}

/// The answer to a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchResult {
    /// What this batch did (or, replayed, what its first request did).
    Outcome(BatchOutcome),
    /// A replay of a batch claimed by an earlier version of Vellum, which stored the response
    /// body itself: answer with it unchanged.
    Verbatim(String),
}

/// Events that were just committed durably, in log order.
#[derive(Debug)]
pub struct Committed {
    /// Their organization.
    pub organization_id: OrganizationId,
    /// The events, with their log positions.
    pub events: Vec<Event>,
}

/// The ingest service; cheap to share (`Arc`).
pub struct IngestService {
    store: Arc<dyn Store>,
    schemas: schemas::SchemaRegistry,
    committed: broadcast::Sender<Arc<Committed>>,
}

impl std::fmt::Debug for IngestService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IngestService")
            .field("subscribers", &self.committed.receiver_count())
            .finish_non_exhaustive()
    }
}

impl IngestService {
    /// A service appending to `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            schemas: schemas::SchemaRegistry::default(),
            committed: broadcast::channel(NOTIFICATION_BUFFER).0,
        }
    }

    /// Hears of commits of events from now on: a prompt hint, not a record. Each announcement
    /// carries whole commits with their log positions, but announcements of concurrent requests
    /// may arrive out of commit order, and one is missed when its request is dropped between the
    /// commit and the announcement (a client gone, a shutdown). A subscriber that falls more than
    /// 1,024 announcements behind gets `RecvError::Lagged`. Subscribers therefore keep, per
    /// organization, the next log position they expect, and read any gap from the store by
    /// position (`LogStore::log_entries`); the store is the only record. Nothing here ever waits
    /// for a subscriber.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Committed>> {
        self.committed.subscribe()
    }

    /// Tells the service about a schema version just created, so that events naming its action
    /// are checked against it at once.
    pub fn schema_created(&self, stored: StoredSchema) -> Result<(), StoreError> {
        self.schemas.remember(stored, true).map(|_| ())
    }

    /// Checks an event against its action's schema: the version it names, or the latest.
    async fn check_schema(&self, input: &EventInput) -> Result<Result<u32, Rejection>, StoreError> {
        let Some((version, schema)) = self.schemas.resolve(&*self.store, &input.action, input.version).await? else {
            let violation = match input.version {
                Some(version) => SchemaViolation {
                    instance_path: "/version".into(),
                    message: format!("action `{}` has no schema version {version}", input.action),
                },
                None => SchemaViolation {
                    instance_path: "/action".into(),
                    message: format!(
                        "action `{}` has no schema; create one with POST /audit_logs/actions/{}/schemas",
                        input.action, input.action
                    ),
                },
            };
            return Ok(Err(Rejection::Schema(vec![violation])));
        };
        let violations = schema.check(input);
        Ok(if violations.is_empty() {
            Ok(version)
        } else {
            Err(Rejection::Schema(violations))
        })
    }

    fn notify(&self, organization_id: OrganizationId, events: Vec<Event>) {
        if self.committed.receiver_count() > 0 && !events.is_empty() {
            // An error means every subscriber left meanwhile: nobody to tell.
            let _ = self.committed.send(Arc::new(Committed {
                organization_id,
                events,
            }));
        }
    }

    async fn append_one(
        &self,
        organization_id: OrganizationId,
        event: NewEvent,
        key: Option<&IdempotencyKey>,
    ) -> Result<Created, IngestError> {
        let outcome = self
            .store
            .append_events(organization_id, vec![event], key.map(|key| key.claim(None)))
            .await?;
        match outcome {
            AppendOutcome::Appended(events) => {
                let id = events.first().map(|event| event.id);
                self.notify(organization_id, events);
                id.map(Created::Stored)
                    .ok_or_else(|| StoreError::Internal("an append of one event stored none".into()).into())
            }
            AppendOutcome::Replayed { .. } => Ok(Created::Replayed),
            AppendOutcome::KeyReused => Err(IngestError::KeyReused),
        }
    }

    /// Appends a record Vellum writes itself (an [`EventInput::system`] input built by
    /// `vellum_core::log_record`, checked against no schema) to an organization's log, and
    /// announces it like any event, so that streams deliver it too.
    pub async fn record(&self, organization_id: OrganizationId, input: EventInput) -> Result<Event, StoreError> {
        if !input.system {
            return Err(StoreError::Internal(
                "only Vellum's own records are appended unchecked".into(),
            ));
        }
        let event = NewEvent {
            input,
            schema_version: vellum_core::log_record::RECORD_SCHEMA_VERSION,
        };
        match self.store.append_events(organization_id, vec![event], None).await? {
            AppendOutcome::Appended(events) => {
                ingested(Source::System, events.len());
                let first = events.first().cloned();
                self.notify(organization_id, events);
                first.ok_or_else(|| StoreError::Internal("an append of one record stored none".into()))
            }
            _ => Err(StoreError::Internal(
                "a record without an idempotency key was replayed".into(),
            )),
        }
    }

    /// Creates one event of the Audit Logs API, checked against its action's schema.
    pub async fn create_event(
        &self,
        organization_id: OrganizationId,
        input: EventInput,
        key: Option<IdempotencyKey>,
    ) -> Result<Created, IngestError> {
        let span = tracing::debug_span!("ingest", source = "single", organization = %organization_id);
        let outcome = self
            .create_event_unobserved(organization_id, input, key)
            .instrument(span)
            .await;
        observe_one(Source::Single, &outcome);
        outcome
    }

    async fn create_event_unobserved(
        &self,
        organization_id: OrganizationId,
        input: EventInput,
        key: Option<IdempotencyKey>,
    ) -> Result<Created, IngestError> {
        let schema_version = match self.check_schema(&input).await? {
            Ok(version) => version,
            Err(rejection) => {
                // A retry of a request that was stored is answered as it was, even if the schema
                // changed since. Looked up only on this failure path, to keep it off the hot path
                // (for valid events the append itself settles replays).
                if let Some(key) = &key
                    && let Some(earlier) = self.store.check_idempotency(organization_id, &key.claim(None)).await?
                {
                    return match earlier {
                        AppendOutcome::KeyReused => Err(IngestError::KeyReused),
                        _ => Ok(Created::Replayed),
                    };
                }
                return Err(IngestError::Rejected(rejection));
            }
        };
        self.append_one(organization_id, NewEvent { input, schema_version }, key.as_ref())
            .await
    }

    /// Creates the events of a batch that pass their checks, all in one commit; each item of
    /// `items` is an event whose shape was checked, or why its shape was refused.
    pub async fn create_batch(
        &self,
        organization_id: OrganizationId,
        items: Vec<Result<EventInput, ValidationErrors>>,
        key: Option<IdempotencyKey>,
    ) -> Result<BatchResult, IngestError> {
        let span =
            tracing::debug_span!("ingest", source = "batch", organization = %organization_id, events = items.len());
        let outcome = self
            .create_batch_unobserved(organization_id, items, key)
            .instrument(span)
            .await;
        match &outcome {
            Ok(BatchResult::Outcome(BatchOutcome { items })) => {
                for item in items {
                    match item {
                        BatchItem::Stored(_) => {}
                        BatchItem::Rejected(rejection) => rejected(Source::Batch, rejection_reason(rejection)),
                    }
                }
            }
            Ok(BatchResult::Verbatim(_)) => {}
            Err(error) => rejected(Source::Batch, error_reason(error)),
        }
        outcome
    }

    async fn create_batch_unobserved(
        &self,
        organization_id: OrganizationId,
        items: Vec<Result<EventInput, ValidationErrors>>,
        key: Option<IdempotencyKey>,
    ) -> Result<BatchResult, IngestError> {
        if let Some(key) = &key
            && let Some(earlier) = self.store.check_idempotency(organization_id, &key.claim(None)).await?
        {
            return replayed_batch(earlier);
        }
        let mut rejections = Vec::with_capacity(items.len());
        let mut accepted = Vec::new();
        for item in items {
            match item {
                Err(errors) => rejections.push(Some(Rejection::Fields(errors))),
                Ok(input) => match self.check_schema(&input).await? {
                    Ok(schema_version) => {
                        rejections.push(None);
                        accepted.push(NewEvent { input, schema_version });
                    }
                    Err(rejection) => rejections.push(Some(rejection)),
                },
            }
        }
        let stored = if accepted.is_empty() && key.is_none() {
            // Nothing to store, but an unknown organization is still an error.
            self.store.get_organization(organization_id).await?;
            Vec::new()
        } else {
            let claim = key.map(|key| key.claim(Some(record::encode(&rejections))));
            match self.store.append_events(organization_id, accepted, claim).await? {
                AppendOutcome::Appended(events) => events,
                earlier => return replayed_batch(earlier),
            }
        };
        ingested(Source::Batch, stored.len());
        let mut ids = stored.iter().map(|event| event.id);
        let items = rejections
            .into_iter()
            .map(|rejection| match rejection {
                Some(rejection) => Ok(BatchItem::Rejected(rejection)),
                None => ids
                    .next()
                    .map(BatchItem::Stored)
                    .ok_or_else(|| StoreError::Internal("the store returned fewer events than appended".into())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.notify(organization_id, stored);
        Ok(BatchResult::Outcome(BatchOutcome { items }))
    }

    /// Creates one event of the legacy Audit Trail API (validated by
    /// `vellum_core::audit_trail::validate_audit_trail_event`) in the log of the organization its
    /// group names: the live organization with this id, else the one with this external id, else
    /// a new organization created for the group (name and external id = group).
    pub async fn create_legacy_event(
        &self,
        input: EventInput,
        key: Option<IdempotencyKey>,
    ) -> Result<Created, IngestError> {
        let span = tracing::debug_span!("ingest", source = "legacy", organization = tracing::field::Empty);
        let outcome = self.create_legacy_event_unobserved(input, key).instrument(span).await;
        observe_one(Source::Legacy, &outcome);
        outcome
    }

    async fn create_legacy_event_unobserved(
        &self,
        input: EventInput,
        key: Option<IdempotencyKey>,
    ) -> Result<Created, IngestError> {
        let Some(group) = input.audit_trail.as_ref().map(|fields| fields.group.clone()) else {
            return Err(StoreError::Internal("a legacy event without legacy fields".into()).into());
        };
        let organization_id = self.organization_for_group(&group).await?;
        tracing::Span::current().record("organization", tracing::field::display(organization_id));
        let event = NewEvent {
            input,
            schema_version: AUDIT_TRAIL_SCHEMA_VERSION,
        };
        self.append_one(organization_id, event, key.as_ref()).await
    }

    async fn organization_for_group(&self, group: &str) -> Result<OrganizationId, IngestError> {
        if let Ok(id) = OrganizationId::parse(group) {
            return match self.store.get_organization(id).await {
                Ok(organization) => Ok(organization.id),
                Err(StoreError::NotFound { .. }) => {
                    let mut errors = ValidationErrors::new();
                    errors.push(
                        "group",
                        "not_found",
                        format!("group {group} names no live organization"),
                    );
                    Err(IngestError::Rejected(Rejection::Fields(errors)))
                }
                Err(other) => Err(other.into()),
            };
        }
        match self.store.get_organization_by_external_id(group).await {
            Ok(organization) => return Ok(organization.id),
            Err(StoreError::NotFound { .. }) => {}
            Err(other) => return Err(other.into()),
        }
        let request = NewOrganization {
            name: group.trim().to_owned(),
            external_id: Some(group.to_owned()),
            metadata: BTreeMap::new(),
            domains: Vec::new(),
            allow_profiles_outside_organization: false,
        };
        match self.store.create_organization(request).await {
            Ok(organization) => {
                tracing::info!(organization = %organization.id, "created an organization for an Audit Trail group");
                Ok(organization.id)
            }
            // Another request created it first.
            Err(StoreError::Conflict(_)) => Ok(self.store.get_organization_by_external_id(group).await?.id),
            Err(other) => Err(other.into()),
        }
    }
}

/// The ways events come in, as the `source` label of the ingest metrics.
#[derive(Clone, Copy, Debug)]
enum Source {
    Single,
    Batch,
    Legacy,
    System,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Batch => "batch",
            Self::Legacy => "legacy",
            Self::System => "system",
        }
    }
}

/// Counts events stored durably (`vellum_events_ingested_total`).
fn ingested(source: Source, events: usize) {
    if events > 0 {
        metrics::counter!("vellum_events_ingested_total", "source" => source.label()).increment(events as u64);
    }
}

/// Counts an event or request refused (`vellum_events_rejected_total`), by a bounded reason.
fn rejected(source: Source, reason: &'static str) {
    metrics::counter!("vellum_events_rejected_total", "source" => source.label(), "reason" => reason).increment(1);
}

fn rejection_reason(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::Fields(_) => "invalid",
        Rejection::Schema(_) => "schema",
    }
}

fn error_reason(error: &IngestError) -> &'static str {
    match error {
        IngestError::Rejected(rejection) => rejection_reason(rejection),
        IngestError::KeyReused => "idempotency",
        IngestError::Store(StoreError::NotFound { .. }) => "organization",
        IngestError::Store(_) => "store",
    }
}

/// Counts the outcome of a request that creates one event.
fn observe_one(source: Source, outcome: &Result<Created, IngestError>) {
    match outcome {
        Ok(Created::Stored(_)) => ingested(source, 1),
        Ok(Created::Replayed) => {}
        Err(error) => rejected(source, error_reason(error)),
    }
}

/// The answer to a batch whose key was claimed before.
fn replayed_batch(earlier: AppendOutcome) -> Result<BatchResult, IngestError> {
    match earlier {
        AppendOutcome::KeyReused => Err(IngestError::KeyReused),
        AppendOutcome::Replayed { record, event_ids } => match record {
            // A claim made without a record stored events only: a batch whose items all passed.
            None => Ok(BatchResult::Outcome(BatchOutcome {
                items: event_ids.into_iter().map(BatchItem::Stored).collect(),
            })),
            Some(text) => match record::decode(text, &event_ids).map_err(StoreError::Internal)? {
                record::Decoded::Outcome(outcome) => Ok(BatchResult::Outcome(outcome)),
                record::Decoded::Verbatim(body) => Ok(BatchResult::Verbatim(body)),
            },
        },
        AppendOutcome::Appended(_) => Err(StoreError::Internal("an idempotency check appended events".into()).into()),
    }
}

#[cfg(test)]
mod tests;
