//! Versioned schema migrations for the embedded store.
//!
//! Each migration is a SQL file under `migrations/sqlite/`, applied once, in order, inside one
//! transaction, and recorded in `schema_migrations`. A database that records a version this
//! binary does not know was written by a newer Vellum and is refused rather than guessed at.
//! (A 40-line runner, instead of a migrations crate, keeps the dependency tree small; the
//! PostgreSQL backend will use the same table shape.)

use rusqlite::Connection;

use crate::StoreError;

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "organizations_and_api_keys",
        sql: include_str!("../../migrations/sqlite/0001_organizations_and_api_keys.sql"),
    },
    Migration {
        version: 2,
        name: "schemas_and_events",
        sql: include_str!("../../migrations/sqlite/0002_schemas_and_events.sql"),
    },
    Migration {
        version: 3,
        name: "exports",
        sql: include_str!("../../migrations/sqlite/0003_exports.sql"),
    },
    Migration {
        version: 4,
        name: "operators",
        sql: include_str!("../../migrations/sqlite/0004_operators.sql"),
    },
    Migration {
        version: 5,
        name: "audit_trail",
        sql: include_str!("../../migrations/sqlite/0005_audit_trail.sql"),
    },
    Migration {
        version: 6,
        name: "idempotency_event_ids",
        sql: include_str!("../../migrations/sqlite/0006_idempotency_event_ids.sql"),
    },
    Migration {
        version: 7,
        name: "export_leases",
        sql: include_str!("../../migrations/sqlite/0007_export_leases.sql"),
    },
    Migration {
        version: 8,
        name: "segments",
        sql: include_str!("../../migrations/sqlite/0008_segments.sql"),
    },
    Migration {
        version: 9,
        name: "sign_in_failures",
        sql: include_str!("../../migrations/sqlite/0009_sign_in_failures.sql"),
    },
    Migration {
        version: 10,
        name: "retention",
        sql: include_str!("../../migrations/sqlite/0010_retention.sql"),
    },
    Migration {
        version: 11,
        name: "log_streams",
        sql: include_str!("../../migrations/sqlite/0011_log_streams.sql"),
    },
    Migration {
        version: 12,
        name: "portal",
        sql: include_str!("../../migrations/sqlite/0012_portal.sql"),
    },
    Migration {
        version: 13,
        name: "purged_leaf_runs",
        sql: include_str!("../../migrations/sqlite/0013_purged_leaf_runs.sql"),
    },
];

/// The schema version this binary writes.
pub const LATEST_SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Applies every migration the database has not seen. Returns the versions applied.
pub fn migrate(connection: &mut Connection) -> Result<Vec<i64>, StoreError> {
    migrate_up_to(connection, LATEST_SCHEMA_VERSION)
}

/// Applies the migrations the database has not seen, up to and including `target` (tests build
/// databases of earlier versions with it, to check that upgrades keep their rows).
pub(super) fn migrate_up_to(connection: &mut Connection, target: i64) -> Result<Vec<i64>, StoreError> {
    let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    transaction.execute_batch(
        "create table if not exists schema_migrations (
             version integer primary key not null,
             name text not null,
             applied_at integer not null
         ) strict",
    )?;
    let current: i64 = transaction.query_row("select coalesce(max(version), 0) from schema_migrations", [], |row| {
        row.get(0)
    })?;
    if current > LATEST_SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "the database is at schema version {current}, newer than this binary's {LATEST_SCHEMA_VERSION}; \
             run a newer vellum"
        )));
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS
        .iter()
        .filter(|migration| migration.version > current && migration.version <= target)
    {
        transaction.execute_batch(migration.sql).map_err(|error| {
            StoreError::Internal(format!(
                "migration {} ({}) failed: {error}",
                migration.version, migration.name
            ))
        })?;
        transaction.execute(
            "insert into schema_migrations (version, name, applied_at) values (?1, ?2, ?3)",
            rusqlite::params![migration.version, migration.name, crate::now().unix_millis()],
        )?;
        applied.push(migration.version);
    }
    transaction.commit()?;
    for version in &applied {
        tracing::info!(version, "applied schema migration");
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_strictly() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        assert_eq!(MIGRATIONS[0].version, 1);
    }

    #[test]
    fn applies_once() {
        let mut connection = Connection::open_in_memory().unwrap();
        assert_eq!(
            migrate(&mut connection).unwrap(),
            [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
        );
        assert!(migrate(&mut connection).unwrap().is_empty());
    }
}
