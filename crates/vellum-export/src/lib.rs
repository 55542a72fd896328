//! Vellum's exports (`docs/exports.md`): export jobs run on the shared job runner, the CSV and
//! verifiable NDJSON files they write, the object storage that keeps those files, and the
//! signed links they are downloaded from.
//!
//! **Invariant:** this crate knows file formats and storage, never HTTP; the HTTP layer turns
//! its results into WorkOS wire shapes.

pub mod csv_file;
pub mod links;
mod service;
pub mod storage;

pub use links::{LinkError, LinkSigner};
pub use service::{
    CreateError, DELETED_ORGANIZATION, DownloadError, ExpiredExportSweep, ExportJob, ExportService, ExportSettings,
};
pub use storage::{Storage, StorageSettings};
