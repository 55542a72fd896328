//! `/organizations`: WorkOS-compatible create, get, list, update and delete.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use vellum_core::filter::{check_filter_values, check_search};
use vellum_core::organization::{DomainState, validate_domains, validate_identifier, validate_metadata, validate_name};
use vellum_core::{NewOrganization, Organization, OrganizationId, OrganizationUpdate, ValidationErrors};
use vellum_store::OrganizationFilter;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{QueryPairs, WireJson, WirePath};
use crate::wire::{ListResponse, double_option, page_request};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/organizations", get(list_organizations).post(create_organization))
        .route(
            "/organizations/{id}",
            get(get_organization)
                .put(update_organization)
                .delete(delete_organization),
        )
        .route(
            "/organizations/external_id/{external_id}",
            get(get_organization_by_external_id),
        )
}

/// The wire form of an organization, as the official SDKs parse it.
#[derive(Serialize)]
pub(crate) struct OrganizationResponse {
    object: &'static str,
    id: String,
    name: String,
    allow_profiles_outside_organization: bool,
    domains: Vec<OrganizationDomainResponse>,
    metadata: BTreeMap<String, String>,
    external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stripe_customer_id: Option<String>,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize)]
struct OrganizationDomainResponse {
    object: &'static str,
    id: String,
    organization_id: String,
    domain: String,
    state: &'static str,
    created_at: String,
    updated_at: String,
}

impl From<Organization> for OrganizationResponse {
    fn from(organization: Organization) -> Self {
        let organization_id = organization.id.to_string();
        Self {
            object: "organization",
            domains: organization
                .domains
                .into_iter()
                .map(|domain| OrganizationDomainResponse {
                    object: "organization_domain",
                    id: domain.id.to_string(),
                    organization_id: organization_id.clone(),
                    domain: domain.domain,
                    state: domain.state.as_str(),
                    created_at: domain.created_at.to_wire(),
                    updated_at: domain.updated_at.to_wire(),
                })
                .collect(),
            id: organization_id,
            name: organization.name,
            allow_profiles_outside_organization: organization.allow_profiles_outside_organization,
            metadata: organization.metadata,
            external_id: organization.external_id,
            stripe_customer_id: organization.stripe_customer_id,
            created_at: organization.created_at.to_wire(),
            updated_at: organization.updated_at.to_wire(),
        }
    }
}

#[derive(Deserialize)]
struct DomainDataBody {
    domain: Option<String>,
    state: Option<String>,
}

/// The body of create and update. Every field is optional at this level so that a missing field
/// is reported as `required` with the other problems, not as a deserialisation failure.
#[derive(Deserialize)]
struct OrganizationBody {
    name: Option<String>,
    /// Deprecated by WorkOS in favour of `domain_data`; still sent by older SDKs.
    domains: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::wire::objects_or_null")]
    domain_data: Option<Vec<DomainDataBody>>,
    #[serde(default, deserialize_with = "double_option")]
    external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    metadata: Option<Option<BTreeMap<String, String>>>,
    #[serde(default, deserialize_with = "double_option")]
    stripe_customer_id: Option<Option<String>>,
    allow_profiles_outside_organization: Option<bool>,
}

impl OrganizationBody {
    fn domains(&mut self, errors: &mut ValidationErrors) -> Option<Vec<vellum_core::organization::DomainInput>> {
        match (self.domains.take(), self.domain_data.take()) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                errors.push(
                    "domains",
                    "conflict",
                    "give either `domains` or `domain_data`, not both",
                );
                None
            }
            (Some(domains), None) => validate_domains(
                domains.into_iter().map(|domain| (domain, None)).collect(),
                "domains",
                errors,
            ),
            (None, Some(data)) => {
                let mut inputs = Vec::with_capacity(data.len());
                for (index, item) in data.into_iter().enumerate() {
                    let state = match item.state.as_deref() {
                        None => None,
                        Some(text) => match DomainState::parse(text) {
                            Some(state) => Some(state),
                            None => {
                                errors.push(
                                    format!("domain_data.{index}.state"),
                                    "invalid",
                                    "state must be `pending` or `verified`",
                                );
                                None
                            }
                        },
                    };
                    match item.domain {
                        Some(domain) => inputs.push((domain, state)),
                        None => errors.push(format!("domain_data.{index}.domain"), "required", "domain is required"),
                    }
                }
                validate_domains(inputs, "domain_data", errors)
            }
        }
    }
}

fn parse_organization_id(text: &str) -> Result<OrganizationId, ApiError> {
    // An id that cannot exist names no organization: answer as WorkOS does, with a 404.
    OrganizationId::parse(text).map_err(|_| ApiError::NotFound {
        message: format!("Organization not found: '{text}'."),
    })
}

async fn create_organization(
    State(state): State<AppState>,
    WireJson(mut body): WireJson<OrganizationBody>,
) -> Result<(StatusCode, Json<OrganizationResponse>), ApiError> {
    let mut errors = ValidationErrors::new();
    let name = match body.name.as_deref() {
        Some(name) => validate_name(name, "name", &mut errors),
        None => {
            errors.push("name", "required", "name is required");
            None
        }
    };
    let domains = body.domains(&mut errors).unwrap_or_default();
    let external_id = match body.external_id.flatten() {
        Some(external_id) => validate_identifier(&external_id, "external_id", &mut errors),
        None => None,
    };
    let metadata = validate_metadata(body.metadata.flatten().unwrap_or_default(), "metadata", &mut errors);
    let (Some(name), Some(metadata)) = (name, metadata) else {
        return Err(errors.into());
    };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let request = NewOrganization {
        name,
        external_id,
        metadata,
        domains,
        allow_profiles_outside_organization: body.allow_profiles_outside_organization.unwrap_or(false),
    };
    let organization = state.store.create_organization(request).await?;
    Ok((StatusCode::CREATED, Json(organization.into())))
}

async fn get_organization(
    State(state): State<AppState>,
    WirePath(id): WirePath,
) -> Result<Json<OrganizationResponse>, ApiError> {
    let id = parse_organization_id(&id)?;
    Ok(Json(state.store.get_organization(id).await?.into()))
}

async fn get_organization_by_external_id(
    State(state): State<AppState>,
    WirePath(external_id): WirePath,
) -> Result<Json<OrganizationResponse>, ApiError> {
    Ok(Json(
        state.store.get_organization_by_external_id(&external_id).await?.into(),
    ))
}

async fn list_organizations(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<Json<ListResponse<OrganizationResponse>>, ApiError> {
    let mut errors = ValidationErrors::new();
    let page = page_request(&query, &mut errors, |text| {
        OrganizationId::parse(text).map_err(|error| format!("not an organization id: {error}"))
    });
    let domains: Vec<String> = query
        .list("domains")
        .into_iter()
        .map(|domain| domain.to_ascii_lowercase())
        .collect();
    check_filter_values("domains", domains.len(), &mut errors);
    let search = match query.single("search") {
        Ok(search) => search
            .filter(|text| !text.is_empty() && check_search("search", text, &mut errors))
            .map(str::to_owned),
        Err(_) => {
            errors.push("search", "repeated", "search may be given only once");
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let page = state
        .store
        .list_organizations(OrganizationFilter { domains, search }, page)
        .await?;
    Ok(Json(ListResponse::from_page(page, OrganizationResponse::from)))
}

async fn update_organization(
    State(state): State<AppState>,
    WirePath(id): WirePath,
    WireJson(mut body): WireJson<OrganizationBody>,
) -> Result<Json<OrganizationResponse>, ApiError> {
    let id = parse_organization_id(&id)?;
    let mut errors = ValidationErrors::new();
    let mut update = OrganizationUpdate {
        domains: body.domains(&mut errors),
        allow_profiles_outside_organization: body.allow_profiles_outside_organization,
        ..OrganizationUpdate::default()
    };
    if let Some(name) = body.name.as_deref() {
        update.name = validate_name(name, "name", &mut errors);
    }
    update.external_id = match body.external_id {
        None => None,
        Some(None) => Some(None),
        Some(Some(external_id)) => validate_identifier(&external_id, "external_id", &mut errors).map(Some),
    };
    update.stripe_customer_id = match body.stripe_customer_id {
        None => None,
        Some(None) => Some(None),
        Some(Some(customer)) => validate_identifier(&customer, "stripe_customer_id", &mut errors).map(Some),
    };
    update.metadata = match body.metadata {
        None => None,
        Some(metadata) => validate_metadata(metadata.unwrap_or_default(), "metadata", &mut errors),
    };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    Ok(Json(state.store.update_organization(id, update).await?.into()))
}

async fn delete_organization(State(state): State<AppState>, WirePath(id): WirePath) -> Result<StatusCode, ApiError> {
    let id = parse_organization_id(&id)?;
    state.store.delete_organization(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
