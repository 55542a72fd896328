//! API keys (under the SHA-256 of their secrets), operators and their sessions.

use async_trait::async_trait;
use tokio_postgres::Row;
use vellum_core::operator::{Email, Operator, OperatorSession, PasswordHash, SessionTokenHash};
use vellum_core::sign_in_throttle::{self, FailureRecord, RetryAfterSeconds, Step, ThrottleKey};
use vellum_core::{ApiKey, ApiKeyHash, ApiKeyId, ApiKeySecret, OperatorId, Timestamp};

use super::{PostgresStore, id_bytes, is_unique_violation, timestamp, ulid_from};
use crate::{AccessStore, EnsuredApiKey, StoreError};

const KEY_COLUMNS: &str = "id, name, secret_hash, redacted_secret, created_at, revoked_at";
const OPERATOR_COLUMNS: &str = "id, email, password_hash, created_at";

fn read_key(row: &Row) -> Result<ApiKey, StoreError> {
    let corrupt = || StoreError::Internal("stored API key is invalid".into());
    let id: Vec<u8> = row.try_get(0)?;
    let hash: Vec<u8> = row.try_get(2)?;
    let revoked_at: Option<i64> = row.try_get(5)?;
    Ok(ApiKey {
        id: ApiKeyId::from_ulid(ulid_from(&id)?),
        name: row.try_get(1)?,
        secret_hash: ApiKeyHash(hash.as_slice().try_into().map_err(|_| corrupt())?),
        redacted_secret: row.try_get(3)?,
        created_at: timestamp(row.try_get(4)?, "created_at")?,
        revoked_at: revoked_at.map(|millis| timestamp(millis, "revoked_at")).transpose()?,
    })
}

fn read_operator(row: &Row) -> Result<Operator, StoreError> {
    let corrupt = || StoreError::Internal("stored operator is invalid".into());
    let id: Vec<u8> = row.try_get(0)?;
    let email: String = row.try_get(1)?;
    Ok(Operator {
        id: OperatorId::from_ulid(ulid_from(&id)?),
        email: Email::parse(&email).map_err(|_| corrupt())?,
        password_hash: PasswordHash::from_stored(row.try_get(2)?),
        created_at: timestamp(row.try_get(3)?, "created_at")?,
    })
}

impl PostgresStore {
    async fn insert_api_key(&self, name: String, secret: &ApiKeySecret) -> Result<ApiKey, StoreError> {
        let key = ApiKey {
            id: ApiKeyId::from_ulid(self.ids.next()),
            name,
            secret_hash: secret.hash(),
            redacted_secret: secret.redacted(),
            created_at: crate::now(),
            revoked_at: None,
        };
        let client = self.client().await?;
        client
            .execute(
                &format!("insert into api_keys ({KEY_COLUMNS}) values ($1, $2, $3, $4, $5, null)"),
                &[
                    &id_bytes(key.id.ulid()),
                    &key.name,
                    &key.secret_hash.0.as_slice(),
                    &key.redacted_secret,
                    &key.created_at.unix_millis(),
                ],
            )
            .await
            .map_err(|error| {
                if is_unique_violation(&error, None) {
                    StoreError::Conflict("an API key with this secret already exists".into())
                } else {
                    StoreError::from(error)
                }
            })?;
        Ok(key)
    }
}

#[async_trait]
impl AccessStore for PostgresStore {
    async fn create_api_key(&self, name: String, secret: ApiKeySecret) -> Result<ApiKey, StoreError> {
        self.insert_api_key(name, &secret).await
    }

    async fn ensure_api_key(&self, name: String, secret: ApiKeySecret) -> Result<EnsuredApiKey, StoreError> {
        loop {
            match self.find_api_key(secret.hash()).await? {
                Some(key) if key.is_active() => return Ok(EnsuredApiKey { key, created: false }),
                // A revoked key stays revoked: a leaked bootstrap key must not come back at restart.
                Some(key) => {
                    return Err(StoreError::Conflict(format!(
                        "the API key {} with this secret was revoked; choose a new secret",
                        key.id
                    )));
                }
                None => match self.insert_api_key(name.clone(), &secret).await {
                    Ok(key) => return Ok(EnsuredApiKey { key, created: true }),
                    // Another node stored it first: look again.
                    Err(StoreError::Conflict(_)) => continue,
                    Err(other) => return Err(other),
                },
            }
        }
    }

    async fn find_api_key(&self, hash: ApiKeyHash) -> Result<Option<ApiKey>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("select {KEY_COLUMNS} from api_keys where secret_hash = $1"),
                &[&hash.0.as_slice()],
            )
            .await?
            .map(|row| read_key(&row))
            .transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let client = self.client().await?;
        client
            .query(&format!("select {KEY_COLUMNS} from api_keys order by id"), &[])
            .await?
            .iter()
            .map(read_key)
            .collect()
    }

    async fn revoke_api_key(&self, id: ApiKeyId) -> Result<ApiKey, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "update api_keys set revoked_at = $2 where id = $1 and revoked_at is null",
                &[&id_bytes(id.ulid()), &crate::now().unix_millis()],
            )
            .await?;
        client
            .query_opt(
                &format!("select {KEY_COLUMNS} from api_keys where id = $1"),
                &[&id_bytes(id.ulid())],
            )
            .await?
            .map(|row| read_key(&row))
            .transpose()?
            .ok_or_else(|| StoreError::not_found("API key", id))
    }

    async fn create_operator(&self, email: Email, password_hash: PasswordHash) -> Result<Operator, StoreError> {
        let operator = Operator {
            id: OperatorId::from_ulid(self.ids.next()),
            email,
            password_hash,
            created_at: crate::now(),
        };
        let client = self.client().await?;
        client
            .execute(
                "insert into operators (id, email, password_hash, created_at, updated_at) values ($1, $2, $3, $4, $4)",
                &[
                    &id_bytes(operator.id.ulid()),
                    &operator.email.as_str(),
                    &operator.password_hash.as_str(),
                    &operator.created_at.unix_millis(),
                ],
            )
            .await
            .map_err(|error| {
                if is_unique_violation(&error, None) {
                    StoreError::Conflict(format!("an operator with the email {} already exists", operator.email))
                } else {
                    StoreError::from(error)
                }
            })?;
        Ok(operator)
    }

    async fn find_operator(&self, email: Email) -> Result<Option<Operator>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("select {OPERATOR_COLUMNS} from operators where email = $1"),
                &[&email.as_str()],
            )
            .await?
            .map(|row| read_operator(&row))
            .transpose()
    }

    async fn list_operators(&self) -> Result<Vec<Operator>, StoreError> {
        let client = self.client().await?;
        client
            .query(&format!("select {OPERATOR_COLUMNS} from operators order by id"), &[])
            .await?
            .iter()
            .map(read_operator)
            .collect()
    }

    async fn set_operator_password(&self, id: OperatorId, password_hash: PasswordHash) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let changed = transaction
            .execute(
                "update operators set password_hash = $2, updated_at = $3 where id = $1",
                &[
                    &id_bytes(id.ulid()),
                    &password_hash.as_str(),
                    &crate::now().unix_millis(),
                ],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::not_found("operator", id));
        }
        transaction
            .execute(
                "delete from operator_sessions where operator_id = $1",
                &[&id_bytes(id.ulid())],
            )
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn create_operator_session(
        &self,
        operator_id: OperatorId,
        token_hash: SessionTokenHash,
        expires_at: Timestamp,
    ) -> Result<OperatorSession, StoreError> {
        let now = crate::now();
        let client = self.client().await?;
        client
            .execute(
                "delete from operator_sessions where expires_at <= $1",
                &[&now.unix_millis()],
            )
            .await?;
        let inserted = client
            .execute(
                "insert into operator_sessions (token_hash, operator_id, created_at, expires_at)
                 select $1, id, $3, $4 from operators where id = $2",
                &[
                    &token_hash.0.as_slice(),
                    &id_bytes(operator_id.ulid()),
                    &now.unix_millis(),
                    &expires_at.unix_millis(),
                ],
            )
            .await
            .map_err(|error| {
                if is_unique_violation(&error, None) {
                    StoreError::Conflict("a session with this token already exists".into())
                } else {
                    StoreError::from(error)
                }
            })?;
        if inserted == 0 {
            return Err(StoreError::not_found("operator", operator_id));
        }
        drop(client);
        self.find_operator_session(token_hash, now)
            .await?
            .ok_or_else(|| StoreError::Internal("the new session vanished".into()))
    }

    async fn find_operator_session(
        &self,
        token_hash: SessionTokenHash,
        now: Timestamp,
    ) -> Result<Option<OperatorSession>, StoreError> {
        let client = self.client().await?;
        let Some(row) = client
            .query_opt(
                "select s.operator_id, o.email, s.created_at, s.expires_at
                 from operator_sessions s join operators o on o.id = s.operator_id
                 where s.token_hash = $1 and s.expires_at > $2",
                &[&token_hash.0.as_slice(), &now.unix_millis()],
            )
            .await?
        else {
            return Ok(None);
        };
        let corrupt = || StoreError::Internal("stored operator is invalid".into());
        let operator_id: Vec<u8> = row.try_get(0)?;
        let email: String = row.try_get(1)?;
        Ok(Some(OperatorSession {
            token_hash,
            operator_id: OperatorId::from_ulid(ulid_from(&operator_id)?),
            email: Email::parse(&email).map_err(|_| corrupt())?,
            created_at: timestamp(row.try_get(2)?, "created_at")?,
            expires_at: timestamp(row.try_get(3)?, "expires_at")?,
        }))
    }

    async fn delete_operator_session(&self, token_hash: SessionTokenHash) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "delete from operator_sessions where token_hash = $1",
                &[&token_hash.0.as_slice()],
            )
            .await?;
        Ok(())
    }

    async fn sign_in_throttle(
        &self,
        keys: Vec<ThrottleKey>,
        step: Step,
        now: Timestamp,
    ) -> Result<Result<(), RetryAfterSeconds>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        if step == Step::Begin {
            let statement = transaction.prepare_cached(sign_in_sql::DELETE_STALE).await?;
            transaction
                .execute(&statement, &[&stale_before(now), &now.unix_millis()])
                .await?;
        }
        // Rows are locked in digest order (so that two attempts sharing keys cannot deadlock),
        // and created first when missing (a lock needs a row): an empty record means none.
        let mut order: Vec<(usize, [u8; 16])> = keys.iter().map(ThrottleKey::digest).enumerate().collect();
        order.sort_by_key(|(_, digest)| *digest);
        order.dedup_by_key(|(_, digest)| *digest);
        let placeholder = transaction.prepare_cached(sign_in_sql::INSERT_EMPTY).await?;
        let lock = transaction.prepare_cached(sign_in_sql::SELECT_FOR_UPDATE).await?;
        let mut records = vec![None; keys.len()];
        let mut created = 0;
        for (position, digest) in &order {
            created += transaction
                .execute(&placeholder, &[&digest.as_slice(), &now.unix_millis()])
                .await?;
            let row = transaction.query_one(&lock, &[&digest.as_slice()]).await?;
            let record = failure_record(&row)?;
            records[*position] = (!is_empty(&record)).then_some(record);
        }
        let verdict = sign_in_throttle::apply(step, &keys, &mut records, now);
        let upsert = transaction.prepare_cached(sign_in_sql::UPDATE).await?;
        let delete = transaction.prepare_cached(sign_in_sql::DELETE).await?;
        for (position, digest) in &order {
            match &records[*position] {
                Some(record) => {
                    let count = i32::try_from(record.count).unwrap_or(i32::MAX);
                    let in_flight = i32::try_from(record.in_flight).unwrap_or(i32::MAX);
                    transaction
                        .execute(
                            &upsert,
                            &[
                                &digest.as_slice(),
                                &count,
                                &in_flight,
                                &record.in_flight_until.unix_millis(),
                                &record.last.unix_millis(),
                                &record.locked_until.map(Timestamp::unix_millis),
                            ],
                        )
                        .await?;
                }
                None => {
                    transaction.execute(&delete, &[&digest.as_slice()]).await?;
                }
            }
        }
        if created > 0 {
            let stored: i64 = transaction
                .query_one("select count(*) from sign_in_failures", &[])
                .await?
                .get(0);
            let excess = u64::try_from(stored)
                .unwrap_or(0)
                .saturating_sub(sign_in_throttle::MAX_RECORDS);
            if excess > 0 {
                // The least recently used records go first; this attempt's own (touched just
                // now) are kept.
                transaction
                    .execute(
                        sign_in_sql::DELETE_OLDEST,
                        &[&now.unix_millis(), &i64::try_from(excess).unwrap_or(i64::MAX)],
                    )
                    .await?;
            }
        }
        transaction.commit().await?;
        Ok(verdict)
    }
}

/// Records whose last attempt is at or before this instant may be stale.
fn stale_before(now: Timestamp) -> i64 {
    now.unix_millis()
        .saturating_sub(sign_in_throttle::FAILURE_WINDOW_MILLIS)
}

fn is_empty(record: &FailureRecord) -> bool {
    record.count == 0 && record.in_flight == 0 && record.locked_until.is_none()
}

fn failure_record(row: &Row) -> Result<FailureRecord, StoreError> {
    let corrupt = || StoreError::Internal("stored sign-in failure record is invalid".into());
    let count: i32 = row.try_get(0)?;
    let in_flight: i32 = row.try_get(1)?;
    let locked_until: Option<i64> = row.try_get(4)?;
    Ok(FailureRecord {
        count: u32::try_from(count).map_err(|_| corrupt())?,
        in_flight: u32::try_from(in_flight).map_err(|_| corrupt())?,
        in_flight_until: timestamp(row.try_get(2)?, "in_flight_until")?,
        last: timestamp(row.try_get(3)?, "last")?,
        locked_until: locked_until
            .map(|millis| timestamp(millis, "locked_until"))
            .transpose()?,
    })
}

/// The statements of the sign-in throttle.
mod sign_in_sql {
    /// Forgets records that are idle and whose last attempt is outside the window (as
    /// `sign_in_throttle::is_stale` says).
    pub(super) const DELETE_STALE: &str = "delete from sign_in_failures
         where last <= $1 and (in_flight = 0 or in_flight_until <= $2)
           and (locked_until is null or locked_until <= $2)";
    pub(super) const INSERT_EMPTY: &str = "insert into sign_in_failures
         (key, count, in_flight, in_flight_until, last, locked_until) values ($1, 0, 0, $2, $2, null)
         on conflict (key) do nothing";
    pub(super) const SELECT_FOR_UPDATE: &str = "select count, in_flight, in_flight_until, last, locked_until
         from sign_in_failures where key = $1 for update";
    pub(super) const UPDATE: &str = "update sign_in_failures
         set count = $2, in_flight = $3, in_flight_until = $4, last = $5, locked_until = $6 where key = $1";
    pub(super) const DELETE: &str = "delete from sign_in_failures where key = $1";
    pub(super) const DELETE_OLDEST: &str = "delete from sign_in_failures where key in
         (select key from sign_in_failures where last < $1 order by last limit $2)";
}
