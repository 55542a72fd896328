//! The PostgreSQL backend: every store capability over one database that any number of
//! `vellum serve` nodes share.
//!
//! - `migrations.rs`: versioned SQL (`migrations/postgres/*.sql`), applied under an advisory lock
//!   so that nodes starting together migrate once.
//! - `partitions.rs`: the monthly partitions of events, created ahead.
//! - `append.rs`: appends. Each node batches the concurrent appends of one organization into one
//!   transaction (group commit); positions are taken under the organization's `log_heads` row
//!   lock, so each log stays one gap-free sequence across nodes.
//! - `events.rs`: listings, counts and reads of events.
//! - `log.rs`: `LogStorage` in SQL; checkpoints are signed under a lock on the log's
//!   checkpoint row, one node at a time.
//! - `organizations.rs`, `access.rs`, `schemas.rs`, `exports.rs`: the other capabilities.
//!   Export claims use `FOR UPDATE SKIP LOCKED`.
//!
//! See `docs/scaling.md` for the deployment picture and the throughput bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;

use crate::StoreError;
use crate::ids::IdGenerator;

mod access;
mod append;
mod copy;
mod events;
mod exports;
mod log;
mod migrations;
mod organizations;
mod partitions;
mod portal;
mod retention;
mod schemas;
mod streams;
#[cfg(any(test, feature = "conformance"))]
pub mod testing;
mod tls;

pub use copy::{CopiedLog, CopyProgress, CopySummary};
pub use migrations::LATEST_SCHEMA_VERSION;

/// How to reach the database.
#[derive(Clone)]
pub struct PostgresConfig {
    /// A libpq-style URL (`postgres://user:password@host:port/database?sslmode=require`).
    pub url: String,
    /// The most connections this node opens.
    pub max_connections: usize,
    /// Extra certificate authorities (PEM) to trust for TLS, besides the system's.
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PostgresConfig")
            .field("url", &"<redacted>")
            .field("max_connections", &self.max_connections)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl PostgresConfig {
    /// A configuration with default pool settings.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            ca_file: None,
        }
    }
}

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    ids: Arc<IdGenerator>,
    appender: Arc<append::Appender>,
    closed: Arc<AtomicBool>,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        let io = std::error::Error::source(&error).is_some_and(|source| source.is::<std::io::Error>());
        if error.is_closed() || io {
            return StoreError::Unavailable(format!("the database is unreachable: {error}"));
        }
        if let Some(code) = error.code()
            && (code == &SqlState::ADMIN_SHUTDOWN
                || code == &SqlState::CANNOT_CONNECT_NOW
                || code == &SqlState::TOO_MANY_CONNECTIONS
                || code == &SqlState::T_R_SERIALIZATION_FAILURE
                || code == &SqlState::T_R_DEADLOCK_DETECTED)
        {
            return StoreError::Unavailable(format!("the database cannot serve now: {error}"));
        }
        // PostgreSQL text cannot hold NUL (nothing stored contains one): a value with one is a
        // bad parameter, never a server fault.
        if error.code() == Some(&SqlState::CHARACTER_NOT_IN_REPERTOIRE)
            || error.code() == Some(&SqlState::UNTRANSLATABLE_CHARACTER)
        {
            return StoreError::InvalidInput {
                field: "text",
                message: "text containing a NUL character cannot match anything stored".into(),
            };
        }
        StoreError::Internal(match error.as_db_error() {
            Some(db) => format!("database error {}: {}", db.code().code(), db.message()),
            None => format!("database error: {error}"),
        })
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        StoreError::Unavailable(format!("no database connection: {error}"))
    }
}

/// Whether an error is a unique-constraint violation (of the named constraint, if given).
pub(super) fn is_unique_violation(error: &tokio_postgres::Error, constraint: Option<&str>) -> bool {
    error.as_db_error().is_some_and(|db| {
        db.code() == &SqlState::UNIQUE_VIOLATION && constraint.is_none_or(|name| db.constraint() == Some(name))
    })
}

/// The 16 bytes of a ULID-based id, as stored.
pub(super) fn id_bytes(ulid: ulid::Ulid) -> Vec<u8> {
    ulid.to_bytes().to_vec()
}

/// A stored id back into a ULID.
pub(super) fn ulid_from(bytes: &[u8]) -> Result<ulid::Ulid, StoreError> {
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::Internal(format!("stored id has {} bytes, not 16", bytes.len())))?;
    Ok(ulid::Ulid::from_bytes(bytes))
}

/// A stored time back into a timestamp.
pub(super) fn timestamp(millis: i64, what: &str) -> Result<vellum_core::Timestamp, StoreError> {
    vellum_core::Timestamp::from_unix_millis(millis)
        .ok_or_else(|| StoreError::Internal(format!("stored {what} is out of range")))
}

impl PostgresStore {
    /// Connects, migrates the database (once, whichever node gets there first) and creates the
    /// partitions ahead.
    pub async fn open(config: &PostgresConfig) -> Result<Self, StoreError> {
        let pool = build_pool(config)?;
        {
            let mut client = pool
                .get()
                .await
                .map_err(|error| StoreError::Unavailable(format!("cannot connect to the database: {error}")))?;
            migrations::migrate(&mut client).await?;
        }
        let partitions = Arc::new(partitions::Partitions::default());
        partitions.ensure(&pool, crate::now()).await?;
        let ids = Arc::new(IdGenerator::default());
        Ok(Self {
            appender: Arc::new(append::Appender::new(pool.clone(), partitions)),
            pool,
            ids,
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A connection, unless the store is closed.
    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        Ok(self.pool.get().await?)
    }

    /// Returns the secret stored under `name`, storing `candidate` first if there is none: the
    /// first node to ask decides, and every node gets the same bytes.
    pub async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "insert into shared_secrets (name, secret, created_at) values ($1, $2, $3)
                 on conflict (name) do nothing",
                &[&name, &candidate, &crate::now().unix_millis()],
            )
            .await?;
        let row = client
            .query_one("select secret from shared_secrets where name = $1", &[&name])
            .await?;
        Ok(row.get(0))
    }

    /// The secret stored under `name`, if any.
    pub async fn existing_shared_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .query_opt("select secret from shared_secrets where name = $1", &[&name])
            .await?
            .map(|row| row.get(0)))
    }
}

/// Applies the database's missing migrations (as opening the store does) and returns their
/// versions.
pub async fn migrate_database(config: &PostgresConfig) -> Result<Vec<i64>, StoreError> {
    let pool = build_pool(config)?;
    let mut client = pool
        .get()
        .await
        .map_err(|error| StoreError::Unavailable(format!("cannot connect to the database: {error}")))?;
    let applied = migrations::migrate(&mut client).await?;
    drop(client);
    pool.close();
    Ok(applied)
}

fn build_pool(config: &PostgresConfig) -> Result<Pool, StoreError> {
    let pg_config: tokio_postgres::Config = config.url.parse().map_err(|error| StoreError::InvalidInput {
        field: "database_url",
        message: format!("not a PostgreSQL URL: {error}"),
    })?;
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match pg_config.get_ssl_mode() {
        tokio_postgres::config::SslMode::Disable => {
            Manager::from_config(pg_config, tokio_postgres::NoTls, manager_config)
        }
        _ => Manager::from_config(pg_config, tls::connector(config.ca_file.as_deref())?, manager_config),
    };
    Pool::builder(manager)
        .max_size(config.max_connections.max(2))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .create_timeout(Some(std::time::Duration::from_secs(10)))
        .wait_timeout(Some(std::time::Duration::from_secs(30)))
        .build()
        .map_err(|error| StoreError::Internal(format!("cannot build the connection pool: {error}")))
}

#[async_trait]
impl crate::Store for PostgresStore {
    async fn check_ready(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.query_one("select count(*) from vellum_migrations", &[]).await?;
        Ok(())
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        self.appender.close().await;
        self.pool.close();
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// The parameters of a query built at run time: `push` returns the placeholder to write.
#[derive(Default)]
pub(super) struct Params(Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>);

impl Params {
    /// Adds a value and returns its placeholder (`$1`, `$2`, …).
    pub(super) fn push(&mut self, value: impl tokio_postgres::types::ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    /// ` and {column} > $n` (or `<`) for a page's bound on an id column (a ULID's bytes).
    pub(super) fn push_id_bound<K>(
        &mut self,
        sql: &mut String,
        column: &str,
        bound: Option<&vellum_core::pagination::KeyBound<K>>,
        bytes: impl Fn(&K) -> ulid::Ulid,
    ) {
        use vellum_core::pagination::KeyBound;
        match bound {
            None => {}
            Some(KeyBound::Above(key)) => sql.push_str(&format!(" and {column} > {}", self.push(id_bytes(bytes(key))))),
            Some(KeyBound::Below(key)) => sql.push_str(&format!(" and {column} < {}", self.push(id_bytes(bytes(key))))),
        }
    }

    /// ` order by {column} asc|desc limit $n`: the end of a page by id.
    pub(super) fn push_id_order(&mut self, sql: &mut String, column: &str, ascending: bool, fetch: u32) {
        let direction = if ascending { "asc" } else { "desc" };
        sql.push_str(&format!(
            " order by {column} {direction} limit {}",
            self.push(i64::from(fetch))
        ));
    }

    /// The values, as the driver takes them.
    pub(super) fn refs(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        self.0
            .iter()
            .map(|value| value.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect()
    }
}
