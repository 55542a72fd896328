//! Admin Portal links and sessions. Every write runs on the single writer, so spending a link
//! and opening its session are one atomic step.

use rusqlite::{Connection, OptionalExtension, params};
use vellum_core::operator::{Email, SessionTokenHash};
use vellum_core::portal::{NewPortalLink, PortalIntent, PortalLink, PortalSession};
use vellum_core::{OrganizationId, PortalLinkId, Timestamp};

use super::events::live_organization_seq;
use super::ulid_from_blob;
use crate::StoreError;

/// Links are forgotten this long after they could last be opened.
const FORGET_AFTER_MILLIS: i64 = 24 * 60 * 60 * 1000;

const LINK_COLUMNS: &str = "l.id, o.id, l.intent, l.external_user_id, l.return_url, l.success_url, \
                            l.it_contact_emails, l.created_at, l.expires_at";

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("a portal link row has {what}"))
}

fn time(millis: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_millis(millis).ok_or_else(|| corrupt("a bad time"))
}

type LinkRow = (
    Vec<u8>,
    Vec<u8>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
);

fn read_link_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LinkRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    ))
}

fn link_of(row: LinkRow) -> Result<PortalLink, StoreError> {
    let (id, organization, intent, external_user_id, return_url, success_url, emails, created_at, expires_at) = row;
    let emails: Vec<String> = serde_json::from_str(&emails).map_err(|_| corrupt("bad emails"))?;
    Ok(PortalLink {
        id: PortalLinkId::from_ulid(ulid_from_blob(&id)?),
        organization_id: OrganizationId::from_ulid(ulid_from_blob(&organization)?),
        intent: PortalIntent::parse(&intent).ok_or_else(|| corrupt("an unknown intent"))?,
        external_user_id,
        return_url,
        success_url,
        it_contact_emails: emails
            .iter()
            .map(|email| Email::parse(email).map_err(|_| corrupt("a bad email")))
            .collect::<Result<_, _>>()?,
        created_at: time(created_at)?,
        expires_at: time(expires_at)?,
    })
}

pub(super) fn insert_link(
    connection: &Connection,
    id: PortalLinkId,
    link: &NewPortalLink,
) -> Result<PortalLink, StoreError> {
    let organization_seq = live_organization_seq(connection, link.organization_id)?;
    let now = link.created_at.unix_millis();
    connection.execute("delete from portal_sessions where expires_at <= ?1", [now])?;
    connection.execute(
        "delete from portal_links where expires_at <= ?1",
        [now - FORGET_AFTER_MILLIS],
    )?;
    let emails: Vec<&str> = link.it_contact_emails.iter().map(Email::as_str).collect();
    connection.execute(
        "insert into portal_links (id, organization_seq, intent, secret_hash, external_user_id, return_url,
                                   success_url, it_contact_emails, created_at, expires_at)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            id.ulid().to_bytes().as_slice(),
            organization_seq,
            link.intent.as_str(),
            link.secret_hash.0.as_slice(),
            link.external_user_id,
            link.return_url,
            link.success_url,
            serde_json::to_string(&emails).expect("strings serialize"),
            now,
            link.expires_at.unix_millis(),
        ],
    )?;
    Ok(PortalLink {
        id,
        organization_id: link.organization_id,
        intent: link.intent,
        external_user_id: link.external_user_id.clone(),
        return_url: link.return_url.clone(),
        success_url: link.success_url.clone(),
        it_contact_emails: link.it_contact_emails.clone(),
        created_at: link.created_at,
        expires_at: link.expires_at,
    })
}

pub(super) fn open_link(
    connection: &Connection,
    secret_hash: SessionTokenHash,
    session_hash: SessionTokenHash,
    now: Timestamp,
    session_expires_at: Timestamp,
) -> Result<Option<PortalSession>, StoreError> {
    let row = connection
        .query_row(
            &format!(
                "select {LINK_COLUMNS} from portal_links l join organizations o on o.seq = l.organization_seq
                 where l.secret_hash = ?1 and l.opened_at is null and l.revoked_at is null
                   and l.expires_at > ?2 and o.deleted_at is null"
            ),
            params![secret_hash.0.as_slice(), now.unix_millis()],
            read_link_row,
        )
        .optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let link = link_of(row)?;
    let link_id = link.id.ulid().to_bytes();
    connection.execute(
        "update portal_links set opened_at = ?2 where id = ?1",
        params![link_id.as_slice(), now.unix_millis()],
    )?;
    connection.execute(
        "insert into portal_sessions (token_hash, link_id, created_at, expires_at) values (?1, ?2, ?3, ?4)",
        params![
            session_hash.0.as_slice(),
            link_id.as_slice(),
            now.unix_millis(),
            session_expires_at.unix_millis()
        ],
    )?;
    Ok(Some(PortalSession {
        token_hash: session_hash,
        link,
        created_at: now,
        expires_at: session_expires_at,
    }))
}

pub(super) fn find_session(
    connection: &Connection,
    token_hash: SessionTokenHash,
    now: Timestamp,
) -> Result<Option<PortalSession>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "select {LINK_COLUMNS}, s.created_at, s.expires_at
         from portal_sessions s join portal_links l on l.id = s.link_id
         join organizations o on o.seq = l.organization_seq
         where s.token_hash = ?1 and s.expires_at > ?2 and l.revoked_at is null and o.deleted_at is null"
    ))?;
    let row = statement
        .query_row(params![token_hash.0.as_slice(), now.unix_millis()], |row| {
            Ok((read_link_row(row)?, row.get::<_, i64>(9)?, row.get::<_, i64>(10)?))
        })
        .optional()?;
    row.map(|(link, created_at, expires_at)| {
        Ok(PortalSession {
            token_hash,
            link: link_of(link)?,
            created_at: time(created_at)?,
            expires_at: time(expires_at)?,
        })
    })
    .transpose()
}

pub(super) fn revoke_links(
    connection: &Connection,
    organization_id: OrganizationId,
    external_user_id: &str,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let organization_seq = live_organization_seq(connection, organization_id)?;
    connection.execute(
        "delete from portal_sessions where link_id in
           (select id from portal_links where organization_seq = ?1 and external_user_id = ?2)",
        params![organization_seq, external_user_id],
    )?;
    let revoked = connection.execute(
        "update portal_links set revoked_at = ?3
         where organization_seq = ?1 and external_user_id = ?2 and revoked_at is null",
        params![organization_seq, external_user_id, now.unix_millis()],
    )?;
    Ok(revoked as u64)
}

pub(super) fn end_session(connection: &Connection, token_hash: SessionTokenHash) -> Result<(), StoreError> {
    connection.execute(
        "delete from portal_sessions where token_hash = ?1",
        [token_hash.0.as_slice()],
    )?;
    Ok(())
}
