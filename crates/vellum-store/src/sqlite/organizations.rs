//! Organization rows.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use vellum_core::pagination::KeyBound;
use vellum_core::{
    NewOrganization, Organization, OrganizationDomainId, OrganizationId, OrganizationUpdate, Page, PageRequest,
    Timestamp,
};

use super::ulid_from_blob;
use crate::codec::{decode_domains, encode_domains, encode_metadata};
use crate::ids::IdGenerator;
use crate::{OrganizationFilter, StoreError};

const COLUMNS: &str = "id, name, external_id, metadata, domains, stripe_customer_id, \
                       allow_profiles_outside_organization, created_at, updated_at";

pub(super) fn insert(
    connection: &Connection,
    ids: &IdGenerator,
    request: NewOrganization,
) -> Result<Organization, StoreError> {
    let now = crate::now();
    let id = OrganizationId::from_ulid(ids.next());
    let organization = Organization::create(id, request, now, || OrganizationDomainId::from_ulid(ids.next()));
    connection
        .execute(
            &format!("insert into organizations ({COLUMNS}) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
            params![
                id.ulid().to_bytes().as_slice(),
                organization.name,
                organization.external_id,
                encode_metadata(&organization.metadata),
                encode_domains(&organization.domains),
                organization.stripe_customer_id,
                organization.allow_profiles_outside_organization,
                organization.created_at.unix_millis(),
                organization.updated_at.unix_millis(),
            ],
        )
        .map_err(|error| external_id_conflict(error, organization.external_id.as_deref()))?;
    Ok(organization)
}

pub(super) fn get(connection: &Connection, id: OrganizationId) -> Result<Option<Organization>, StoreError> {
    connection
        .query_row(
            &format!("select {COLUMNS} from organizations where id = ?1 and deleted_at is null"),
            [id.ulid().to_bytes().as_slice()],
            read_row,
        )
        .optional()?
        .transpose()
}

pub(super) fn get_by_external_id(
    connection: &Connection,
    external_id: &str,
) -> Result<Option<Organization>, StoreError> {
    connection
        .query_row(
            &format!("select {COLUMNS} from organizations where external_id = ?1 and deleted_at is null"),
            [external_id],
            read_row,
        )
        .optional()?
        .transpose()
}

pub(super) fn list(
    connection: &Connection,
    filter: &OrganizationFilter,
    page: &PageRequest<OrganizationId>,
) -> Result<Page<Organization, OrganizationId>, StoreError> {
    let plan = page.plan();
    let mut sql = format!("select {COLUMNS} from organizations where deleted_at is null");
    let mut values: Vec<Value> = Vec::new();
    match &plan.bound {
        None => {}
        Some(KeyBound::Above(id)) => {
            sql.push_str(" and id > ?");
            values.push(Value::Blob(id.ulid().to_bytes().to_vec()));
        }
        Some(KeyBound::Below(id)) => {
            sql.push_str(" and id < ?");
            values.push(Value::Blob(id.ulid().to_bytes().to_vec()));
        }
    }
    if let Some(search) = &filter.search {
        sql.push_str(r" and name like ? escape '\'");
        values.push(Value::Text(crate::listing::contains_pattern(search)));
    }
    if !filter.domains.is_empty() {
        let placeholders = vec!["?"; filter.domains.len()].join(", ");
        sql.push_str(&format!(
            " and exists (select 1 from json_each(organizations.domains) \
               where json_extract(json_each.value, '$.domain') in ({placeholders}))"
        ));
        values.extend(filter.domains.iter().cloned().map(Value::Text));
    }
    sql.push_str(if plan.ascending {
        " order by id asc"
    } else {
        " order by id desc"
    });
    sql.push_str(" limit ?");
    values.push(Value::Integer(i64::from(plan.fetch)));

    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement
        .query_map(params_from_iter(values), read_row)?
        .map(|row| row.map_err(StoreError::from).and_then(|decoded| decoded))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page.finish(rows, |organization| organization.id))
}

pub(super) fn update(
    connection: &Connection,
    ids: &IdGenerator,
    id: OrganizationId,
    update: OrganizationUpdate,
) -> Result<Organization, StoreError> {
    let mut organization = get(connection, id)?.ok_or_else(|| StoreError::not_found("Organization", id))?;
    organization.apply(update, crate::now(), || OrganizationDomainId::from_ulid(ids.next()));
    connection
        .execute(
            "update organizations set name = ?2, external_id = ?3, metadata = ?4, domains = ?5,
                 stripe_customer_id = ?6, allow_profiles_outside_organization = ?7, updated_at = ?8
             where id = ?1 and deleted_at is null",
            params![
                id.ulid().to_bytes().as_slice(),
                organization.name,
                organization.external_id,
                encode_metadata(&organization.metadata),
                encode_domains(&organization.domains),
                organization.stripe_customer_id,
                organization.allow_profiles_outside_organization,
                organization.updated_at.unix_millis(),
            ],
        )
        .map_err(|error| external_id_conflict(error, organization.external_id.as_deref()))?;
    Ok(organization)
}

pub(super) fn delete(connection: &Connection, id: OrganizationId) -> Result<(), StoreError> {
    let changed = connection.execute(
        "update organizations set deleted_at = ?2 where id = ?1 and deleted_at is null",
        params![id.ulid().to_bytes().as_slice(), crate::now().unix_millis()],
    )?;
    if changed == 0 {
        return Err(StoreError::not_found("Organization", id));
    }
    Ok(())
}

pub(super) fn get_retention(connection: &Connection, id: OrganizationId) -> Result<Option<u32>, StoreError> {
    let days: Option<Option<i64>> = connection
        .query_row(
            "select retention_period_in_days from organizations where id = ?1 and deleted_at is null",
            [id.ulid().to_bytes().as_slice()],
            |row| row.get(0),
        )
        .optional()?;
    match days {
        None => Err(StoreError::not_found("Organization", id)),
        Some(days) => Ok(days.and_then(|days| u32::try_from(days).ok())),
    }
}

pub(super) fn set_retention(connection: &Connection, id: OrganizationId, days: u32) -> Result<(), StoreError> {
    let changed = connection.execute(
        "update organizations set retention_period_in_days = ?2, updated_at = ?3 where id = ?1 and deleted_at is null",
        params![id.ulid().to_bytes().as_slice(), days, crate::now().unix_millis()],
    )?;
    if changed == 0 {
        return Err(StoreError::not_found("Organization", id));
    }
    Ok(())
}

fn external_id_conflict(error: rusqlite::Error, external_id: Option<&str>) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, _) = &error
        && failure.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return StoreError::Conflict(format!(
            "An organization with external_id '{}' already exists.",
            external_id.unwrap_or_default()
        ));
    }
    StoreError::from(error)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored organization has an invalid {what}"))
}

fn timestamp(millis: i64, what: &str) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_millis(millis).ok_or_else(|| corrupt(what))
}

/// Decodes a row selected with [`COLUMNS`]. The outer `Result` is SQLite's, the inner ours.
fn read_row(row: &Row<'_>) -> rusqlite::Result<Result<Organization, StoreError>> {
    let id: Vec<u8> = row.get(0)?;
    let name: String = row.get(1)?;
    let external_id: Option<String> = row.get(2)?;
    let metadata: String = row.get(3)?;
    let domains: String = row.get(4)?;
    let stripe_customer_id: Option<String> = row.get(5)?;
    let allow_profiles_outside_organization: bool = row.get(6)?;
    let created_at: i64 = row.get(7)?;
    let updated_at: i64 = row.get(8)?;
    Ok((|| {
        Ok(Organization {
            id: OrganizationId::from_ulid(ulid_from_blob(&id)?),
            name,
            external_id,
            metadata: serde_json::from_str(&metadata).map_err(|_| corrupt("metadata"))?,
            domains: decode_domains(&domains)?,
            stripe_customer_id,
            allow_profiles_outside_organization,
            created_at: timestamp(created_at, "created_at")?,
            updated_at: timestamp(updated_at, "updated_at")?,
        })
    })())
}
