//! Vellum's pure core: the domain types, their validation rules and the encodings that other
//! layers rely on.
//!
//! **Invariant:** nothing in this crate performs I/O, reads a clock, draws randomness or is
//! `async`. Time and randomness are passed in by the caller, which is what makes every rule here
//! testable with plain unit tests and shareable between storage backends.

pub mod api_key;
pub mod audit;
pub mod audit_trail;
pub mod canonical;
pub mod checkpoint;
pub mod event;
pub mod export;
pub mod filter;
pub mod id;
pub mod json;
pub mod log_record;
pub mod merkle;
pub mod operator;
pub mod organization;
pub mod pagination;
pub mod portal;
pub mod retention;
pub mod schema;
pub mod seal;
mod secret_bytes;
pub mod sign_in_throttle;
pub mod stream;
pub mod time_range;
pub mod timestamp;
pub mod validation;

pub use api_key::{ApiKey, ApiKeyHash, ApiKeySecret};
pub use event::{Event, EventInput};
pub use id::{
    ActionId, ApiKeyId, AuditTrailActionId, AuditTrailEventId, EventId, ExportId, OperatorId, OrganizationDomainId,
    OrganizationId, PortalLinkId, SchemaId, StreamId,
};
pub use organization::{DomainState, NewOrganization, Organization, OrganizationDomain, OrganizationUpdate};
pub use pagination::{Cursor, ListMetadata, Order, Page, PageRequest};
pub use timestamp::Timestamp;
pub use validation::{FieldError, ValidationErrors};
