//! Organizations and their retention.

use async_trait::async_trait;
use tokio_postgres::Row;
use vellum_core::{
    NewOrganization, Organization, OrganizationDomainId, OrganizationId, OrganizationUpdate, Page, PageRequest,
};

use super::{Params, PostgresStore, id_bytes, is_unique_violation, timestamp, ulid_from};
use crate::codec::{decode_domains, encode_domains, encode_metadata};
use crate::{OrganizationFilter, OrganizationStore, StoreError};

const COLUMNS: &str = "id, name, external_id, metadata, domains, stripe_customer_id, \
                       allow_profiles_outside_organization, created_at, updated_at";

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored organization has an invalid {what}"))
}

fn read_row(row: &Row) -> Result<Organization, StoreError> {
    let id: Vec<u8> = row.try_get(0)?;
    let metadata: String = row.try_get(3)?;
    let domains: String = row.try_get(4)?;
    Ok(Organization {
        id: OrganizationId::from_ulid(ulid_from(&id)?),
        name: row.try_get(1)?,
        external_id: row.try_get(2)?,
        metadata: serde_json::from_str(&metadata).map_err(|_| corrupt("metadata"))?,
        domains: decode_domains(&domains)?,
        stripe_customer_id: row.try_get(5)?,
        allow_profiles_outside_organization: row.try_get(6)?,
        created_at: timestamp(row.try_get(7)?, "created_at")?,
        updated_at: timestamp(row.try_get(8)?, "updated_at")?,
    })
}

fn external_id_conflict(error: tokio_postgres::Error, external_id: Option<&str>) -> StoreError {
    if is_unique_violation(&error, Some("organizations_external_id")) {
        return StoreError::Conflict(format!(
            "An organization with external_id '{}' already exists.",
            external_id.unwrap_or_default()
        ));
    }
    StoreError::from(error)
}

impl PostgresStore {
    async fn live_organization(&self, id: OrganizationId) -> Result<Option<Organization>, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("select {COLUMNS} from organizations where id = $1 and deleted_at is null"),
                &[&id_bytes(id.ulid())],
            )
            .await?
            .map(|row| read_row(&row))
            .transpose()
    }
}

#[async_trait]
impl OrganizationStore for PostgresStore {
    async fn create_organization(&self, request: NewOrganization) -> Result<Organization, StoreError> {
        let now = crate::now();
        let id = OrganizationId::from_ulid(self.ids.next());
        let organization = Organization::create(id, request, now, || OrganizationDomainId::from_ulid(self.ids.next()));
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        transaction
            .execute(
                &format!("insert into organizations ({COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
                &[
                    &id_bytes(id.ulid()),
                    &organization.name,
                    &organization.external_id,
                    &encode_metadata(&organization.metadata),
                    &encode_domains(&organization.domains),
                    &organization.stripe_customer_id,
                    &organization.allow_profiles_outside_organization,
                    &organization.created_at.unix_millis(),
                    &organization.updated_at.unix_millis(),
                ],
            )
            .await
            .map_err(|error| external_id_conflict(error, organization.external_id.as_deref()))?;
        transaction
            .execute(
                "insert into log_heads (organization_id, size) values ($1, 0)",
                &[&id_bytes(id.ulid())],
            )
            .await?;
        transaction.commit().await?;
        Ok(organization)
    }

    async fn get_organization(&self, id: OrganizationId) -> Result<Organization, StoreError> {
        self.live_organization(id)
            .await?
            .ok_or_else(|| StoreError::not_found("Organization", id))
    }

    async fn get_organization_by_external_id(&self, external_id: &str) -> Result<Organization, StoreError> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("select {COLUMNS} from organizations where external_id = $1 and deleted_at is null"),
                &[&external_id],
            )
            .await?
            .map(|row| read_row(&row))
            .transpose()?
            .ok_or_else(|| StoreError::not_found("Organization", external_id))
    }

    async fn list_organizations(
        &self,
        filter: OrganizationFilter,
        page: PageRequest<OrganizationId>,
    ) -> Result<Page<Organization, OrganizationId>, StoreError> {
        let plan = page.plan();
        let mut params = Params::default();
        let mut sql = format!("select {COLUMNS} from organizations where deleted_at is null");
        params.push_id_bound(&mut sql, "id", plan.bound.as_ref(), |id| id.ulid());
        if let Some(search) = &filter.search {
            sql.push_str(&format!(
                r" and name ilike {} escape '\'",
                params.push(crate::listing::contains_pattern(search))
            ));
        }
        if !filter.domains.is_empty() {
            sql.push_str(&format!(
                " and exists (select 1 from jsonb_array_elements(domains::jsonb) d where d->>'domain' = any({}))",
                params.push(filter.domains.clone())
            ));
        }
        params.push_id_order(&mut sql, "id", plan.ascending, plan.fetch);
        let client = self.client().await?;
        let rows = client
            .query(&sql, &params.refs())
            .await?
            .iter()
            .map(read_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(rows, |organization| organization.id))
    }

    async fn update_organization(
        &self,
        id: OrganizationId,
        update: OrganizationUpdate,
    ) -> Result<Organization, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let mut organization = transaction
            .query_opt(
                &format!("select {COLUMNS} from organizations where id = $1 and deleted_at is null for update"),
                &[&id_bytes(id.ulid())],
            )
            .await?
            .map(|row| read_row(&row))
            .transpose()?
            .ok_or_else(|| StoreError::not_found("Organization", id))?;
        organization.apply(update, crate::now(), || {
            OrganizationDomainId::from_ulid(self.ids.next())
        });
        transaction
            .execute(
                "update organizations set name = $2, external_id = $3, metadata = $4, domains = $5,
                     stripe_customer_id = $6, allow_profiles_outside_organization = $7, updated_at = $8
                 where id = $1 and deleted_at is null",
                &[
                    &id_bytes(id.ulid()),
                    &organization.name,
                    &organization.external_id,
                    &encode_metadata(&organization.metadata),
                    &encode_domains(&organization.domains),
                    &organization.stripe_customer_id,
                    &organization.allow_profiles_outside_organization,
                    &organization.updated_at.unix_millis(),
                ],
            )
            .await
            .map_err(|error| external_id_conflict(error, organization.external_id.as_deref()))?;
        transaction.commit().await?;
        Ok(organization)
    }

    async fn delete_organization(&self, id: OrganizationId) -> Result<(), StoreError> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "update organizations set deleted_at = $2 where id = $1 and deleted_at is null",
                &[&id_bytes(id.ulid()), &crate::now().unix_millis()],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::not_found("Organization", id));
        }
        Ok(())
    }

    async fn get_retention(&self, organization_id: OrganizationId) -> Result<Option<u32>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "select retention_period_in_days from organizations where id = $1 and deleted_at is null",
                &[&id_bytes(organization_id.ulid())],
            )
            .await?
            .ok_or_else(|| StoreError::not_found("Organization", organization_id))?;
        let days: Option<i32> = row.try_get(0)?;
        Ok(days.and_then(|days| u32::try_from(days).ok()))
    }

    async fn set_retention(&self, organization_id: OrganizationId, days: u32) -> Result<(), StoreError> {
        let days = i32::try_from(days).map_err(|_| StoreError::InvalidInput {
            field: "retention_period_in_days",
            message: "too large".into(),
        })?;
        let client = self.client().await?;
        let changed = client
            .execute(
                "update organizations set retention_period_in_days = $2, updated_at = $3
                 where id = $1 and deleted_at is null",
                &[&id_bytes(organization_id.ulid()), &days, &crate::now().unix_millis()],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::not_found("Organization", organization_id));
        }
        Ok(())
    }
}
