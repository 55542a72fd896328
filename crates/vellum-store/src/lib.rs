//! Vellum's storage layer: the [`Store`] trait that the rest of Vellum talks to, and its
//! backends.
//!
//! **Invariant:** callers never see SQL, rows or connections; backends never see HTTP or JSON
//! wire shapes. Every backend passes the same [`conformance`] suite.
//!
//! **Invariant:** a write method returns `Ok` only once the change is durable (committed and,
//! for the embedded store, fsynced). Callers may acknowledge a client as soon as it returns.

use std::sync::Arc;

use async_trait::async_trait;
use vellum_core::export::{Export, ExportFilter, ExportFormat, ExportState};
use vellum_core::schema::SchemaDefinition;
use vellum_core::{
    ActionId, ApiKey, ApiKeyHash, ApiKeyId, ApiKeySecret, Event, EventId, EventInput, ExportId, NewOrganization,
    Organization, OrganizationId, OrganizationUpdate, Page, PageRequest, SchemaId, Timestamp,
};

mod codec;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod ids;
mod listing;
mod payload;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;
pub mod verifiable_log;

pub mod private_files;
pub use ids::{generate_api_key_secret, hash_new_password, now, random_bytes};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresConfig, PostgresStore};
pub use sqlite::{SqliteConfig, SqliteStore};

/// What went wrong in the store, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (or no longer does).
    #[error("{kind} not found: '{id}'")]
    NotFound {
        /// What kind of object was looked for (`Organization`, `API key`).
        kind: &'static str,
        /// The id or key that was looked for.
        id: String,
    },
    /// The change conflicts with what is stored (a unique value already taken).
    #[error("{0}")]
    Conflict(String),
    /// The store cannot serve requests now (closed, or the database is unreachable).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A request parameter names something that does not fit (a cursor from another list).
    #[error("{field}: {message}")]
    InvalidInput {
        /// The parameter.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Anything else; the message is for logs, never for clients.
    #[error("store error: {0}")]
    Internal(String),
}

impl StoreError {
    pub(crate) fn not_found(kind: &'static str, id: impl std::fmt::Display) -> Self {
        Self::NotFound {
            kind,
            id: id.to_string(),
        }
    }
}

/// Filters for listing organizations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrganizationFilter {
    /// Only organizations with at least one of these domains (lower case).
    pub domains: Vec<String>,
    /// Only organizations whose name contains this text, ignoring ASCII case.
    pub search: Option<String>,
}

/// One stored schema version of an action.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSchema {
    /// The version's id (its list cursor).
    pub id: SchemaId,
    /// The action it belongs to.
    pub action: String,
    /// 1, 2, 3, ... per action.
    pub version: u32,
    /// What the version says.
    pub definition: SchemaDefinition,
    /// When the version was created.
    pub created_at: Timestamp,
}

/// An action with its latest schema version.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionSummary {
    /// The action's id (its list cursor).
    pub id: ActionId,
    /// The action's name.
    pub name: String,
    /// Its newest schema version.
    pub latest: StoredSchema,
    /// When the action was first created.
    pub created_at: Timestamp,
    /// When its latest version was created.
    pub updated_at: Timestamp,
}

/// An event to append, with the schema version it was validated against.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// The validated event.
    pub input: EventInput,
    /// The schema version that accepted it.
    pub schema_version: u32,
}

/// An `Idempotency-Key` to claim together with an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// The first 16 bytes of the SHA-256 of the key.
    pub key_hash: [u8; 16],
    /// The first 16 bytes of the SHA-256 of the request (path and body).
    pub request_hash: [u8; 16],
    /// What the caller wants back on a replay besides the ids of the events appended: its own
    /// encoding of the outcome, opaque to the store. `None` when the ids say everything.
    pub record: Option<String>,
}

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW_MILLIS: i64 = 24 * 60 * 60 * 1000;

/// What an append did.
#[derive(Clone, Debug, PartialEq)]
pub enum AppendOutcome {
    /// The events were stored, in this order.
    Appended(Vec<Event>),
    /// The key was claimed within 24 hours by the same request: nothing was stored.
    Replayed {
        /// The record the claim was made with.
        record: Option<String>,
        /// The ids of the events the claiming append stored, in order (empty for claims
        /// recorded before the store kept them).
        event_ids: Vec<EventId>,
    },
    /// The key was claimed within 24 hours by a different request: nothing was stored.
    KeyReused,
}

/// Filters for listing events. Each non-empty list matches any of its values; filters combine
/// with AND.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Actions.
    pub actions: Vec<String>,
    /// Actor ids.
    pub actor_ids: Vec<String>,
    /// Actor names.
    pub actor_names: Vec<String>,
    /// Target types.
    pub target_types: Vec<String>,
    /// Target ids.
    pub target_ids: Vec<String>,
    /// Only events that occurred at or after this instant.
    pub range_start: Option<Timestamp>,
    /// Only events that occurred before this instant.
    pub range_end: Option<Timestamp>,
    /// Case-insensitive text that must appear in the action, actor, targets, context or metadata.
    pub search: Option<String>,
}

impl From<&ExportFilter> for EventFilter {
    fn from(filter: &ExportFilter) -> Self {
        Self {
            actions: filter.actions.clone(),
            actor_ids: filter.actor_ids.clone(),
            actor_names: filter.actor_names.clone(),
            target_types: filter.target_types.clone(),
            target_ids: Vec::new(),
            range_start: Some(filter.range_start),
            range_end: Some(filter.range_end),
            search: None,
        }
    }
}

/// Filters for the legacy Audit Trail listing (`GET /events`), across every organization. Each
/// non-empty list matches any of its values; filters combine with AND.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditTrailFilter {
    /// Groups, as sent with the events.
    pub groups: Vec<String>,
    /// Actions.
    pub actions: Vec<String>,
    /// CRUD letters, upper case.
    pub action_types: Vec<String>,
    /// Actor names.
    pub actor_names: Vec<String>,
    /// Actor ids.
    pub actor_ids: Vec<String>,
    /// Target names.
    pub target_names: Vec<String>,
    /// Target ids.
    pub target_ids: Vec<String>,
    /// Only events that occurred at or after this instant.
    pub range_start: Option<Timestamp>,
    /// Only events that occurred before this instant.
    pub range_end: Option<Timestamp>,
    /// Case-insensitive text that must appear in the action or any text field or metadata value.
    pub search: Option<String>,
}

/// What a filter selects, in summary (see [`Store::event_bounds`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventBounds {
    /// How many events match.
    pub events: u64,
    /// `[first, last + 1)` of their log positions, when any match.
    pub log_range: Option<(u64, u64)>,
    /// The most targets one of them names.
    pub max_targets: u64,
}

/// How an export ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportOutcome {
    /// Its file is complete at this object path.
    Ready {
        /// Where the file is.
        object_path: String,
        /// Events written.
        rows: u64,
        /// File size.
        bytes: u64,
    },
    /// It failed for this reason (shown to the client).
    Failed(String),
    /// Its file was deleted after its time to live.
    Expired,
}

impl ExportOutcome {
    /// Why recording this outcome changed nothing, given the export as it now is: `worker` (when
    /// the outcome was recorded under a lease) no longer holds it, or the export is not in the
    /// state the outcome follows.
    pub(crate) fn refused(&self, export: &Export, worker: Option<&str>) -> StoreError {
        if let Some(worker) = worker
            && export.state == ExportState::Pending
        {
            return not_leased(export.id, worker);
        }
        StoreError::Conflict(format!(
            "export {} is {}, so it cannot become {}",
            export.id,
            export.state.as_str(),
            self.state().as_str()
        ))
    }

    /// The state the outcome puts the export in.
    pub fn state(&self) -> ExportState {
        match self {
            Self::Ready { .. } => ExportState::Ready,
            Self::Failed(_) => ExportState::Error,
            Self::Expired => ExportState::Expired,
        }
    }
}

/// The error of a lease operation by a worker that does not hold the export's lease.
pub(crate) fn not_leased(id: vellum_core::ExportId, worker: &str) -> StoreError {
    StoreError::Conflict(format!("export {id} is not leased to {worker}"))
}

/// A signed checkpoint and the checkpoint it signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What was signed.
    pub checkpoint: vellum_core::checkpoint::Checkpoint,
    /// The signed note (C2SP), as served.
    pub note: String,
}

/// An inclusion proof of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The event's position.
    pub leaf_index: u64,
    /// The size of the tree the proof is for.
    pub tree_size: u64,
    /// The audit path, leaf side first.
    pub hashes: Vec<vellum_core::merkle::Hash>,
}

/// What `ensure_api_key` found or made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnsuredApiKey {
    /// The active key with the secret.
    pub key: ApiKey,
    /// Whether it was created just now.
    pub created: bool,
}

/// What `create_schema` did.
#[derive(Clone, Debug, PartialEq)]
pub struct CreatedSchema {
    /// The action's latest version: the new one, or the one the definition equals.
    pub schema: StoredSchema,
    /// Whether a version was created.
    pub created: bool,
}

/// The head of a log as stored: its size and the root composed from its stored nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    /// How many leaves.
    pub size: u64,
    /// The root of those leaves.
    pub root: vellum_core::merkle::Hash,
}

/// A complete subtree of a log: the one at `level` covers leaves
/// `[index << level, (index + 1) << level)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodePosition {
    /// Its height (0 for a leaf).
    pub level: u32,
    /// Its position among the subtrees of that level.
    pub index: u64,
}

/// An organization that has a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogOwner {
    /// The organization.
    pub organization_id: OrganizationId,
    /// Whether it was deleted (its log outlives it).
    pub deleted: bool,
}

/// A page of a log as stored, for verification.
#[derive(Clone, Debug, PartialEq)]
pub struct LogScan {
    /// The records from the requested position on.
    pub records: Vec<LogRecord>,
    /// The log's size when read.
    pub tree_size: u64,
    /// The latest signed checkpoint note, if any.
    pub checkpoint_note: Option<String>,
}

/// One position of a log as stored, for verification: nothing is trusted or repaired.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// The position the row claims.
    pub log_index: i64,
    /// The event's id, if readable.
    pub event_id: Option<EventId>,
    /// The event, or why it could not be read.
    pub event: Result<Event, String>,
    /// The leaf hash stored for this position, if any.
    pub stored_leaf: Option<vellum_core::merkle::Hash>,
    /// When a purge removed the event: the position of the purge record that says so (the
    /// event is then `Err`, and `stored_leaf` the leaf kept for the position).
    pub purged_by: Option<u64>,
}

/// One position of a log as served: its event, or what a purge left of it.
#[derive(Clone, Debug, PartialEq)]
// Served in pages of at most 1,000, mostly events: a box per event would cost more than the
// smaller variant saves.
#[allow(clippy::large_enum_variant)]
pub enum LogEntry {
    /// The event at the position.
    Event(Event),
    /// The position's event was removed by a purge.
    Purged(PurgedPosition),
}

/// What a purge leaves of a position: its leaf, and which record removed its event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurgedPosition {
    /// The position.
    pub log_index: u64,
    /// Its leaf hash, as it was logged.
    pub leaf: vellum_core::merkle::Hash,
    /// The position of the purge record that removed the event.
    pub purged_by: u64,
}

/// Which events one purge pass removes from an organization's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurgeRule {
    /// Events that occurred before this time…
    pub occurred_before: Timestamp,
    /// …at positions below this one (the log's size when the pass began).
    pub below_log_index: u64,
    /// The retention period that set the cutoff (recorded, not applied).
    pub retention_period_in_days: u32,
}

impl PurgeRule {
    /// The record of a step that removed the positions fed to `digest` under this rule.
    pub fn record(&self, digest: &vellum_core::log_record::PositionsDigest) -> vellum_core::log_record::PurgeRecord {
        let (first_log_index, last_log_index) = digest.span().unwrap_or_default();
        vellum_core::log_record::PurgeRecord {
            occurred_before: self.occurred_before,
            below_log_index: self.below_log_index,
            retention_period_in_days: self.retention_period_in_days,
            events_purged: digest.count(),
            first_log_index,
            last_log_index,
            positions_sha256: digest.finish(),
        }
    }
}

/// What one step of a purge did.
#[derive(Clone, Debug, PartialEq)]
// One value per step of thousands of events: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum PurgeStep {
    /// The organization is under a legal hold: nothing was removed.
    Held,
    /// Nothing (more) matches the rule.
    Done,
    /// Events were removed, and the record saying so appended in the same commit.
    Purged(PurgedChunk),
}

/// What one erasure step did.
#[derive(Clone, Debug, PartialEq)]
// One value per step of thousands of events: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum EraseStep {
    /// The organization is under a legal hold: nothing was erased.
    Held,
    /// No (more) event names the subject.
    Done,
    /// Events were rewritten without the subject's data, and the record saying so appended in the
    /// same commit.
    Erased {
        /// The erasure record appended to the log.
        record: Event,
        /// How many events were rewritten.
        events: u64,
    },
}

/// Events removed in one commit, and the record of it.
#[derive(Clone, Debug, PartialEq)]
pub struct PurgedChunk {
    /// The purge record appended to the log.
    pub record: Event,
    /// How many events were removed.
    pub events: u64,
    /// The bytes of their stored details (a measure of what was freed).
    pub payload_bytes: u64,
}

/// An organization's retention settings, as the purge needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// The organization.
    pub organization_id: OrganizationId,
    /// Whether it was deleted (its events follow the same rule).
    pub deleted: bool,
    /// Its own retention period, if it set one.
    pub retention_period_in_days: Option<u32>,
    /// Its legal hold, if one is in force.
    pub legal_hold: Option<LegalHold>,
    /// The size of its log.
    pub log_size: u64,
}

/// A legal hold in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegalHold {
    /// Why, as given when it was set.
    pub reason: Option<String>,
    /// When it was set.
    pub since: Timestamp,
}

/// Organizations and their settings.
#[async_trait]
pub trait OrganizationStore: Send + Sync {
    /// Creates an organization with a fresh id. Fails with `Conflict` when another live
    /// organization has the same external id.
    async fn create_organization(&self, request: NewOrganization) -> Result<Organization, StoreError>;

    /// Returns a live organization.
    async fn get_organization(&self, id: OrganizationId) -> Result<Organization, StoreError>;

    /// Returns the live organization with this external id.
    async fn get_organization_by_external_id(&self, external_id: &str) -> Result<Organization, StoreError>;

    /// Lists live organizations, newest first unless the request says otherwise.
    async fn list_organizations(
        &self,
        filter: OrganizationFilter,
        page: PageRequest<OrganizationId>,
    ) -> Result<Page<Organization, OrganizationId>, StoreError>;

    /// Changes a live organization.
    async fn update_organization(
        &self,
        id: OrganizationId,
        update: OrganizationUpdate,
    ) -> Result<Organization, StoreError>;

    /// Deletes an organization: from then on it answers `NotFound` and its external id is free.
    /// Its audit trail is kept (see `docs/organizations.md`).
    async fn delete_organization(&self, id: OrganizationId) -> Result<(), StoreError>;

    /// Returns a live organization's retention period in days (`None`: not set).
    async fn get_retention(&self, organization_id: OrganizationId) -> Result<Option<u32>, StoreError>;

    /// Sets a live organization's retention period in days.
    async fn set_retention(&self, organization_id: OrganizationId, days: u32) -> Result<(), StoreError>;
}

/// Who may use Vellum: API keys, operators and their sessions.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Stores a new API key under the hash of its secret.
    async fn create_api_key(&self, name: String, secret: ApiKeySecret) -> Result<ApiKey, StoreError>;

    /// Makes sure an active key with exactly this secret exists: creates it if missing. A revoked
    /// key is not brought back (`Conflict`). Returns the key and whether it was created.
    async fn ensure_api_key(&self, name: String, secret: ApiKeySecret) -> Result<EnsuredApiKey, StoreError>;

    /// Finds a key (active or revoked) by the hash of its secret.
    async fn find_api_key(&self, hash: ApiKeyHash) -> Result<Option<ApiKey>, StoreError>;

    /// Lists all keys, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes a key; revoking a revoked key changes nothing and succeeds.
    async fn revoke_api_key(&self, id: ApiKeyId) -> Result<ApiKey, StoreError>;

    /// Creates an operator account. `Conflict` when the email is taken.
    async fn create_operator(
        &self,
        email: vellum_core::operator::Email,
        password_hash: vellum_core::operator::PasswordHash,
    ) -> Result<vellum_core::operator::Operator, StoreError>;

    /// Finds an operator by email.
    async fn find_operator(
        &self,
        email: vellum_core::operator::Email,
    ) -> Result<Option<vellum_core::operator::Operator>, StoreError>;

    /// Lists operators, oldest first.
    async fn list_operators(&self) -> Result<Vec<vellum_core::operator::Operator>, StoreError>;

    /// Replaces an operator's password hash and ends all of that operator's sessions.
    async fn set_operator_password(
        &self,
        id: vellum_core::OperatorId,
        password_hash: vellum_core::operator::PasswordHash,
    ) -> Result<(), StoreError>;

    /// Stores a new session of an operator, valid until `expires_at`.
    async fn create_operator_session(
        &self,
        operator_id: vellum_core::OperatorId,
        token_hash: vellum_core::operator::SessionTokenHash,
        expires_at: Timestamp,
    ) -> Result<vellum_core::operator::OperatorSession, StoreError>;

    /// Returns the session stored under this token hash if it is still valid at `now`.
    async fn find_operator_session(
        &self,
        token_hash: vellum_core::operator::SessionTokenHash,
        now: Timestamp,
    ) -> Result<Option<vellum_core::operator::OperatorSession>, StoreError>;

    /// Ends a session; ending an unknown one succeeds.
    async fn delete_operator_session(
        &self,
        token_hash: vellum_core::operator::SessionTokenHash,
    ) -> Result<(), StoreError>;

    /// Applies one step of the operator sign-in throttle to the records of `keys` (the rules are
    /// [`vellum_core::sign_in_throttle`]), atomically across every process that shares the store,
    /// and returns its verdict. Forgets stale records as it goes and keeps at most
    /// [`vellum_core::sign_in_throttle::MAX_RECORDS`] of them.
    async fn sign_in_throttle(
        &self,
        keys: Vec<vellum_core::sign_in_throttle::ThrottleKey>,
        step: vellum_core::sign_in_throttle::Step,
        now: Timestamp,
    ) -> Result<Result<(), vellum_core::sign_in_throttle::RetryAfterSeconds>, StoreError>;
}

/// Actions and their versioned schemas.
#[async_trait]
pub trait SchemaStore: Send + Sync {
    /// Creates the next schema version of an action, creating the action if it is new. When the
    /// definition equals the latest version's, nothing is created and the latest is returned
    /// (as WorkOS does); the flag says whether a version was created.
    async fn create_schema(&self, action: String, definition: SchemaDefinition) -> Result<CreatedSchema, StoreError>;

    /// Returns one version of an action's schema, or its latest when `version` is `None`.
    async fn get_schema(&self, action: &str, version: Option<u32>) -> Result<Option<StoredSchema>, StoreError>;

    /// Lists actions with their latest schema, newest first unless the request says otherwise.
    async fn list_actions(&self, page: PageRequest<ActionId>) -> Result<Page<ActionSummary, ActionId>, StoreError>;

    /// Lists the schema versions of an action. `NotFound` when the action does not exist.
    async fn list_schemas(
        &self,
        action: &str,
        page: PageRequest<SchemaId>,
    ) -> Result<Page<StoredSchema, SchemaId>, StoreError>;
}

/// Events: appended with their idempotency claims, listed and counted.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends events to a live organization's log, all or none, claiming the idempotency key
    /// (if any) in the same commit.
    async fn append_events(
        &self,
        organization_id: OrganizationId,
        events: Vec<NewEvent>,
        idempotency: Option<IdempotencyClaim>,
    ) -> Result<AppendOutcome, StoreError>;

    /// Looks an idempotency key up without claiming it: `Replayed` or `KeyReused` when it was
    /// claimed within 24 hours (the organization may have been deleted since), `None` otherwise.
    /// Lets a retry be answered before it is validated again; `append_events` still settles races.
    async fn check_idempotency(
        &self,
        organization_id: OrganizationId,
        claim: &IdempotencyClaim,
    ) -> Result<Option<AppendOutcome>, StoreError>;

    /// Lists a live organization's events by `(occurred_at, id)`, newest first unless the
    /// request says otherwise. Cursors are event ids of this organization.
    async fn list_events(
        &self,
        organization_id: OrganizationId,
        filter: EventFilter,
        page: PageRequest<EventId>,
    ) -> Result<Page<Event, EventId>, StoreError>;

    /// Lists the events received through the legacy Audit Trail API, of every live organization,
    /// by `(occurred_at, id)`, newest first unless the request says otherwise. Cursors are ids
    /// of such events.
    async fn list_audit_trail_events(
        &self,
        filter: AuditTrailFilter,
        page: PageRequest<EventId>,
    ) -> Result<Page<Event, EventId>, StoreError>;

    /// Returns one event.
    async fn get_event(&self, id: EventId) -> Result<Event, StoreError>;

    /// How many of a live organization's events match a filter, the log positions they span, and
    /// the most targets any of them names.
    async fn event_bounds(
        &self,
        organization_id: OrganizationId,
        filter: EventFilter,
    ) -> Result<EventBounds, StoreError>;

    /// Forgets idempotency keys claimed before `before`. Returns how many were removed.
    async fn purge_idempotency_keys(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// The verifiable logs, served through `crate::verifiable_log`.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Returns a signed checkpoint covering every event appended so far, signing a new one only
    /// when the log grew, and only if it is consistent with the previous one.
    async fn log_checkpoint(
        &self,
        organization_id: OrganizationId,
        signer: Arc<vellum_core::checkpoint::NoteSigner>,
        origin: String,
    ) -> Result<SignedCheckpoint, StoreError>;

    /// The audit path of an event in the tree of `tree_size` leaves (the current size if `None`).
    async fn log_inclusion_proof(
        &self,
        organization_id: OrganizationId,
        event_id: EventId,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, StoreError>;

    /// The consistency proof between the trees of `first` and `second` leaves.
    async fn log_consistency_proof(
        &self,
        organization_id: OrganizationId,
        first: u64,
        second: u64,
    ) -> Result<Vec<vellum_core::merkle::Hash>, StoreError>;

    /// The entries at log positions `[start, end)`: events, and what purges left of the others.
    async fn log_entries(
        &self,
        organization_id: OrganizationId,
        start: u64,
        end: u64,
    ) -> Result<Vec<LogEntry>, StoreError>;

    /// The stored tree head of an organization's log (deleted or not): its size and the root
    /// composed from its stored nodes.
    async fn log_tree_head(&self, organization_id: OrganizationId) -> Result<TreeHead, StoreError>;

    /// For verification: the first stored subtree hash (as `(level, index)`) that does not match
    /// the hashes below it, if any.
    async fn log_first_inconsistent_node(
        &self,
        organization_id: OrganizationId,
    ) -> Result<Option<NodePosition>, StoreError>;

    /// Every organization with a log, and whether it was deleted.
    async fn log_organizations(&self) -> Result<Vec<LogOwner>, StoreError>;

    /// For verification: up to `limit` raw records from position `start`, the stored tree size,
    /// and the latest signed checkpoint note.
    async fn log_scan(&self, organization_id: OrganizationId, start: u64, limit: u64) -> Result<LogScan, StoreError>;

    /// The hashes of the complete subtrees that make up the first `size` leaves of a log, largest
    /// first (the log's frontier at `size`; `size` at most the current size).
    async fn log_frontier(
        &self,
        organization_id: OrganizationId,
        size: u64,
    ) -> Result<Vec<vellum_core::merkle::Hash>, StoreError>;
}

/// Retention: purging what is past it, legal holds, and the space purges free.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Every organization with a log, deleted ones included, with what the purge needs to know.
    async fn retention_policies(&self) -> Result<Vec<RetentionPolicy>, StoreError>;

    /// Removes up to `limit` events of an organization's log that the rule covers, lowest
    /// positions first, and appends the purge record that accounts for them, in one commit:
    /// their leaves stay (marked with the record's position), their payloads, target rows and
    /// search entries go. Refuses (`Held`) while the organization is under a legal hold.
    async fn purge_step(
        &self,
        organization_id: OrganizationId,
        rule: PurgeRule,
        limit: u32,
    ) -> Result<PurgeStep, StoreError>;

    /// Erases a subject's personal data from up to `limit` events of an organization's log
    /// (lowest positions first; Vellum's own records never), and appends the erasure record
    /// (`vellum_core::log_record::ErasureRecord`, caused by `by`) that names them, in one commit:
    /// each event is rewritten by `vellum_core::seal::erase` (its leaf stays), with its indexed
    /// columns, target and legacy rows and search entries. Refuses (`Held`) while the
    /// organization is under a legal hold.
    async fn erase_step(
        &self,
        organization_id: OrganizationId,
        subject: &vellum_core::seal::ErasureSubject,
        by: &vellum_core::log_record::RecordedBy,
        limit: u32,
    ) -> Result<EraseStep, StoreError>;

    /// Gives space freed by purges back to the file system, a bounded amount per call. Returns
    /// how many bytes it gave back (0 once there is nothing more to give).
    async fn reclaim_space(&self) -> Result<u64, StoreError>;

    /// The bytes the store occupies (the embedded store's files; the database's size).
    async fn store_size(&self) -> Result<u64, StoreError>;

    /// The legal hold of an organization, if one is in force.
    async fn legal_hold(&self, organization_id: OrganizationId) -> Result<Option<LegalHold>, StoreError>;

    /// Sets (`Some(reason)`) or lifts (`None`) a live organization's legal hold and appends
    /// `record` (the record of the change) to its log in the same commit. Returns the hold now in
    /// force and the appended record; setting a hold that is in force, or lifting one that is
    /// not, changes nothing and appends nothing.
    async fn set_legal_hold(
        &self,
        organization_id: OrganizationId,
        hold: Option<Option<String>>,
        record: EventInput,
    ) -> Result<(Option<LegalHold>, Option<Event>), StoreError>;
}

/// Export jobs.
#[async_trait]
pub trait ExportStore: Send + Sync {
    /// Queues an export of a live organization's events.
    async fn create_export(
        &self,
        organization_id: OrganizationId,
        format: ExportFormat,
        filter: ExportFilter,
    ) -> Result<Export, StoreError>;

    /// Returns an export (of any organization, deleted or not).
    async fn get_export(&self, id: ExportId) -> Result<Export, StoreError>;

    /// Exports in a state whose last change is older than `updated_before`, oldest first.
    async fn exports_in_state(&self, state: ExportState, updated_before: Timestamp) -> Result<Vec<Export>, StoreError>;

    /// Counts one more start of a pending export and returns it (a finished one unchanged).
    async fn start_export(&self, id: ExportId) -> Result<Export, StoreError>;

    /// Records an export's outcome: `ready` or `error` from `pending`, `expired` from `ready`.
    /// `Conflict` when the export is not in the state the outcome follows.
    async fn finish_export(&self, id: ExportId, outcome: ExportOutcome) -> Result<Export, StoreError>;

    /// Claims the oldest pending export that no lease holds (none was taken, or it ran out:
    /// `lease_until <= now`): leases it to `worker` until `lease_until`, counts one more start
    /// and returns it; `None` when there is none. Atomic across every process that shares the
    /// store: two claims never return the same export while its lease lasts.
    async fn claim_export(
        &self,
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Export>, StoreError>;

    /// Extends the lease `worker` holds on a pending export to `lease_until`. `Conflict` when it
    /// no longer holds it (another worker took the export over, or it was finished).
    async fn renew_export_lease(&self, id: ExportId, worker: &str, lease_until: Timestamp) -> Result<(), StoreError>;

    /// Gives up `worker`'s lease on a pending export without finishing it (its worker is
    /// stopping), so that the next claim takes it at once, and takes back the start its claim
    /// counted: only attempts that ended without a release (a crash) count towards the limit. A
    /// lease it does not hold is left alone.
    async fn release_export_lease(&self, id: ExportId, worker: &str) -> Result<(), StoreError>;

    /// Records the outcome of a claimed export, `ready` or `error`, as [`ExportStore::finish_export`]
    /// does, but only while `worker` holds its lease (`Conflict` otherwise). Clears the lease.
    async fn finish_leased_export(
        &self,
        id: ExportId,
        worker: &str,
        outcome: ExportOutcome,
    ) -> Result<Export, StoreError>;
}

/// A log stream as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    /// Its id.
    pub id: vellum_core::StreamId,
    /// Whose events it delivers.
    pub organization_id: OrganizationId,
    /// Where to, with the settings shown back.
    pub destination: vellum_core::stream::Destination,
    /// The write-only settings, sealed by the streams service (opaque to the store).
    pub sealed_secrets: Vec<u8>,
    /// Its state.
    pub state: vellum_core::stream::StreamState,
    /// The next log position to deliver.
    pub cursor: u64,
    /// Deliveries failed in a row.
    pub failures: u32,
    /// Why the last delivery failed, while it is `error` or `invalid`.
    pub error: Option<String>,
    /// No delivery before this time (a retry's backoff).
    pub next_attempt_at: Option<Timestamp>,
    /// When a destination last accepted a batch.
    pub last_synced_at: Option<Timestamp>,
    /// What it has done since it was created.
    pub counters: StreamCounters,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its settings or state were last changed by hand.
    pub updated_at: Timestamp,
}

/// What a stream has done since it was created (for operators and metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamCounters {
    /// Requests (or objects) its destination accepted.
    pub deliveries: u64,
    /// Events they carried (an object-storage window written again counts again).
    pub events_delivered: u64,
    /// Attempts that failed.
    pub failed_attempts: u64,
}

/// A stream to create.
#[derive(Clone, Debug)]
pub struct NewStream {
    /// Whose events.
    pub organization_id: OrganizationId,
    /// Where to.
    pub destination: vellum_core::stream::Destination,
    /// The sealed write-only settings.
    pub sealed_secrets: Vec<u8>,
    /// `Active`, or `Inactive` to create it disabled.
    pub state: vellum_core::stream::StreamState,
    /// The first log position to deliver.
    pub cursor: u64,
}

/// A stream's new settings (an update replaces them whole).
#[derive(Clone, Debug)]
pub struct StreamChange {
    /// Where to (the type never changes).
    pub destination: vellum_core::stream::Destination,
    /// The sealed write-only settings.
    pub sealed_secrets: Vec<u8>,
    /// `Active` or `Inactive`. Either clears a failure: the next delivery is tried at once.
    pub state: vellum_core::stream::StreamState,
}

/// How a delivery ended, recorded by the worker holding the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The destination accepted positions up to `next` (exclusive): the cursor moves there, the
    /// stream is `active` again, and the worker keeps it until `lease_until`.
    Delivered {
        /// The new cursor.
        next: u64,
        /// How many events the accepted request carried.
        events: u64,
        /// The worker's lease, extended.
        lease_until: Timestamp,
    },
    /// It failed: the stream becomes `error` (retried from `next_attempt_at`) or `invalid`, and
    /// the worker lets it go.
    Failed {
        /// `Error` or `Invalid`.
        state: vellum_core::stream::StreamState,
        /// Why.
        reason: String,
        /// The earliest retry.
        next_attempt_at: Option<Timestamp>,
    },
}

/// Admin Portal links and the sessions opened from them (`docs/portal.md`). Only hashes of
/// secrets are stored.
#[async_trait]
pub trait PortalStore: Send + Sync {
    /// Stores a new link to a live organization (`NotFound` otherwise), and forgets links that
    /// expired more than a day ago (every session opened from them has ended by then).
    async fn create_portal_link(
        &self,
        link: vellum_core::portal::NewPortalLink,
    ) -> Result<vellum_core::portal::PortalLink, StoreError>;

    /// Spends the link with this secret and opens a session under `session_hash` until
    /// `session_expires_at`, atomically, when the link is unopened, unrevoked, not expired at
    /// `now` and its organization is live. `None` otherwise, whichever the reason: a refused
    /// link tells nothing about why.
    async fn open_portal_link(
        &self,
        secret_hash: vellum_core::operator::SessionTokenHash,
        session_hash: vellum_core::operator::SessionTokenHash,
        now: Timestamp,
        session_expires_at: Timestamp,
    ) -> Result<Option<vellum_core::portal::PortalSession>, StoreError>;

    /// The session with this token hash, if it is valid at `now`: not expired, its link not
    /// revoked, its organization live.
    async fn find_portal_session(
        &self,
        token_hash: vellum_core::operator::SessionTokenHash,
        now: Timestamp,
    ) -> Result<Option<vellum_core::portal::PortalSession>, StoreError>;

    /// Revokes every link of the organization made for `external_user_id` and ends every session
    /// opened from them. Returns how many links it revoked (0 is not an error).
    async fn revoke_portal_links(
        &self,
        organization_id: OrganizationId,
        external_user_id: String,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Ends one session (signing out); ending an unknown one succeeds.
    async fn end_portal_session(&self, token_hash: vellum_core::operator::SessionTokenHash) -> Result<(), StoreError>;
}

/// Log streams: their settings, and their deliveries claimed under a lease.
#[async_trait]
pub trait StreamStore: Send + Sync {
    /// Creates a stream (the organization must exist and not be deleted).
    async fn create_stream(&self, stream: NewStream) -> Result<Stream, StoreError>;

    /// A stream of a live organization.
    async fn get_stream(&self, id: vellum_core::StreamId) -> Result<Stream, StoreError>;

    /// An organization's streams, oldest first.
    async fn list_streams(&self, organization_id: OrganizationId) -> Result<Vec<Stream>, StoreError>;

    /// The streams of every live organization, oldest first, at most `limit` of them (for the
    /// operator's figures: states and lag).
    async fn all_streams(&self, limit: u32) -> Result<Vec<Stream>, StoreError>;

    /// Replaces a stream's settings and state; clears its failures.
    async fn update_stream(&self, id: vellum_core::StreamId, change: StreamChange) -> Result<Stream, StoreError>;

    /// Deletes a stream.
    async fn delete_stream(&self, id: vellum_core::StreamId) -> Result<(), StoreError>;

    /// Moves a stream's cursor to `from` (at most the log's size) and clears its backoff; a
    /// delivery in flight then fails to record its outcome, so nothing it sent moves the cursor.
    async fn replay_stream(&self, id: vellum_core::StreamId, from: u64) -> Result<Stream, StoreError>;

    /// The log position of the first event (in log order) that occurred at or after `since`, or
    /// the log's size when none did.
    async fn first_position_since(&self, organization_id: OrganizationId, since: Timestamp) -> Result<u64, StoreError>;

    /// Leases to `worker`, until `lease_until`, the stream that waited longest among those that
    /// deliver, whose backoff is over, that nobody holds, and that have an event at or after
    /// their cursor.
    async fn claim_stream(
        &self,
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Stream>, StoreError>;

    /// Records how a delivery from `from` ended. `Conflict` when `worker` no longer holds the
    /// stream or its cursor is no longer `from` (a replay moved it): nothing changes then.
    async fn finish_delivery(
        &self,
        id: vellum_core::StreamId,
        worker: &str,
        from: u64,
        outcome: DeliveryOutcome,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Lets a stream go (its lease ends now). A lease `worker` does not hold is left alone.
    async fn release_stream(&self, id: vellum_core::StreamId, worker: &str, now: Timestamp) -> Result<(), StoreError>;

    /// Up to `limit` events of an organization's log at positions `from` onwards, in log order
    /// (purged positions have none).
    async fn stream_events(
        &self,
        organization_id: OrganizationId,
        from: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;
}

/// The whole storage interface: every capability, plus readiness and shutdown.
/// Implementations are cheap to share (`Arc<dyn Store>`); bring the capability traits into scope
/// with `use vellum_store::prelude::*`.
#[async_trait]
pub trait Store:
    OrganizationStore
    + AccessStore
    + SchemaStore
    + EventStore
    + LogStore
    + RetentionStore
    + ExportStore
    + StreamStore
    + PortalStore
    + 'static
{
    /// Succeeds when the store can serve reads and writes right now.
    async fn check_ready(&self) -> Result<(), StoreError>;

    /// Finishes every accepted write, makes it durable and releases the store. Later calls fail
    /// with `Unavailable`.
    async fn close(&self) -> Result<(), StoreError>;
}

/// The storage traits, for `use vellum_store::prelude::*`.
pub mod prelude {
    pub use crate::{
        AccessStore, EventStore, ExportStore, LogStore, OrganizationStore, PortalStore, RetentionStore, SchemaStore,
        Store, StreamStore,
    };
}

/// Records a group commit: `vellum_store_commits_total`, how many writes it took
/// (`vellum_store_commit_batch_size`) and how long it took
/// (`vellum_store_commit_duration_seconds`).
pub(crate) fn observe_commit(writes: usize, took: std::time::Duration) {
    metrics::counter!("vellum_store_commits_total").increment(1);
    metrics::histogram!("vellum_store_commit_batch_size").record(writes as f64);
    metrics::histogram!("vellum_store_commit_duration_seconds").record(took.as_secs_f64());
}
