//! Vellum's storage layer: the [`Store`] trait that the rest of Vellum talks to, and its
//! backends.
//!
//! **Invariant:** callers never see SQL, rows or connections; backends never see HTTP or JSON
//! wire shapes. Every backend passes the same [`conformance`] suite.
//!
//! **Invariant:** a write method returns `Ok` only once the change is durable (committed and,
//! for the embedded store, fsynced). Callers may acknowledge a client as soon as it returns.

use async_trait::async_trait;
use vellum_core::{
    ApiKey, ApiKeyHash, ApiKeyId, ApiKeySecret, NewOrganization, Organization, OrganizationId,
    OrganizationUpdate, Page, PageRequest,
};

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod ids;
pub mod sqlite;

pub use ids::{generate_api_key_secret, now};
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

/// The storage interface. Implementations are cheap to share (`Arc<dyn Store>`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the store can serve reads and writes right now.
    async fn check_ready(&self) -> Result<(), StoreError>;

    /// Creates an organization with a fresh id. Fails with `Conflict` when another live
    /// organization has the same external id.
    async fn create_organization(
        &self,
        request: NewOrganization,
    ) -> Result<Organization, StoreError>;

    /// Returns a live organization.
    async fn get_organization(&self, id: OrganizationId) -> Result<Organization, StoreError>;

    /// Returns the live organization with this external id.
    async fn get_organization_by_external_id(
        &self,
        external_id: &str,
    ) -> Result<Organization, StoreError>;

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

    /// Stores a new API key under the hash of its secret.
    async fn create_api_key(
        &self,
        name: String,
        secret: ApiKeySecret,
    ) -> Result<ApiKey, StoreError>;

    /// Makes sure an active key with exactly this secret exists: creates it, or reactivates it
    /// if it was revoked. Returns the key and whether anything changed.
    async fn ensure_api_key(
        &self,
        name: String,
        secret: ApiKeySecret,
    ) -> Result<(ApiKey, bool), StoreError>;

    /// Finds a key (active or revoked) by the hash of its secret.
    async fn find_api_key(&self, hash: ApiKeyHash) -> Result<Option<ApiKey>, StoreError>;

    /// Lists all keys, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes a key; revoking a revoked key changes nothing and succeeds.
    async fn revoke_api_key(&self, id: ApiKeyId) -> Result<ApiKey, StoreError>;

    /// Finishes every accepted write, makes it durable and releases the store. Later calls fail
    /// with `Unavailable`.
    async fn close(&self) -> Result<(), StoreError>;
}
