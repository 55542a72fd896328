//! Versioned migrations of the PostgreSQL store (`migrations/postgres/NNNN_name.sql`), each applied
//! once, in order, in its own transaction, under an advisory lock: nodes that start together
//! wait for the first one's migrations rather than race it.

use crate::StoreError;

/// The migrations, in order; a migration's version is its position plus one.
const MIGRATIONS: &[(&str, &str)] = &[
    ("initial", include_str!("../../migrations/postgres/0001_initial.sql")),
    (
        "sign_in_failures",
        include_str!("../../migrations/postgres/0002_sign_in_failures.sql"),
    ),
    (
        "retention",
        include_str!("../../migrations/postgres/0003_retention.sql"),
    ),
    (
        "log_streams",
        include_str!("../../migrations/postgres/0004_log_streams.sql"),
    ),
    ("portal", include_str!("../../migrations/postgres/0005_portal.sql")),
];

/// The schema version this build writes.
pub const LATEST_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock key held while migrating ("vellum" in ASCII).
const MIGRATION_LOCK: i64 = 0x76_65_6c_6c_75_6d;

/// Applies the missing migrations; returns their versions.
pub(super) async fn migrate(client: &mut tokio_postgres::Client) -> Result<Vec<i64>, StoreError> {
    let transaction = client.transaction().await?;
    transaction
        .execute("select pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    transaction
        .batch_execute(
            "create table if not exists vellum_migrations (
                 version bigint primary key,
                 name text not null,
                 applied_at bigint not null
             )",
        )
        .await?;
    let current: i64 = transaction
        .query_one("select coalesce(max(version), 0) from vellum_migrations", &[])
        .await?
        .get(0);
    if current > LATEST_SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "the database is at schema version {current}, newer than this build of vellum knows \
             ({LATEST_SCHEMA_VERSION}); run a newer vellum"
        )));
    }
    let mut applied = Vec::new();
    for (version, (name, sql)) in (1_i64..).zip(MIGRATIONS) {
        if version <= current {
            continue;
        }
        transaction.batch_execute(sql).await?;
        transaction
            .execute(
                "insert into vellum_migrations (version, name, applied_at) values ($1, $2, $3)",
                &[&version, name, &crate::now().unix_millis()],
            )
            .await?;
        tracing::info!(version, name, "database migrated");
        applied.push(version);
    }
    transaction.commit().await?;
    Ok(applied)
}
