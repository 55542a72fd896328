//! `/organizations`: WorkOS-compatible create, get, list, update and delete.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vellum_core::filter::{check_filter_values, check_search};
use vellum_core::organization::{DomainState, validate_domains, validate_identifier, validate_metadata, validate_name};
use vellum_core::{NewOrganization, Organization, OrganizationId, OrganizationUpdate, ValidationErrors};
use vellum_store::OrganizationFilter;

use crate::AppState;
use crate::error::{ApiError, ErrorResponse, ValidationError};
use crate::extract::{QueryPairs, WireJson, WirePath};
use crate::wire::{ListResponse, PageParams, double_option, page_request, wire_const};

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

wire_const!(
    /// `"organization"`.
    OrganizationObject = "organization"
);
wire_const!(
    /// `"organization_domain"`.
    DomainObject = "organization_domain"
);

/// The wire form of an organization, as the official SDKs parse it.
#[derive(Serialize, ToSchema)]
#[schema(as = Organization)]
pub(crate) struct OrganizationResponse {
    object: OrganizationObject,
    #[schema(example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")]
    id: String,
    #[schema(example = "Foo Corp")]
    name: String,
    allow_profiles_outside_organization: bool,
    domains: Vec<OrganizationDomainResponse>,
    metadata: BTreeMap<String, String>,
    #[schema(required = true)]
    external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stripe_customer_id: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// A domain of an organization.
#[derive(Serialize, ToSchema)]
#[schema(as = OrganizationDomain)]
pub(crate) struct OrganizationDomainResponse {
    object: DomainObject,
    #[schema(example = "org_domain_01EHZNVPK2QXHMVWCEDQEKY69A")]
    id: String,
    organization_id: String,
    #[schema(example = "foo-corp.com")]
    domain: String,
    #[schema(value_type = DomainStateName)]
    state: &'static str,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// The verification state of a domain.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // names the values of `state` for the document
pub(crate) enum DomainStateName {
    Pending,
    Verified,
}

/// The filters of `GET /organizations`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // describes the query for the document; read through `QueryPairs`
pub(crate) struct OrganizationListParams {
    /// Only organizations with one of these domains, comma-joined (`domains=a.com,b.com`), as
    /// WorkOS documents it; `domains=a.com&domains=b.com` and `domains[]=a.com` are accepted
    /// too. At most 100.
    #[param(style = Form, explode = false, max_items = 100)]
    domains: Option<Vec<String>>,
    /// Matches against the organization name (at most 1,024 characters).
    #[param(max_length = 1024)]
    search: Option<String>,
}

/// The body of `POST /organizations` (the same members as an update, with `name` required).
#[derive(ToSchema)]
#[schema(as = OrganizationDto)]
#[allow(dead_code)] // describes the wire; the body is read as an `OrganizationBody`
pub(crate) struct CreateOrganizationDoc {
    #[schema(min_length = 1, example = "Foo Corp")]
    name: String,
    /// Deprecated in favour of `domain_data`; give one of the two.
    #[schema(deprecated)]
    domains: Option<Vec<String>>,
    domain_data: Option<Vec<DomainDataBody>>,
    /// 1 to 255 characters, unique among live organizations.
    #[schema(min_length = 1, max_length = 255)]
    external_id: Option<String>,
    #[schema(schema_with = metadata_schema)]
    metadata: Option<BTreeMap<String, String>>,
    allow_profiles_outside_organization: Option<bool>,
}

impl From<Organization> for OrganizationResponse {
    fn from(organization: Organization) -> Self {
        let organization_id = organization.id.to_string();
        Self {
            object: OrganizationObject::Value,
            domains: organization
                .domains
                .into_iter()
                .map(|domain| OrganizationDomainResponse {
                    object: DomainObject::Value,
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

/// An organization's metadata in a request, as WorkOS documents it; `null` clears it on update.
fn metadata_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .description(Some(
            "String values only: at most 50 keys of 1 to 40 characters, values at most 600 characters; \
             no control characters.",
        ))
        .max_properties(Some(50))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(40)),
        ))
        .additional_properties(Some(Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(600))
                .build(),
        )))
        .build()
}

/// A domain of a new or updated organization.
#[derive(Deserialize, ToSchema)]
#[schema(as = OrganizationDomainDataDto)]
pub(crate) struct DomainDataBody {
    #[schema(required = true, value_type = String, example = "foo-corp.com")]
    domain: Option<String>,
    #[schema(value_type = Option<DomainStateName>)]
    state: Option<String>,
}

/// The body of create and update (`PUT /organizations/{id}`: every member is optional, and
/// `null` clears `external_id`, `metadata` and `stripe_customer_id`). Every field is optional
/// at this level so that a missing field is reported as `required` with the other problems, not
/// as a deserialisation failure.
#[derive(Deserialize, ToSchema)]
#[schema(as = UpdateOrganizationDto)]
pub(crate) struct OrganizationBody {
    #[schema(min_length = 1, example = "Foo Corp")]
    name: Option<String>,
    /// Deprecated by WorkOS in favour of `domain_data`; still sent by older SDKs.
    #[schema(deprecated)]
    domains: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::wire::objects_or_null")]
    domain_data: Option<Vec<DomainDataBody>>,
    /// 1 to 255 characters, unique among live organizations; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 255)]
    external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = metadata_schema)]
    metadata: Option<Option<BTreeMap<String, String>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 255)]
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
    crate::observe::organization_id(text).map_err(|_| ApiError::NotFound {
        message: format!("Organization not found: '{text}'."),
    })
}

#[utoipa::path(
    post,
    path = "/organizations",
    tag = "organizations",
    operation_id = "OrganizationsController_create",
    summary = "Create an organization",
    request_body = CreateOrganizationDoc,
    responses(
        (status = 201, description = "The new organization.", body = OrganizationResponse),
        (status = 409, description = "A domain or `external_id` is already used.", body = ErrorResponse),
        (status = 422, description = "A field is not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn create_organization(
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

#[utoipa::path(
    get,
    path = "/organizations/{id}",
    tag = "organizations",
    operation_id = "OrganizationsController_find",
    summary = "Get an organization",
    params(("id" = String, Path, description = "The organization's id.", example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")),
    responses(
        (status = 200, description = "The organization.", body = OrganizationResponse),
        (status = 404, description = "No such organization.", body = ErrorResponse),
    ),
)]
pub(crate) async fn get_organization(
    State(state): State<AppState>,
    WirePath(id): WirePath,
) -> Result<Json<OrganizationResponse>, ApiError> {
    let id = parse_organization_id(&id)?;
    Ok(Json(state.store.get_organization(id).await?.into()))
}

#[utoipa::path(
    get,
    path = "/organizations/external_id/{external_id}",
    tag = "organizations",
    operation_id = "OrganizationsController_getByExternalId",
    summary = "Get an organization by its external id",
    params(("external_id" = String, Path, description = "The organization's external id.")),
    responses(
        (status = 200, description = "The organization.", body = OrganizationResponse),
        (status = 404, description = "No organization has this external id.", body = ErrorResponse),
    ),
)]
pub(crate) async fn get_organization_by_external_id(
    State(state): State<AppState>,
    WirePath(external_id): WirePath,
) -> Result<Json<OrganizationResponse>, ApiError> {
    Ok(Json(
        state.store.get_organization_by_external_id(&external_id).await?.into(),
    ))
}

#[utoipa::path(
    get,
    path = "/organizations",
    tag = "organizations",
    operation_id = "OrganizationsController_list",
    summary = "List organizations",
    params(PageParams, OrganizationListParams),
    responses(
        (status = 200, description = "A page of organizations.", body = ListResponse<OrganizationResponse>),
        (status = 422, description = "A parameter is not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn list_organizations(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<Json<ListResponse<OrganizationResponse>>, ApiError> {
    let mut errors = ValidationErrors::new();
    let page = page_request(&query, &mut errors, |text| {
        crate::observe::organization_id(text).map_err(|error| format!("not an organization id: {error}"))
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

#[utoipa::path(
    put,
    path = "/organizations/{id}",
    tag = "organizations",
    operation_id = "OrganizationsController_updateOrganization",
    summary = "Update an organization",
    params(("id" = String, Path, description = "The organization's id.", example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")),
    request_body = OrganizationBody,
    responses(
        (status = 200, description = "The updated organization.", body = OrganizationResponse),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 409, description = "A domain or `external_id` is already used.", body = ErrorResponse),
        (status = 422, description = "A field is not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn update_organization(
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

#[utoipa::path(
    delete,
    path = "/organizations/{id}",
    tag = "organizations",
    operation_id = "OrganizationsController_deleteOrganization",
    summary = "Delete an organization",
    description = "Answers 204 with no body (WorkOS documents 200 or 202, also with no body).",
    params(("id" = String, Path, description = "The organization's id.", example = "org_01EHWNCE74X7JSDV0X3SZ3KJNY")),
    responses(
        (status = 204, description = "Deleted, with its events and exports."),
        (status = 404, description = "No such organization.", body = ErrorResponse),
    ),
)]
pub(crate) async fn delete_organization(
    State(state): State<AppState>,
    WirePath(id): WirePath,
) -> Result<StatusCode, ApiError> {
    let id = parse_organization_id(&id)?;
    state.store.delete_organization(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
