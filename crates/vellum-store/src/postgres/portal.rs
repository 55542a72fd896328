//! Admin Portal links and sessions. A link is spent by one conditional `UPDATE … RETURNING`, in
//! the transaction that stores its session, so two nodes opening it at once open it once.

use async_trait::async_trait;
use tokio_postgres::Row;
use vellum_core::operator::{Email, SessionTokenHash};
use vellum_core::portal::{NewPortalLink, PortalIntent, PortalLink, PortalSession};
use vellum_core::{OrganizationId, PortalLinkId, Timestamp};

use super::{PostgresStore, id_bytes, timestamp, ulid_from};
use crate::{PortalStore, StoreError};

/// Links are forgotten this long after they could last be opened.
const FORGET_AFTER_MILLIS: i64 = 24 * 60 * 60 * 1000;

const LINK_COLUMNS: &str = "l.id, l.organization_id, l.intent, l.external_user_id, l.return_url, l.success_url, \
                            l.it_contact_emails, l.created_at, l.expires_at";

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("a portal link row has {what}"))
}

fn read_link(row: &Row) -> Result<PortalLink, StoreError> {
    let id: Vec<u8> = row.try_get(0)?;
    let organization: Vec<u8> = row.try_get(1)?;
    let intent: String = row.try_get(2)?;
    let emails: String = row.try_get(6)?;
    let emails: Vec<String> = serde_json::from_str(&emails).map_err(|_| corrupt("bad emails"))?;
    Ok(PortalLink {
        id: PortalLinkId::from_ulid(ulid_from(&id)?),
        organization_id: OrganizationId::from_ulid(ulid_from(&organization)?),
        intent: PortalIntent::parse(&intent).ok_or_else(|| corrupt("an unknown intent"))?,
        external_user_id: row.try_get(3)?,
        return_url: row.try_get(4)?,
        success_url: row.try_get(5)?,
        it_contact_emails: emails
            .iter()
            .map(|email| Email::parse(email).map_err(|_| corrupt("a bad email")))
            .collect::<Result<_, _>>()?,
        created_at: timestamp(row.try_get(7)?, "portal link created_at")?,
        expires_at: timestamp(row.try_get(8)?, "portal link expires_at")?,
    })
}

async fn live_organization(client: &tokio_postgres::Client, id: OrganizationId) -> Result<(), StoreError> {
    client
        .query_opt(
            "select 1 from organizations where id = $1 and deleted_at is null",
            &[&id_bytes(id.ulid())],
        )
        .await?
        .map(|_| ())
        .ok_or_else(|| StoreError::not_found("Organization", id))
}

#[async_trait]
impl PortalStore for PostgresStore {
    async fn create_portal_link(&self, link: NewPortalLink) -> Result<PortalLink, StoreError> {
        let id = PortalLinkId::from_ulid(self.ids.next());
        let now = link.created_at.unix_millis();
        let client = self.client().await?;
        live_organization(&client, link.organization_id).await?;
        client
            .execute("delete from portal_sessions where expires_at <= $1", &[&now])
            .await?;
        client
            .execute(
                "delete from portal_links where expires_at <= $1",
                &[&(now - FORGET_AFTER_MILLIS)],
            )
            .await?;
        let emails: Vec<&str> = link.it_contact_emails.iter().map(Email::as_str).collect();
        let inserted = client
            .execute(
                "insert into portal_links (id, organization_id, intent, secret_hash, external_user_id, return_url,
                                           success_url, it_contact_emails, created_at, expires_at)
                 select $1, id, $3, $4, $5, $6, $7, $8, $9, $10 from organizations
                 where id = $2 and deleted_at is null",
                &[
                    &id_bytes(id.ulid()),
                    &id_bytes(link.organization_id.ulid()),
                    &link.intent.as_str(),
                    &link.secret_hash.0.as_slice(),
                    &link.external_user_id,
                    &link.return_url,
                    &link.success_url,
                    &serde_json::to_string(&emails).expect("strings serialize"),
                    &now,
                    &link.expires_at.unix_millis(),
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::not_found("Organization", link.organization_id));
        }
        Ok(PortalLink {
            id,
            organization_id: link.organization_id,
            intent: link.intent,
            external_user_id: link.external_user_id,
            return_url: link.return_url,
            success_url: link.success_url,
            it_contact_emails: link.it_contact_emails,
            created_at: link.created_at,
            expires_at: link.expires_at,
        })
    }

    async fn open_portal_link(
        &self,
        secret_hash: SessionTokenHash,
        session_hash: SessionTokenHash,
        now: Timestamp,
        session_expires_at: Timestamp,
    ) -> Result<Option<PortalSession>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let row = transaction
            .query_opt(
                &format!(
                    "update portal_links l set opened_at = $2 from organizations o
                     where l.secret_hash = $1 and l.opened_at is null and l.revoked_at is null
                       and l.expires_at > $2 and o.id = l.organization_id and o.deleted_at is null
                     returning {LINK_COLUMNS}"
                ),
                &[&secret_hash.0.as_slice(), &now.unix_millis()],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let link = read_link(&row)?;
        transaction
            .execute(
                "insert into portal_sessions (token_hash, link_id, created_at, expires_at) values ($1, $2, $3, $4)",
                &[
                    &session_hash.0.as_slice(),
                    &id_bytes(link.id.ulid()),
                    &now.unix_millis(),
                    &session_expires_at.unix_millis(),
                ],
            )
            .await?;
        transaction.commit().await?;
        Ok(Some(PortalSession {
            token_hash: session_hash,
            link,
            created_at: now,
            expires_at: session_expires_at,
        }))
    }

    async fn find_portal_session(
        &self,
        token_hash: SessionTokenHash,
        now: Timestamp,
    ) -> Result<Option<PortalSession>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "select {LINK_COLUMNS}, s.created_at, s.expires_at
                     from portal_sessions s join portal_links l on l.id = s.link_id
                     join organizations o on o.id = l.organization_id
                     where s.token_hash = $1 and s.expires_at > $2 and l.revoked_at is null
                       and o.deleted_at is null"
                ),
                &[&token_hash.0.as_slice(), &now.unix_millis()],
            )
            .await?;
        row.map(|row| {
            Ok(PortalSession {
                token_hash,
                link: read_link(&row)?,
                created_at: timestamp(row.try_get(9)?, "portal session created_at")?,
                expires_at: timestamp(row.try_get(10)?, "portal session expires_at")?,
            })
        })
        .transpose()
    }

    async fn revoke_portal_links(
        &self,
        organization_id: OrganizationId,
        external_user_id: String,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        live_organization(&client, organization_id).await?;
        let transaction = client.transaction().await?;
        let organization = id_bytes(organization_id.ulid());
        transaction
            .execute(
                "delete from portal_sessions where link_id in
                   (select id from portal_links where organization_id = $1 and external_user_id = $2)",
                &[&organization, &external_user_id],
            )
            .await?;
        let revoked = transaction
            .execute(
                "update portal_links set revoked_at = $3
                 where organization_id = $1 and external_user_id = $2 and revoked_at is null",
                &[&organization, &external_user_id, &now.unix_millis()],
            )
            .await?;
        transaction.commit().await?;
        Ok(revoked)
    }

    async fn end_portal_session(&self, token_hash: SessionTokenHash) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "delete from portal_sessions where token_hash = $1",
                &[&token_hash.0.as_slice()],
            )
            .await?;
        Ok(())
    }
}
