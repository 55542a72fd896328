//! Monthly partitions of the event tables (`events`, `event_targets`, `audit_trail_events`),
//! by time of receipt: inserts go to the current month's small indexes whatever the store's
//! size, and retention can drop a month whole. Partitions are created ahead: the current month
//! and the next two, at start and whenever an append sees the horizon come within a month.

use std::sync::atomic::{AtomicI64, Ordering};

use time::{Date, Month, OffsetDateTime};
use vellum_core::Timestamp;

use crate::StoreError;

const TABLES: [&str; 3] = ["events", "event_targets", "audit_trail_events"];
const MONTHS_AHEAD: u32 = 2;
const DAY_MILLIS: i64 = 24 * 60 * 60 * 1000;
/// The advisory lock key held while creating partitions.
const PARTITION_LOCK: i64 = 0x76_65_6c_6c_75_6d + 1;

/// The end of the partitions known to exist (Unix milliseconds).
#[derive(Debug, Default)]
pub(super) struct Partitions {
    horizon: AtomicI64,
}

fn month_start(year: i32, month: Month) -> i64 {
    let date = Date::from_calendar_date(year, month, 1).expect("the first of a month exists");
    let start = date.midnight().assume_utc();
    i64::try_from(start.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn next_month(year: i32, month: Month) -> (i32, Month) {
    match month {
        Month::December => (year + 1, Month::January),
        other => (year, other.next()),
    }
}

impl Partitions {
    /// Whether partitions must be created before `now` gets close to their end.
    pub(super) fn due(&self, now: Timestamp) -> bool {
        now.unix_millis() + 31 * DAY_MILLIS >= self.horizon.load(Ordering::Acquire)
    }

    /// Creates the current month's partitions and the next ones, if missing.
    pub(super) async fn ensure(&self, pool: &deadpool_postgres::Pool, now: Timestamp) -> Result<(), StoreError> {
        if !self.due(now) {
            return Ok(());
        }
        let end = create_months(pool, now, now, MONTHS_AHEAD).await?;
        self.horizon.fetch_max(end, Ordering::AcqRel);
        Ok(())
    }
}

fn utc(at: Timestamp) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.unix_millis()) * 1_000_000)
        .map_err(|error| StoreError::Internal(format!("time out of range: {error}")))
}

/// Creates the monthly partitions, where missing, of every month from `first`'s through
/// `last`'s and `ahead` months more; returns the end of the last (Unix milliseconds). A month's
/// partition cannot be created once its default partition holds rows of that month, so this
/// runs before rows of those months arrive (at start, and before `vellum copy` loads events).
pub(super) async fn create_months(
    pool: &deadpool_postgres::Pool,
    first: Timestamp,
    last: Timestamp,
    ahead: u32,
) -> Result<i64, StoreError> {
    let (first, last) = (utc(first.min(last))?, utc(first.max(last))?);
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    transaction
        .execute("select pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .await?;
    let (mut year, mut month) = (first.year(), first.month());
    let (mut last_year, mut last_month) = (last.year(), last.month());
    for _ in 0..ahead {
        (last_year, last_month) = next_month(last_year, last_month);
    }
    let mut end;
    loop {
        let start = month_start(year, month);
        let (next_year, next) = next_month(year, month);
        end = month_start(next_year, next);
        for table in TABLES {
            transaction
                .batch_execute(&format!(
                    "create table if not exists {table}_p{year:04}{:02} partition of {table} \
                     for values from ({start}) to ({end})",
                    u8::from(month)
                ))
                .await?;
        }
        if (year, month) == (last_year, last_month) {
            break;
        }
        (year, month) = (next_year, next);
    }
    transaction.commit().await?;
    Ok(end)
}
