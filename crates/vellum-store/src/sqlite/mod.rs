//! The embedded store: one SQLite database file in the data directory.
//!
//! # Write path: one writer thread, group commit
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync. So every write from
//! every request goes to one thread that owns the only write connection. That thread takes
//! whatever jobs are queued (up to [`SqliteConfig::max_batch`]), runs each in its own `SAVEPOINT`
//! (a lone job runs without one)
//! inside one transaction, commits once, and only then answers every job. Under load one fsync
//! therefore acknowledges many requests; a job that fails rolls back to its savepoint alone and
//! does not disturb the others in the batch.
//!
//! # Read path
//!
//! Reads run on a small pool of separate connections in `spawn_blocking`; WAL mode lets them
//! proceed while the writer commits.

mod api_keys;
mod backup;
mod checkpointer;
#[cfg(feature = "postgres")]
mod dump;
mod events;
mod exports;
mod follower;
mod log;
mod migrations;
mod operators;
mod organizations;
mod portal;
mod retention;
mod schemas;
mod search;
mod streams;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;
use vellum_core::schema::SchemaDefinition;
use vellum_core::{
    ActionId, ApiKey, ApiKeyHash, ApiKeyId, ApiKeySecret, Event, EventId, NewOrganization, Organization,
    OrganizationId, OrganizationUpdate, Page, PageRequest, SchemaId, Timestamp,
};

#[cfg(feature = "postgres")]
pub use backup::{BACKUP_FORMAT, BackupFile, BackupSummary, RestoreSummary, backup, restore};
pub use dump::Cell;
pub use migrations::{LATEST_SCHEMA_VERSION, migrate};
pub use retention::{Compacted, compact};
pub use search::SEARCH_FILE_NAME;
use writer::Writer;

use crate::ids::IdGenerator;
use crate::{
    AccessStore, ActionSummary, AppendOutcome, EventFilter, EventStore, ExportStore, IdempotencyClaim, LogStore,
    NewEvent, OrganizationFilter, OrganizationStore, SchemaStore, Store, StoreError, StoredSchema,
};

/// The database file's name inside the data directory.
pub const DATABASE_FILE_NAME: &str = "vellum.sqlite3";

/// How the embedded store is set up.
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// The data directory; created if missing.
    pub data_dir: PathBuf,
    /// How many read connections to keep.
    pub read_connections: usize,
    /// The most write jobs committed together.
    pub max_batch: usize,
    /// The page cache of the write connection, in MiB, once the database file is over 1 GiB.
    /// The indexes being written must stay in it: a cache smaller than their working set spills
    /// dirty pages mid-transaction and rereads them at every commit.
    pub write_cache_mib: u32,
    /// The page cache of the write connection, in MiB, while the database file is under 1 GiB
    /// (see `writer::CacheSizer` for why it is smaller then).
    pub small_write_cache_mib: u32,
    /// The page cache of each read connection, in MiB.
    pub read_cache_mib: u32,
}

impl SqliteConfig {
    /// The defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            read_connections: 4,
            max_batch: 1024,
            write_cache_mib: 256,
            small_write_cache_mib: 8,
            read_cache_mib: 8,
        }
    }

    /// Returns the path of the database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join(DATABASE_FILE_NAME)
    }
}

/// The SQLite-backed [`Store`].
#[derive(Debug)]
pub struct SqliteStore {
    frontiers: Arc<crate::verifiable_log::Frontiers<i64>>,
    writer: Writer,
    readers: Arc<ReadPool>,
    ids: Arc<IdGenerator>,
    data_dir: PathBuf,
    /// Purged events the search index has yet to forget (see `purge_step`).
    unforgotten: Arc<Mutex<Vec<i64>>>,
    /// The data directory's lock, held shared while the store is open (see [`lock_data_dir`]).
    _lock: std::fs::File,
}

/// The file every open store of a data directory holds a shared lock on, and that
/// [`compact`] locks exclusively: a store cannot be rewritten while anyone has it open.
pub const LOCK_FILE_NAME: &str = "vellum.lock";

/// Takes the data directory's lock, shared (an open store) or exclusive (a compaction), without
/// waiting.
fn lock_data_dir(data_dir: &Path, exclusive: bool) -> Result<std::fs::File, StoreError> {
    let path = data_dir.join(LOCK_FILE_NAME);
    create_private_file(&path)?;
    let file = std::fs::File::open(&path)
        .map_err(|error| StoreError::Unavailable(format!("cannot open {}: {error}", path.display())))?;
    let operation = if exclusive {
        rustix::fs::FlockOperation::NonBlockingLockExclusive
    } else {
        rustix::fs::FlockOperation::NonBlockingLockShared
    };
    match rustix::fs::flock(&file, operation) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) if exclusive => Err(StoreError::Conflict(format!(
            "the store in {} is open (a server or another command): stop it before compacting",
            data_dir.display()
        ))),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(StoreError::Unavailable(format!(
            "the store in {} is being compacted (vellum purge --compact); try again when it is done",
            data_dir.display()
        ))),
        Err(error) => Err(StoreError::Unavailable(format!(
            "cannot lock {}: {error}",
            path.display()
        ))),
    }
}

#[derive(Debug)]
struct ReadPool {
    connections: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match &error {
            rusqlite::Error::SqliteFailure(failure, _)
                if matches!(
                    failure.code,
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::SystemIoFailure
                ) =>
            {
                Self::Unavailable(error.to_string())
            }
            _ => Self::Internal(error.to_string()),
        }
    }
}

/// Opens a connection with the settings every connection shares.
fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    open_connection_with_cache(path, read_only, 0)
}

/// Opens a connection with a page cache of `cache_mib` MiB (0: SQLite's default, 2 MiB).
fn open_connection_with_cache(path: &Path, read_only: bool, cache_mib: u32) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let connection = Connection::open_with_flags(path, flags)
        .map_err(|error| StoreError::Unavailable(format!("cannot open {}: {error}", path.display())))?;
    // Another process (the CLI next to a running server) may hold the write lock briefly.
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    // Listings build their SQL from the filters given, and an append runs a dozen statements:
    // keep them all prepared rather than re-parsing them once the default 16 are in use.
    connection.set_prepared_statement_cache_capacity(128);
    plan_once(&connection)?;
    connection.pragma_update(None, "foreign_keys", true)?;
    if cache_mib > 0 {
        // A negative cache_size is in KiB.
        connection.pragma_update(None, "cache_size", -i64::from(cache_mib) * 1024)?;
    }
    // Savepoint sub-journals and sorts stay in memory instead of temporary files.
    connection.pragma_update(None, "temp_store", "memory")?;
    if !read_only {
        // A new store gives the pages that purges free back to the file system, a step at a
        // time (`RetentionStore::reclaim_space`). The mode can only be chosen before the file
        // has its first page, which switching to WAL writes.
        let pages: i64 = connection.query_row("pragma page_count", [], |row| row.get(0))?;
        if pages == 0 {
            connection.pragma_update(None, "auto_vacuum", "incremental")?;
        }
        // WAL lets readers run during commits; FULL makes every commit durable on return.
        let mode: String = connection.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Internal(format!("cannot switch to WAL mode (got {mode})")));
        }
        connection.pragma_update(None, "synchronous", "FULL")?;
        // Space a page no longer uses is zeroed when that costs no extra write (a split leaves
        // no copy of the moved rows behind), so that an erasure can find every copy of what it
        // removes; an erasure zeroes the pages it frees too (`retention::erase_step`).
        connection.pragma_update(None, "secure_delete", "fast")?;
    }
    Ok(connection)
}

/// Makes prepared statements keep their plan whatever values are bound to them.
///
/// Without it, SQLite compares each bound parameter with the constants of the expression
/// indexes (`log_index >> 15`) while planning, and marks the statement to be planned again
/// whenever that parameter is rebound: every append and every segment of a listing parsed and
/// planned its SQL anew (a tenth of the writer's time under single-event load). The store keeps
/// no statistics (`ANALYZE`), so no plan here depends on a bound value anyway.
pub(super) fn plan_once(connection: &Connection) -> Result<(), StoreError> {
    connection.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Creates the database file with mode 0600 before SQLite does, if it is missing: SQLite gives
/// its `-wal` and `-shm` files the mode of the database file.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, crate::private_files::PRIVATE_FILE_MODE);
    options
        .open(path)
        .map(drop)
        .map_err(|error| StoreError::Unavailable(format!("cannot create {}: {error}", path.display())))
}

/// Opens a write connection with the store's settings, for `vellum migrate`.
pub fn open_for_migration(path: &Path) -> Result<Connection, StoreError> {
    create_private_file(path)?;
    open_connection(path, false)
}

/// Purged events the search index forgets at once, at most.
const SEARCH_FORGET_BATCH: usize = 50_000;

impl SqliteStore {
    async fn forget_in_search(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let search_path = self.data_dir.join(SEARCH_FILE_NAME);
        tokio::task::spawn_blocking(move || retention::forget_in_search(&search_path, &seqs))
            .await
            .map_err(|error| StoreError::Internal(format!("forgetting purged events failed: {error}")))
    }

    /// Opens (creating if needed) and migrates the store in the configured data directory.
    pub fn open(config: &SqliteConfig) -> Result<Self, StoreError> {
        crate::private_files::create_private_dir_all(&config.data_dir)
            .and_then(|()| crate::private_files::make_data_dir_private(&config.data_dir))
            .map_err(|error| {
                StoreError::Unavailable(format!(
                    "cannot create a private data directory {}: {error}",
                    config.data_dir.display()
                ))
            })?;
        let lock = lock_data_dir(&config.data_dir, false)?;
        let path = config.database_path();
        create_private_file(&path)?;
        // Migrations rewrite whole tables: they get the full cache (the writer sizes it by the
        // file from its first commit on).
        let mut write_connection = open_connection_with_cache(&path, false, config.write_cache_mib)?;
        migrate(&mut write_connection)?;
        // Checkpoints run on their own thread (see `checkpointer`), never on the commit path.
        write_connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        // After a burst, give the WAL file back down to 64 MiB once a checkpoint has emptied it.
        write_connection.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        let wal_wrap = Arc::new(checkpointer::WalWrap::default());
        let checkpointer = checkpointer::start(open_connection(&path, false)?, Arc::clone(&wal_wrap))?;
        let search_path = config.data_dir.join(SEARCH_FILE_NAME);
        let search = search::start(&path, &search_path)?;

        let mut read_connections = Vec::with_capacity(config.read_connections);
        for _ in 0..config.read_connections.max(1) {
            let connection = open_connection_with_cache(&path, true, config.read_cache_mib)?;
            connection
                .execute("attach database ?1 as search", [search_path.to_string_lossy()])
                .map_err(|error| StoreError::Unavailable(format!("cannot open the search index: {error}")))?;
            read_connections.push(connection);
        }
        let readers = ReadPool {
            permits: Semaphore::new(read_connections.len()),
            connections: Mutex::new(read_connections),
        };
        Ok(Self {
            frontiers: Arc::new(crate::verifiable_log::Frontiers::new()),
            writer: Writer::start(
                write_connection,
                config.max_batch.max(1),
                writer::CacheSizer::new(config.write_cache_mib, config.small_write_cache_mib),
                writer::Followers {
                    checkpointer,
                    wal_wrap,
                    search,
                },
            )?,
            readers: Arc::new(readers),
            ids: Arc::new(IdGenerator::default()),
            data_dir: config.data_dir.clone(),
            unforgotten: Arc::new(Mutex::new(Vec::new())),
            _lock: lock,
        })
    }

    /// How many stored events the search index has not covered yet (it follows the writer by a
    /// moment; searches stay exact meanwhile). For tests and the benchmark harness.
    pub async fn search_index_lag(&self) -> Result<u64, StoreError> {
        self.read(|connection| {
            let lag: i64 = connection.query_row(
                "select (select coalesce(max(seq), 0) from events)
                      - (select indexed_seq from search.search_state where id = 1)",
                [],
                |row| row.get(0),
            )?;
            Ok(u64::try_from(lag).unwrap_or_default())
        })
        .await
    }

    /// Runs `work` on a read connection without blocking the async runtime.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = self
            .readers
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        let readers = Arc::clone(&self.readers);
        let result = tokio::task::spawn_blocking(move || {
            let connection = readers
                .connections
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop()
                .expect("a permit guarantees a free connection");
            // A panicking read must still hand its connection back, or the pool shrinks for good.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&connection)))
                .unwrap_or_else(|_| Err(StoreError::Internal("a read panicked".into())));
            readers
                .connections
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(connection);
            result
        })
        .await
        .map_err(|error| StoreError::Internal(format!("read task failed: {error}")))?;
        drop(permit);
        result
    }
}

#[async_trait]
impl OrganizationStore for SqliteStore {
    async fn create_organization(&self, request: NewOrganization) -> Result<Organization, StoreError> {
        let ids = Arc::clone(&self.ids);
        self.writer
            .write(move |transaction| organizations::insert(transaction, &ids, request))
            .await
    }

    async fn get_organization(&self, id: OrganizationId) -> Result<Organization, StoreError> {
        self.read(move |connection| {
            organizations::get(connection, id)?.ok_or_else(|| StoreError::not_found("Organization", id))
        })
        .await
    }

    async fn get_organization_by_external_id(&self, external_id: &str) -> Result<Organization, StoreError> {
        let external_id = external_id.to_owned();
        self.read(move |connection| {
            organizations::get_by_external_id(connection, &external_id)?
                .ok_or_else(|| StoreError::not_found("Organization", &external_id))
        })
        .await
    }

    async fn list_organizations(
        &self,
        filter: OrganizationFilter,
        page: PageRequest<OrganizationId>,
    ) -> Result<Page<Organization, OrganizationId>, StoreError> {
        self.read(move |connection| organizations::list(connection, &filter, &page))
            .await
    }

    async fn update_organization(
        &self,
        id: OrganizationId,
        update: OrganizationUpdate,
    ) -> Result<Organization, StoreError> {
        let ids = Arc::clone(&self.ids);
        self.writer
            .write(move |transaction| organizations::update(transaction, &ids, id, update))
            .await
    }

    async fn delete_organization(&self, id: OrganizationId) -> Result<(), StoreError> {
        self.writer
            .write(move |transaction| organizations::delete(transaction, id))
            .await
    }

    async fn get_retention(&self, organization_id: OrganizationId) -> Result<Option<u32>, StoreError> {
        self.read(move |connection| organizations::get_retention(connection, organization_id))
            .await
    }

    async fn set_retention(&self, organization_id: OrganizationId, days: u32) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| organizations::set_retention(connection, organization_id, days))
            .await
    }
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn create_api_key(&self, name: String, secret: ApiKeySecret) -> Result<ApiKey, StoreError> {
        let ids = Arc::clone(&self.ids);
        self.writer
            .write(move |transaction| api_keys::insert(transaction, &ids, name, &secret))
            .await
    }

    async fn ensure_api_key(&self, name: String, secret: ApiKeySecret) -> Result<crate::EnsuredApiKey, StoreError> {
        let ids = Arc::clone(&self.ids);
        let (key, created) = self
            .writer
            .write(move |transaction| api_keys::ensure(transaction, &ids, name, &secret))
            .await?;
        Ok(crate::EnsuredApiKey { key, created })
    }

    async fn find_api_key(&self, hash: ApiKeyHash) -> Result<Option<ApiKey>, StoreError> {
        self.read(move |connection| api_keys::find_by_hash(connection, &hash))
            .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.read(api_keys::list).await
    }

    async fn revoke_api_key(&self, id: ApiKeyId) -> Result<ApiKey, StoreError> {
        self.writer
            .write(move |transaction| api_keys::revoke(transaction, id))
            .await
    }

    async fn create_operator(
        &self,
        email: vellum_core::operator::Email,
        password_hash: vellum_core::operator::PasswordHash,
    ) -> Result<vellum_core::operator::Operator, StoreError> {
        let ids = Arc::clone(&self.ids);
        self.writer
            .write(move |transaction| operators::insert(transaction, &ids, email, password_hash))
            .await
    }

    async fn find_operator(
        &self,
        email: vellum_core::operator::Email,
    ) -> Result<Option<vellum_core::operator::Operator>, StoreError> {
        self.read(move |connection| operators::find_by_email(connection, &email))
            .await
    }

    async fn list_operators(&self) -> Result<Vec<vellum_core::operator::Operator>, StoreError> {
        self.read(operators::list).await
    }

    async fn set_operator_password(
        &self,
        id: vellum_core::OperatorId,
        password_hash: vellum_core::operator::PasswordHash,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |transaction| operators::set_password(transaction, id, &password_hash))
            .await
    }

    async fn create_operator_session(
        &self,
        operator_id: vellum_core::OperatorId,
        token_hash: vellum_core::operator::SessionTokenHash,
        expires_at: Timestamp,
    ) -> Result<vellum_core::operator::OperatorSession, StoreError> {
        self.writer
            .write(move |transaction| operators::insert_session(transaction, operator_id, token_hash, expires_at))
            .await
    }

    async fn find_operator_session(
        &self,
        token_hash: vellum_core::operator::SessionTokenHash,
        now: Timestamp,
    ) -> Result<Option<vellum_core::operator::OperatorSession>, StoreError> {
        self.read(move |connection| operators::find_session(connection, token_hash, now))
            .await
    }

    async fn delete_operator_session(
        &self,
        token_hash: vellum_core::operator::SessionTokenHash,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |transaction| operators::delete_session(transaction, token_hash))
            .await
    }

    async fn sign_in_throttle(
        &self,
        keys: Vec<vellum_core::sign_in_throttle::ThrottleKey>,
        step: vellum_core::sign_in_throttle::Step,
        now: Timestamp,
    ) -> Result<Result<(), vellum_core::sign_in_throttle::RetryAfterSeconds>, StoreError> {
        self.writer
            .write(move |transaction| operators::sign_in_throttle(transaction, &keys, step, now))
            .await
    }
}

#[async_trait]
impl SchemaStore for SqliteStore {
    async fn create_schema(
        &self,
        action: String,
        definition: SchemaDefinition,
    ) -> Result<crate::CreatedSchema, StoreError> {
        let ids = Arc::clone(&self.ids);
        let (schema, created) = self
            .writer
            .write(move |connection| schemas::create(connection, &ids, action, definition))
            .await?;
        Ok(crate::CreatedSchema { schema, created })
    }

    async fn get_schema(&self, action: &str, version: Option<u32>) -> Result<Option<StoredSchema>, StoreError> {
        let action = action.to_owned();
        self.read(move |connection| schemas::get(connection, &action, version))
            .await
    }

    async fn list_actions(&self, page: PageRequest<ActionId>) -> Result<Page<ActionSummary, ActionId>, StoreError> {
        self.read(move |connection| schemas::list_actions(connection, &page))
            .await
    }

    async fn list_schemas(
        &self,
        action: &str,
        page: PageRequest<SchemaId>,
    ) -> Result<Page<StoredSchema, SchemaId>, StoreError> {
        let action = action.to_owned();
        self.read(move |connection| schemas::list_schemas(connection, &action, &page))
            .await
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append_events(
        &self,
        organization_id: OrganizationId,
        events: Vec<NewEvent>,
        idempotency: Option<IdempotencyClaim>,
    ) -> Result<AppendOutcome, StoreError> {
        // Encoding is most of an append's CPU: do it here, in parallel across requests, and leave
        // only positions and hashing to the writer.
        let prepared = crate::payload::prepare_now(&self.ids, organization_id, events).await?;
        let frontiers = Arc::clone(&self.frontiers);
        let outcome = self
            .writer
            .write(move |connection| events::append(connection, &frontiers, organization_id, prepared, idempotency))
            .await;
        if outcome.is_err() {
            // The append (or its whole group commit) was rolled back, so a cached right edge may be
            // ahead of the log. Within this process that is caught (its size no longer matches),
            // but another process sharing the file may have appended as many leaves meanwhile:
            // rebuild every edge from what is stored.
            self.frontiers.clear();
        }
        outcome
    }

    async fn check_idempotency(
        &self,
        organization_id: OrganizationId,
        claim: &IdempotencyClaim,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let (key_hash, request_hash) = (claim.key_hash, claim.request_hash);
        self.read(move |connection| events::check_idempotency(connection, organization_id, key_hash, request_hash))
            .await
    }

    async fn list_events(
        &self,
        organization_id: OrganizationId,
        filter: EventFilter,
        page: PageRequest<EventId>,
    ) -> Result<Page<Event, EventId>, StoreError> {
        self.read(move |connection| events::list(connection, organization_id, &filter, &page))
            .await
    }

    async fn list_audit_trail_events(
        &self,
        filter: crate::AuditTrailFilter,
        page: PageRequest<EventId>,
    ) -> Result<Page<Event, EventId>, StoreError> {
        self.read(move |connection| events::list_audit_trail(connection, &filter, &page))
            .await
    }

    async fn get_event(&self, id: EventId) -> Result<Event, StoreError> {
        self.read(move |connection| events::get(connection, id)).await
    }

    async fn event_bounds(
        &self,
        organization_id: OrganizationId,
        filter: EventFilter,
    ) -> Result<crate::EventBounds, StoreError> {
        self.read(move |connection| events::bounds(connection, organization_id, &filter))
            .await
    }

    async fn purge_idempotency_keys(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.writer
            .write(move |connection| events::purge_idempotency_keys(connection, before))
            .await
    }
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn log_checkpoint(
        &self,
        organization_id: OrganizationId,
        signer: Arc<vellum_core::checkpoint::NoteSigner>,
        origin: String,
    ) -> Result<crate::SignedCheckpoint, StoreError> {
        self.writer
            .write(move |connection| log::sign_checkpoint(connection, organization_id, &signer, &origin))
            .await
    }

    async fn log_inclusion_proof(
        &self,
        organization_id: OrganizationId,
        event_id: EventId,
        tree_size: Option<u64>,
    ) -> Result<crate::InclusionProof, StoreError> {
        self.read(move |connection| log::inclusion_proof(connection, organization_id, event_id, tree_size))
            .await
    }

    async fn log_consistency_proof(
        &self,
        organization_id: OrganizationId,
        first: u64,
        second: u64,
    ) -> Result<Vec<vellum_core::merkle::Hash>, StoreError> {
        self.read(move |connection| log::consistency_proof(connection, organization_id, first, second))
            .await
    }

    async fn log_entries(
        &self,
        organization_id: OrganizationId,
        start: u64,
        end: u64,
    ) -> Result<Vec<crate::LogEntry>, StoreError> {
        self.read(move |connection| log::entries(connection, organization_id, start, end))
            .await
    }

    async fn log_tree_head(&self, organization_id: OrganizationId) -> Result<crate::TreeHead, StoreError> {
        let (size, root) = self
            .read(move |connection| log::tree_head(connection, organization_id))
            .await?;
        Ok(crate::TreeHead { size, root })
    }

    async fn log_first_inconsistent_node(
        &self,
        organization_id: OrganizationId,
    ) -> Result<Option<crate::NodePosition>, StoreError> {
        let found = self
            .read(move |connection| log::first_inconsistent_node(connection, organization_id))
            .await?;
        Ok(found.map(|(level, index)| crate::NodePosition { level, index }))
    }

    async fn log_organizations(&self) -> Result<Vec<crate::LogOwner>, StoreError> {
        let owners = self.read(log::organizations_with_logs).await?;
        Ok(owners
            .into_iter()
            .map(|(organization_id, deleted)| crate::LogOwner {
                organization_id,
                deleted,
            })
            .collect())
    }

    async fn log_scan(
        &self,
        organization_id: OrganizationId,
        start: u64,
        limit: u64,
    ) -> Result<crate::LogScan, StoreError> {
        let (records, tree_size, checkpoint_note) = self
            .read(move |connection| log::scan(connection, organization_id, start, limit))
            .await?;
        Ok(crate::LogScan {
            records,
            tree_size,
            checkpoint_note,
        })
    }

    async fn log_frontier(
        &self,
        organization_id: OrganizationId,
        size: u64,
    ) -> Result<Vec<vellum_core::merkle::Hash>, StoreError> {
        self.read(move |connection| log::frontier(connection, organization_id, size))
            .await
    }
}

#[async_trait]
impl crate::RetentionStore for SqliteStore {
    async fn retention_policies(&self) -> Result<Vec<crate::RetentionPolicy>, StoreError> {
        self.read(retention::policies).await
    }

    async fn purge_step(
        &self,
        organization_id: OrganizationId,
        rule: crate::PurgeRule,
        limit: u32,
    ) -> Result<crate::PurgeStep, StoreError> {
        let frontiers = Arc::clone(&self.frontiers);
        let ids = Arc::clone(&self.ids);
        let (step, seqs) = self
            .writer
            .write(move |connection| retention::purge_step(connection, &frontiers, &ids, organization_id, rule, limit))
            .await?;
        // The search index forgets purged events in large batches: each of its transactions
        // merges index segments, which costs the same for 2,000 deletions as for 50,000. Until
        // then searches skip them (candidates are joined with the events that remain).
        let batch = {
            let mut unforgotten = self
                .unforgotten
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            unforgotten.extend(seqs);
            if unforgotten.len() >= SEARCH_FORGET_BATCH || matches!(step, crate::PurgeStep::Done) {
                std::mem::take(&mut *unforgotten)
            } else {
                Vec::new()
            }
        };
        self.forget_in_search(batch).await?;
        Ok(step)
    }

    async fn erase_step(
        &self,
        organization_id: OrganizationId,
        subject: &vellum_core::seal::ErasureSubject,
        by: &vellum_core::log_record::RecordedBy,
        limit: u32,
    ) -> Result<crate::EraseStep, StoreError> {
        let frontiers = Arc::clone(&self.frontiers);
        let ids = Arc::clone(&self.ids);
        let (subject, by) = (subject.clone(), by.clone());
        let (step, seqs) = self
            .writer
            .write(move |connection| {
                retention::erase_step(connection, &frontiers, &ids, organization_id, &subject, &by, limit)
            })
            .await?;
        if !seqs.is_empty() {
            // The old text goes from the search index and from the write-ahead logs too.
            let store_path = self.data_dir.join(DATABASE_FILE_NAME);
            let search_path = self.data_dir.join(SEARCH_FILE_NAME);
            // Free pages may hold copies from before (pages freed without being zeroed): they
            // are given back to the file system, a bounded amount per writer job.
            while self.writer.write(retention::reclaim).await? > 0 {}
            tokio::task::spawn_blocking(move || {
                retention::reindex_erased(&store_path, &search_path, &seqs);
                retention::truncate_wal(&search_path);
                retention::truncate_wal(&store_path);
            })
            .await
            .map_err(|error| StoreError::Internal(format!("rewriting erased search entries failed: {error}")))?;
        }
        Ok(step)
    }

    async fn reclaim_space(&self) -> Result<u64, StoreError> {
        let pending = std::mem::take(
            &mut *self
                .unforgotten
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        self.forget_in_search(pending).await?;
        let freed = self.writer.write(retention::reclaim).await?;
        if freed > 0 {
            return Ok(freed);
        }
        let search_path = self.data_dir.join(SEARCH_FILE_NAME);
        tokio::task::spawn_blocking(move || {
            let freed = retention::reclaim_search(&search_path)?;
            let wal = std::fs::metadata(format!("{}-wal", search_path.display())).map_or(0, |wal| wal.len());
            if freed == 0 && wal > 64 * 1024 * 1024 {
                // Done: the search index's WAL goes back to nothing rather than keeping the
                // size the reclaim's moves gave it (as the database's does, by its writer's
                // `journal_size_limit`).
                retention::truncate_wal(&search_path);
            }
            Ok(freed)
        })
        .await
        .map_err(|error| StoreError::Internal(format!("reclaiming the search index failed: {error}")))?
    }

    async fn store_size(&self) -> Result<u64, StoreError> {
        let data_dir = self.data_dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut total = 0;
            for entry in std::fs::read_dir(&data_dir)?.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(DATABASE_FILE_NAME) || name.starts_with(SEARCH_FILE_NAME) {
                    total += entry.metadata()?.len();
                }
            }
            Ok::<_, std::io::Error>(total)
        })
        .await
        .map_err(|error| StoreError::Internal(format!("measuring the store failed: {error}")))?
        .map_err(|error| StoreError::Unavailable(format!("cannot measure the store: {error}")))
    }

    async fn legal_hold(&self, organization_id: OrganizationId) -> Result<Option<crate::LegalHold>, StoreError> {
        self.read(move |connection| retention::legal_hold(connection, organization_id))
            .await
    }

    async fn set_legal_hold(
        &self,
        organization_id: OrganizationId,
        hold: Option<Option<String>>,
        record: vellum_core::EventInput,
    ) -> Result<(Option<crate::LegalHold>, Option<Event>), StoreError> {
        let frontiers = Arc::clone(&self.frontiers);
        let ids = Arc::clone(&self.ids);
        self.writer
            .write(move |connection| {
                retention::set_legal_hold(connection, &frontiers, &ids, organization_id, hold, record)
            })
            .await
    }
}

#[async_trait]
impl ExportStore for SqliteStore {
    async fn create_export(
        &self,
        organization_id: OrganizationId,
        format: vellum_core::export::ExportFormat,
        filter: vellum_core::export::ExportFilter,
    ) -> Result<vellum_core::export::Export, StoreError> {
        let id = vellum_core::ExportId::from_ulid(self.ids.next());
        self.writer
            .write(move |connection| exports::insert(connection, id, organization_id, format, &filter, crate::now()))
            .await
    }

    async fn get_export(&self, id: vellum_core::ExportId) -> Result<vellum_core::export::Export, StoreError> {
        self.read(move |connection| exports::get(connection, id)).await
    }

    async fn exports_in_state(
        &self,
        state: vellum_core::export::ExportState,
        updated_before: Timestamp,
    ) -> Result<Vec<vellum_core::export::Export>, StoreError> {
        self.read(move |connection| exports::in_state(connection, state, updated_before))
            .await
    }

    async fn start_export(&self, id: vellum_core::ExportId) -> Result<vellum_core::export::Export, StoreError> {
        self.writer
            .write(move |connection| exports::start(connection, id, crate::now()))
            .await
    }

    async fn finish_export(
        &self,
        id: vellum_core::ExportId,
        outcome: crate::ExportOutcome,
    ) -> Result<vellum_core::export::Export, StoreError> {
        self.writer
            .write(move |connection| exports::finish(connection, id, &outcome, None, crate::now()))
            .await
    }

    async fn claim_export(
        &self,
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<vellum_core::export::Export>, StoreError> {
        let worker = worker.to_owned();
        self.writer
            .write(move |connection| exports::claim(connection, &worker, now, lease_until))
            .await
    }

    async fn renew_export_lease(
        &self,
        id: vellum_core::ExportId,
        worker: &str,
        lease_until: Timestamp,
    ) -> Result<(), StoreError> {
        let worker = worker.to_owned();
        self.writer
            .write(move |connection| exports::renew_lease(connection, id, &worker, lease_until))
            .await
    }

    async fn release_export_lease(&self, id: vellum_core::ExportId, worker: &str) -> Result<(), StoreError> {
        let worker = worker.to_owned();
        self.writer
            .write(move |connection| exports::release_lease(connection, id, &worker))
            .await
    }

    async fn finish_leased_export(
        &self,
        id: vellum_core::ExportId,
        worker: &str,
        outcome: crate::ExportOutcome,
    ) -> Result<vellum_core::export::Export, StoreError> {
        let worker = worker.to_owned();
        self.writer
            .write(move |connection| exports::finish(connection, id, &outcome, Some(&worker), crate::now()))
            .await
    }
}

#[async_trait]
impl crate::PortalStore for SqliteStore {
    async fn create_portal_link(
        &self,
        link: vellum_core::portal::NewPortalLink,
    ) -> Result<vellum_core::portal::PortalLink, StoreError> {
        let id = vellum_core::PortalLinkId::from_ulid(self.ids.next());
        self.writer
            .write(move |connection| portal::insert_link(connection, id, &link))
            .await
    }

    async fn open_portal_link(
        &self,
        secret_hash: vellum_core::operator::SessionTokenHash,
        session_hash: vellum_core::operator::SessionTokenHash,
        now: Timestamp,
        session_expires_at: Timestamp,
    ) -> Result<Option<vellum_core::portal::PortalSession>, StoreError> {
        self.writer
            .write(move |connection| portal::open_link(connection, secret_hash, session_hash, now, session_expires_at))
            .await
    }

    async fn find_portal_session(
        &self,
        token_hash: vellum_core::operator::SessionTokenHash,
        now: Timestamp,
    ) -> Result<Option<vellum_core::portal::PortalSession>, StoreError> {
        self.read(move |connection| portal::find_session(connection, token_hash, now))
            .await
    }

    async fn revoke_portal_links(
        &self,
        organization_id: OrganizationId,
        external_user_id: String,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.writer
            .write(move |connection| portal::revoke_links(connection, organization_id, &external_user_id, now))
            .await
    }

    async fn end_portal_session(&self, token_hash: vellum_core::operator::SessionTokenHash) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| portal::end_session(connection, token_hash))
            .await
    }
}

#[async_trait]
impl crate::StreamStore for SqliteStore {
    async fn create_stream(&self, stream: crate::NewStream) -> Result<crate::Stream, StoreError> {
        let id = vellum_core::StreamId::from_ulid(self.ids.next());
        self.writer
            .write(move |connection| streams::insert(connection, id, &stream, crate::now()))
            .await
    }

    async fn get_stream(&self, id: vellum_core::StreamId) -> Result<crate::Stream, StoreError> {
        self.read(move |connection| streams::get(connection, id)).await
    }

    async fn list_streams(&self, organization_id: OrganizationId) -> Result<Vec<crate::Stream>, StoreError> {
        self.read(move |connection| streams::list(connection, organization_id))
            .await
    }

    async fn all_streams(&self, limit: u32) -> Result<Vec<crate::Stream>, StoreError> {
        self.read(move |connection| streams::all(connection, limit)).await
    }

    async fn update_stream(
        &self,
        id: vellum_core::StreamId,
        change: crate::StreamChange,
    ) -> Result<crate::Stream, StoreError> {
        self.writer
            .write(move |connection| streams::update(connection, id, &change, crate::now()))
            .await
    }

    async fn delete_stream(&self, id: vellum_core::StreamId) -> Result<(), StoreError> {
        self.writer
            .write(move |connection| streams::delete(connection, id))
            .await
    }

    async fn replay_stream(&self, id: vellum_core::StreamId, from: u64) -> Result<crate::Stream, StoreError> {
        self.writer
            .write(move |connection| streams::replay(connection, id, from, crate::now()))
            .await
    }

    async fn first_position_since(&self, organization_id: OrganizationId, since: Timestamp) -> Result<u64, StoreError> {
        self.read(move |connection| streams::first_position_since(connection, organization_id, since))
            .await
    }

    async fn claim_stream(
        &self,
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<crate::Stream>, StoreError> {
        if !self.read(move |connection| streams::any_due(connection, now)).await? {
            return Ok(None);
        }
        let worker = worker.to_owned();
        self.writer
            .write(move |connection| streams::claim(connection, &worker, now, lease_until))
            .await
    }

    async fn finish_delivery(
        &self,
        id: vellum_core::StreamId,
        worker: &str,
        from: u64,
        outcome: crate::DeliveryOutcome,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let worker = worker.to_owned();
        self.writer
            .write(move |connection| streams::finish(connection, id, &worker, from, &outcome, now))
            .await
    }

    async fn release_stream(&self, id: vellum_core::StreamId, worker: &str, now: Timestamp) -> Result<(), StoreError> {
        let worker = worker.to_owned();
        self.writer
            .write(move |connection| streams::release(connection, id, &worker, now))
            .await
    }

    async fn stream_events(
        &self,
        organization_id: OrganizationId,
        from: u64,
        limit: u32,
    ) -> Result<Vec<vellum_core::Event>, StoreError> {
        self.read(move |connection| streams::events_from(connection, organization_id, from, limit))
            .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn check_ready(&self) -> Result<(), StoreError> {
        self.writer.check_alive()?;
        self.read(|connection| {
            connection.query_row("SELECT count(*) FROM schema_migrations", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    async fn close(&self) -> Result<(), StoreError> {
        let pending = std::mem::take(
            &mut *self
                .unforgotten
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if let Err(error) = self.forget_in_search(pending).await {
            tracing::warn!(%error, "purged events stay in the search index until it is rebuilt; searches skip them");
        }
        self.writer.close().await?;
        self.readers.permits.close();
        Ok(())
    }
}

/// Converts a stored 16-byte id back into a ULID.
fn ulid_from_blob(bytes: &[u8]) -> Result<ulid::Ulid, StoreError> {
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::Internal(format!("stored id has {} bytes, not 16", bytes.len())))?;
    Ok(ulid::Ulid::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempStore {
        _dir: tempfile::TempDir,
    }

    async fn open_temp() -> (SqliteStore, TempStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&SqliteConfig::new(dir.path())).expect("open store");
        (store, TempStore { _dir: dir })
    }

    crate::store_conformance_suite!(open_temp);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_store_gives_the_space_purges_free_back_to_the_file_system() {
        use crate::{PurgeRule, PurgeStep, RetentionStore};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&SqliteConfig::new(dir.path())).unwrap();
        let mode: i64 = store
            .read(|connection| Ok(connection.query_row("pragma auto_vacuum", [], |row| row.get(0))?))
            .await
            .unwrap();
        assert_eq!(mode, 2, "incremental");
        let organization = store
            .create_organization(crate::conformance::new_organization("Space"))
            .await
            .unwrap()
            .id;
        for batch in 0..10 {
            let events = (0..500)
                .map(|n| {
                    let mut event =
                        crate::conformance::event_at(1_000 + batch * 500 + n, "space.used", "u", &[("doc", "d")]);
                    event.input.metadata = Some(
                        [(
                            "padding".to_owned(),
                            vellum_core::event::MetadataValue::String("x".repeat(400)),
                        )]
                        .into(),
                    );
                    event
                })
                .collect();
            store.append_events(organization, events, None).await.unwrap();
        }
        let database = dir.path().join(DATABASE_FILE_NAME);
        let checkpoint = |store: &SqliteStore| {
            let path = database.clone();
            let _ = store;
            let connection = Connection::open(path).unwrap();
            connection.execute_batch("pragma wal_checkpoint(truncate)").unwrap();
        };
        checkpoint(&store);
        let full = std::fs::metadata(&database).unwrap().len();
        let rule = PurgeRule {
            occurred_before: Timestamp::from_unix_millis(1_000 + 4_000).unwrap(),
            below_log_index: 5_000,
            retention_period_in_days: 30,
        };
        while let PurgeStep::Purged(_) = store.purge_step(organization, rule, 1_000).await.unwrap() {}
        let (mut reclaimed, mut calls) = (0, 0);
        loop {
            let freed = store.reclaim_space().await.unwrap();
            calls += 1;
            if freed == 0 {
                break;
            }
            reclaimed += freed;
        }
        checkpoint(&store);
        let after = std::fs::metadata(&database).unwrap().len();
        assert!(reclaimed > 0);
        // Each call gives back up to 4,096 pages of a file, not one page: a few calls give
        // back the database's and the search index's hundreds of free pages.
        assert!(calls <= 4, "{calls} calls to give back {reclaimed} bytes");
        assert!(
            after * 2 < full,
            "purging 4,000 of 5,000 events left {after} of {full} bytes"
        );
        store.close().await.unwrap();
    }

    /// Purged leaves are kept in runs of at most 24 consecutive positions, cut at every gap,
    /// and read back exactly: by the scan, in frontiers and proofs whose boundaries fall inside a
    /// run. Rows an earlier version wrote to `purged_leaves` are read the same way beside them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn purged_leaves_are_kept_in_runs_and_read_back_exactly() {
        use crate::conformance::event_at;
        use crate::{PurgeRule, PurgeStep, RetentionStore};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&SqliteConfig::new(dir.path())).unwrap();
        let organization = store
            .create_organization(crate::conformance::new_organization("Runs"))
            .await
            .unwrap()
            .id;
        // Positions 0..100 occurred long ago, but 50, which stays.
        let events: Vec<NewEvent> = (0..100)
            .map(|n| event_at(if n == 50 { 9_000_000 } else { 1_000 + n }, "runs.tested", "u", &[]))
            .collect();
        let AppendOutcome::Appended(stored) = store.append_events(organization, events, None).await.unwrap() else {
            panic!("not appended");
        };
        let leaves_before: Vec<_> = store
            .log_scan(organization, 0, 1_000)
            .await
            .unwrap()
            .records
            .iter()
            .map(|record| record.stored_leaf)
            .collect();
        let head = store.log_tree_head(organization).await.unwrap();
        let sizes = [1, 25, 37, 49, 50, 51, 73, 99, 100];
        let mut frontiers = Vec::new();
        for size in sizes {
            frontiers.push(store.log_frontier(organization, size).await.unwrap());
        }
        let kept_proof = store
            .log_inclusion_proof(organization, stored[50].id, Some(100))
            .await
            .unwrap();
        let rule = PurgeRule {
            occurred_before: Timestamp::from_unix_millis(1_000_000).unwrap(),
            below_log_index: 100,
            retention_period_in_days: 30,
        };
        let PurgeStep::Purged(chunk) = store.purge_step(organization, rule, 2_000).await.unwrap() else {
            panic!("nothing purged");
        };
        assert_eq!(chunk.events, 99);
        let runs: Vec<(i64, i64)> = store
            .read(|connection| {
                let mut statement = connection
                    .prepare("select first_index, length(leaves) / 32 from purged_leaf_runs order by first_index")?;
                let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(runs, vec![(0, 24), (24, 24), (48, 2), (51, 24), (75, 24), (99, 1)]);

        let kept = stored[50].id;
        let check = |store: SqliteStore, what: &'static str| {
            let (leaves_before, frontiers, kept_proof) = (leaves_before.clone(), frontiers.clone(), kept_proof.clone());
            async move {
                let scan = store.log_scan(organization, 0, 1_000).await.unwrap();
                assert_eq!(scan.records.len(), 101, "{what}");
                for record in &scan.records[..100] {
                    let index = usize::try_from(record.log_index).unwrap();
                    assert_eq!(record.stored_leaf, leaves_before[index], "{what}: leaf {index}");
                    assert_eq!(
                        record.purged_by,
                        (index != 50).then_some(100),
                        "{what}: position {index}"
                    );
                }
                for (size, frontier) in sizes.into_iter().zip(&frontiers) {
                    assert_eq!(
                        &store.log_frontier(organization, size).await.unwrap(),
                        frontier,
                        "{what}: frontier at {size}"
                    );
                }
                assert_eq!(
                    store.log_inclusion_proof(organization, kept, Some(100)).await.unwrap(),
                    kept_proof,
                    "{what}"
                );
                let after = store.log_tree_head(organization).await.unwrap();
                assert!(vellum_core::merkle::verify_consistency(
                    100,
                    101,
                    &head.root,
                    &after.root,
                    &store.log_consistency_proof(organization, 100, 101).await.unwrap()
                ));
                assert_eq!(store.log_first_inconsistent_node(organization).await.unwrap(), None);
                store
            }
        };
        let store = check(store, "runs").await;

        // As an earlier version would have kept them: positions 24..48 one row each.
        let database = dir.path().join(DATABASE_FILE_NAME);
        let connection = Connection::open(&database).unwrap();
        connection.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        connection
            .execute_batch(
                "with recursive offsets(n) as (select 0 union all select n + 1 from offsets where n < 23)
                 insert into purged_leaves (organization_seq, log_index, leaf_hash, purged_by)
                     select r.organization_seq, r.first_index + n, substr(r.leaves, n * 32 + 1, 32), r.purged_by
                     from purged_leaf_runs r, offsets where r.first_index = 24;
                 delete from purged_leaf_runs where first_index = 24;",
            )
            .unwrap();
        drop(connection);
        let store = check(store, "earlier rows").await;
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn reopening_keeps_committed_rows_and_migrations_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig::new(dir.path());
        let created = {
            let store = SqliteStore::open(&config).unwrap();
            let created = store
                .create_organization(crate::conformance::new_organization("Reopened"))
                .await
                .unwrap();
            store.close().await.unwrap();
            created
        };
        let store = SqliteStore::open(&config).unwrap();
        assert_eq!(store.get_organization(created.id).await.unwrap(), created);
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_carries_on() {
        let (store, _dir) = open_temp().await;
        let panicked = store
            .writer
            .write(|connection| -> Result<(), StoreError> {
                connection.execute("insert into audit_log_actions (id, name, latest_version, created_at, updated_at) values (x'00', 'half', 1, 0, 0)", [])?;
                panic!("a bug in a write job")
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::Internal(_))), "{panicked:?}");
        store.check_ready().await.unwrap();
        assert_eq!(store.get_schema("half", None).await.unwrap(), None);
        let count: i64 = store
            .read(
                |connection| Ok(connection.query_row("select count(*) from audit_log_actions", [], |row| row.get(0))?),
            )
            .await
            .unwrap();
        assert_eq!(count, 0, "the panicking job's insert was rolled back");
        store
            .create_organization(crate::conformance::new_organization("After"))
            .await
            .unwrap();
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_panicking_read_returns_its_connection_to_the_pool() {
        let (store, _dir) = open_temp().await;
        for _ in 0..8 {
            let panicked = store
                .read(|_| -> Result<(), StoreError> { panic!("a bug in a read") })
                .await;
            assert!(matches!(panicked, Err(StoreError::Internal(_))), "{panicked:?}");
        }
        // More reads than the pool has connections: none was lost.
        for _ in 0..8 {
            store.list_api_keys().await.unwrap();
        }
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_closed_store_refuses_writes_and_reads() {
        let (store, _dir) = open_temp().await;
        store.close().await.unwrap();
        let error = store
            .create_organization(crate::conformance::new_organization("Late"))
            .await;
        assert!(matches!(error, Err(StoreError::Unavailable(_))), "{error:?}");
        assert!(matches!(store.list_api_keys().await, Err(StoreError::Unavailable(_))));
        assert!(store.check_ready().await.is_err());
    }

    fn after(timestamp: Timestamp, seconds: i64) -> Timestamp {
        Timestamp::from_unix_millis(timestamp.unix_millis() + seconds * 1000).unwrap()
    }

    /// Two stores on one database are two processes as far as SQLite is concerned: each has
    /// its own writer, and their claims race through SQLite's lock, not through one thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claims_from_two_processes_on_one_database_never_share_an_export() {
        let (first, dir) = open_temp().await;
        let second = SqliteStore::open(&SqliteConfig::new(dir._dir.path())).unwrap();
        let organization = first
            .create_organization(crate::conformance::new_organization("Shared"))
            .await
            .unwrap()
            .id;
        let filter = vellum_core::export::ExportFilter {
            range_start: Timestamp::MIN,
            range_end: Timestamp::MAX,
            actions: Vec::new(),
            actor_names: Vec::new(),
            actor_ids: Vec::new(),
            target_types: Vec::new(),
        };
        let mut created = Vec::new();
        for _ in 0..30 {
            let export = first
                .create_export(organization, vellum_core::export::ExportFormat::Csv, filter.clone())
                .await
                .unwrap();
            created.push(export.id);
        }
        let stores = [Arc::new(first), Arc::new(second)];
        let now = crate::now();
        let mut tasks = Vec::new();
        for worker in 0..6 {
            let store = Arc::clone(&stores[worker % 2]);
            tasks.push(tokio::spawn(async move {
                let mut claimed = Vec::new();
                while let Some(export) = store
                    .claim_export(&format!("process-{}/{worker}", worker % 2), now, after(now, 60))
                    .await
                    .unwrap()
                {
                    claimed.push(export.id);
                }
                claimed
            }));
        }
        let mut claimed = Vec::new();
        for task in tasks {
            claimed.extend(task.await.unwrap());
        }
        claimed.sort();
        created.sort();
        assert_eq!(claimed, created, "every export claimed exactly once");
        for store in stores {
            store.close().await.unwrap();
        }
    }

    /// A store written before exports had leases (schema version 5) upgrades in place: an export
    /// it left pending keeps its start count and is claimed at once.
    #[tokio::test]
    async fn an_upgraded_store_hands_out_the_exports_it_left_pending() {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig::new(dir.path());
        let export_id = vellum_core::ExportId::from_ulid(ulid::Ulid::from_parts(1_700_000_000_000, 7));
        {
            let mut connection = open_for_migration(&config.database_path()).unwrap();
            assert_eq!(migrations::migrate_up_to(&mut connection, 5).unwrap(), [1, 2, 3, 4, 5]);
            let filter = vellum_core::export::ExportFilter {
                range_start: Timestamp::MIN,
                range_end: Timestamp::MAX,
                actions: vec!["user.signed_in".into()],
                actor_names: Vec::new(),
                actor_ids: Vec::new(),
                target_types: Vec::new(),
            };
            connection
                .execute(
                    "insert into organizations (seq, id, name, metadata, domains, created_at, updated_at)
                     values (1, ?1, 'Before', '{}', '[]', 0, 0)",
                    [ulid::Ulid::from_parts(1_700_000_000_000, 1).to_bytes().as_slice()],
                )
                .unwrap();
            connection
                .execute(
                    "insert into exports (id, organization_seq, format, filter, state, attempts, created_at, updated_at)
                     values (?1, 1, 'csv', ?2, 'pending', 1, 0, 0)",
                    rusqlite::params![export_id.ulid().to_bytes().as_slice(), filter.to_json().to_string()],
                )
                .unwrap();
        }
        let store = SqliteStore::open(&config).unwrap();
        let now = crate::now();
        let claimed = store.claim_export("new", now, after(now, 30)).await.unwrap().unwrap();
        assert_eq!((claimed.id, claimed.attempts), (export_id, 2));
        assert_eq!(claimed.filter.actions, ["user.signed_in"]);
        assert_eq!(store.claim_export("other", now, after(now, 30)).await.unwrap(), None);
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn refuses_a_database_from_a_newer_version() {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig::new(dir.path());
        SqliteStore::open(&config).unwrap().close().await.unwrap();
        let connection = Connection::open(config.database_path()).unwrap();
        connection
            .execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)",
                [],
            )
            .unwrap();
        drop(connection);
        let error = SqliteStore::open(&config).unwrap_err().to_string();
        assert!(error.contains("newer"), "{error}");
    }
}

/// Listings over more than one segment (`events::SEGMENT_BITS`), against a model of the order.
#[cfg(test)]
mod segment_tests {
    use std::cmp::Reverse;

    use vellum_core::event::MetadataValue;
    use vellum_core::pagination::{Cursor, Order};

    use super::*;
    use crate::conformance::{event_at, new_organization};

    const SEGMENT: usize = 1 << events::SEGMENT_BITS;

    /// One stored event as the model sees it.
    struct Modelled {
        id: EventId,
        occurred_at: i64,
        index: usize,
        action: String,
        actor: String,
        target: String,
        note: Option<String>,
    }

    /// Which modelled events a filter keeps.
    type Keep = Box<dyn Fn(&Modelled) -> bool>;

    fn shape(index: usize) -> (i64, String, String, String, Option<String>) {
        let base = 1_700_000_000_000_i64;
        let step = i64::try_from(index).unwrap() * 10;
        // Most events follow arrival; in the second segment every seventh arrived late (its time
        // falls among the first segment's), and every eleventh ties with the event before it.
        let occurred_at = if index >= SEGMENT && index.is_multiple_of(7) {
            base + (step - i64::try_from(SEGMENT).unwrap() * 10) + 5
        } else if index.is_multiple_of(11) && index > 0 {
            base + step - 10
        } else {
            base + step
        };
        let actor = if index % 5_000 == 17 {
            "rare-actor".to_owned()
        } else {
            format!("u{}", index % 50)
        };
        let note = (index % 9_000 == 3).then(|| format!("Needle-{index}"));
        (
            occurred_at,
            format!("a{}", index % 3),
            actor,
            format!("t{}", index % 13),
            note,
        )
    }

    async fn all_pages(
        store: &SqliteStore,
        organization: OrganizationId,
        filter: &EventFilter,
        order: Order,
    ) -> Vec<EventId> {
        let mut ids = Vec::new();
        let mut request = PageRequest {
            limit: 100,
            order,
            cursor: None,
        };
        loop {
            let page = store
                .list_events(organization, filter.clone(), request.clone())
                .await
                .unwrap();
            ids.extend(page.data.iter().map(|event| event.id));
            let Some(after) = page.list_metadata.after else { break };
            request.cursor = Some(Cursor::After(after));
        }
        ids
    }

    fn expected(model: &[Modelled], keep: impl Fn(&Modelled) -> bool, ascending: bool) -> Vec<EventId> {
        let mut rows: Vec<&Modelled> = model.iter().filter(|event| keep(event)).collect();
        rows.sort_by_key(|event| (event.occurred_at, event.index));
        if !ascending {
            rows.reverse();
        }
        rows.iter().map(|event| event.id).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listings_across_segments_match_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&SqliteConfig::new(dir.path())).unwrap();
        let organization = store
            .create_organization(new_organization("Segments"))
            .await
            .unwrap()
            .id;
        let total = SEGMENT + 3_000;
        let mut model = Vec::with_capacity(total);
        for start in (0..total).step_by(1_000) {
            let batch: Vec<NewEvent> = (start..(start + 1_000).min(total))
                .map(|index| {
                    let (occurred_at, action, actor, target, note) = shape(index);
                    let mut event = event_at(occurred_at, &action, &actor, &[("team", &target)]);
                    if let Some(note) = &note {
                        event.input.metadata = Some([("note".to_owned(), MetadataValue::String(note.clone()))].into());
                    }
                    event
                })
                .collect();
            let AppendOutcome::Appended(stored) = store.append_events(organization, batch, None).await.unwrap() else {
                panic!("not appended");
            };
            for (offset, event) in stored.into_iter().enumerate() {
                let index = start + offset;
                let (occurred_at, action, actor, target, note) = shape(index);
                model.push(Modelled {
                    id: event.id,
                    occurred_at,
                    index,
                    action,
                    actor,
                    target,
                    note,
                });
            }
        }

        let cases: Vec<(EventFilter, Keep)> = vec![
            (EventFilter::default(), Box::new(|_| true)),
            (
                EventFilter {
                    actions: vec!["a1".into()],
                    ..EventFilter::default()
                },
                Box::new(|event| event.action == "a1"),
            ),
            (
                EventFilter {
                    actor_ids: vec!["rare-actor".into()],
                    ..EventFilter::default()
                },
                Box::new(|event| event.actor == "rare-actor"),
            ),
            (
                EventFilter {
                    actor_names: vec!["Name of u7".into()],
                    ..EventFilter::default()
                },
                Box::new(|event| event.actor == "u7"),
            ),
            (
                EventFilter {
                    target_ids: vec!["t3".into()],
                    ..EventFilter::default()
                },
                Box::new(|event| event.target == "t3"),
            ),
            (
                EventFilter {
                    target_types: vec!["team".into()],
                    actions: vec!["a2".into()],
                    ..EventFilter::default()
                },
                Box::new(|event| event.action == "a2"),
            ),
            (
                EventFilter {
                    range_start: Timestamp::from_unix_millis(1_700_000_000_000 + 300_000),
                    range_end: Timestamp::from_unix_millis(1_700_000_000_000 + 330_000),
                    ..EventFilter::default()
                },
                Box::new(|event| {
                    (1_700_000_000_000 + 300_000..1_700_000_000_000 + 330_000).contains(&event.occurred_at)
                }),
            ),
        ];
        for (filter, keep) in &cases {
            for (order, ascending) in [(Order::Desc, false), (Order::Asc, true)] {
                let listed = all_pages(&store, organization, filter, order).await;
                assert!(listed == expected(&model, keep, ascending), "{filter:?} {order:?}");
            }
            let bounds = store.event_bounds(organization, filter.clone()).await.unwrap();
            let kept: Vec<u64> = model
                .iter()
                .filter(|event| keep(event))
                .map(|event| u64::try_from(event.index).unwrap())
                .collect();
            assert_eq!(bounds.events, u64::try_from(kept.len()).unwrap(), "{filter:?}");
            let span = kept
                .iter()
                .min()
                .zip(kept.iter().max())
                .map(|(first, last)| (*first, last + 1));
            assert_eq!(bounds.log_range, span, "{filter:?}");
            assert_eq!(bounds.max_targets, u64::from(!kept.is_empty()), "{filter:?}");
        }

        // A page backwards from the middle, across the segment boundary.
        let newest_first = expected(&model, |_| true, false);
        let middle = newest_first[SEGMENT];
        let page = store
            .list_events(
                organization,
                EventFilter::default(),
                PageRequest {
                    limit: 100,
                    order: Order::Desc,
                    cursor: Some(Cursor::Before(middle)),
                },
            )
            .await
            .unwrap();
        let ids: Vec<EventId> = page.data.iter().map(|event| event.id).collect();
        assert_eq!(ids, newest_first[SEGMENT - 100..SEGMENT]);

        // Search: exact whether or not the index has caught up, and through it once it has.
        let needles = expected(&model, |event| event.note.is_some(), false);
        assert!(needles.len() >= 4);
        let search = EventFilter {
            search: Some("needle-".into()),
            ..EventFilter::default()
        };
        assert_eq!(all_pages(&store, organization, &search, Order::Desc).await, needles);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while store.search_index_lag().await.unwrap() > 0 {
            assert!(std::time::Instant::now() < deadline, "the search index never caught up");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(all_pages(&store, organization, &search, Order::Desc).await, needles);
        let one = EventFilter {
            search: Some(format!(
                "NEEDLE-{}",
                model[model.len() - 1 - (model.len() - 1) % 9_000 + 3].index
            )),
            ..EventFilter::default()
        };
        assert_eq!(all_pages(&store, organization, &one, Order::Desc).await.len(), 1);
        // A term too short for the index, and one too common for it, are scanned for.
        // Terms the index cannot look up (a NUL, FTS5 syntax) are answered, not refused.
        for odd in ["\0a0", "a\0bcd\0", "\"\"\"", "*:^"] {
            let filter = EventFilter {
                search: Some(odd.into()),
                ..EventFilter::default()
            };
            store
                .list_events(organization, filter, PageRequest::default())
                .await
                .unwrap_or_else(|error| panic!("{odd:?}: {error}"));
        }
        let short = EventFilter {
            search: Some("e-".into()),
            ..EventFilter::default()
        };
        assert_eq!(
            all_pages(&store, organization, &short, Order::Desc).await,
            expected(
                &model,
                |event| event.note.is_some() || event.actor == "rare-actor",
                false
            )
        );
        let common = EventFilter {
            search: Some("OF U1".into()),
            ..EventFilter::default()
        };
        let common_expected = expected(&model, |event| event.actor.starts_with("u1"), false);
        assert!(common_expected.len() > 4_096);
        assert_eq!(
            all_pages(&store, organization, &common, Order::Desc).await,
            common_expected
        );
        let counted = store.event_bounds(organization, search).await.unwrap();
        assert_eq!(counted.events, u64::try_from(needles.len()).unwrap());
        // Newest first by time, not by arrival, among the candidates too.
        let mut by_time: Vec<&Modelled> = model.iter().filter(|event| event.note.is_some()).collect();
        by_time.sort_by_key(|event| Reverse((event.occurred_at, event.index)));
        assert_eq!(by_time.iter().map(|event| event.id).collect::<Vec<_>>(), needles);
        store.close().await.unwrap();
    }
}
