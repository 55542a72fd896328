//! `/audit_logs/actions`: actions and their immutable, versioned schemas, plus the cache of
//! compiled schemas that event ingest validates against.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use vellum_core::schema::{
    CompiledSchema, SchemaDefinition, TargetSchema, validate_action_name, validate_new_definition,
};
use vellum_core::{ActionId, SchemaId, ValidationErrors};
use vellum_store::{ActionSummary, StoredSchema};

use crate::AppState;
use crate::error::{ApiError, ErrorResponse, ValidationError};
use crate::extract::{QueryPairs, WireJson, WirePath};
use crate::wire::{ListResponse, PageParams, page_request, wire_const};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/audit_logs/actions", get(list_actions)).route(
        "/audit_logs/actions/{action}/schemas",
        get(list_schemas).post(create_schema),
    )
}

wire_const!(
    /// `"audit_log_schema"`.
    SchemaObject = "audit_log_schema"
);
wire_const!(
    /// `"audit_log_action"`.
    ActionObject = "audit_log_action"
);

/// A version of an action's schema.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogSchemaJson)]
pub(crate) struct SchemaResponse {
    object: SchemaObject,
    /// From 1, one more for each new definition.
    version: u32,
    targets: Vec<SchemaTargetResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<SchemaActorResponse>,
    /// A JSON Schema for the event's `metadata`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    #[schema(format = DateTime)]
    created_at: String,
}

/// A target type an action allows, with a JSON Schema for its `metadata`.
#[derive(Serialize, ToSchema)]
pub(crate) struct SchemaTargetResponse {
    #[serde(rename = "type")]
    #[schema(example = "invoice")]
    target_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

/// A JSON Schema for the actor's `metadata`.
#[derive(Serialize, ToSchema)]
pub(crate) struct SchemaActorResponse {
    #[schema(value_type = Object)]
    metadata: Value,
}

impl From<&StoredSchema> for SchemaResponse {
    fn from(schema: &StoredSchema) -> Self {
        let definition = &schema.definition;
        Self {
            object: SchemaObject::Value,
            version: schema.version,
            targets: definition
                .targets
                .iter()
                .map(|target| SchemaTargetResponse {
                    target_type: target.target_type.clone(),
                    metadata: target.metadata.clone(),
                })
                .collect(),
            actor: definition
                .actor_metadata
                .clone()
                .map(|metadata| SchemaActorResponse { metadata }),
            metadata: definition.metadata.clone(),
            created_at: schema.created_at.to_wire(),
        }
    }
}

/// The wire form of a schema version (for the CLI, which prints it).
pub fn schema_json(schema: &StoredSchema) -> Value {
    serde_json::to_value(SchemaResponse::from(schema)).unwrap_or_default()
}

/// An action, with its latest schema.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditLogActionJson)]
pub(crate) struct ActionResponse {
    object: ActionObject,
    #[schema(example = "user.viewed_invoice")]
    name: String,
    schema: SchemaResponse,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<&ActionSummary> for ActionResponse {
    fn from(action: &ActionSummary) -> Self {
        Self {
            object: ActionObject::Value,
            name: action.name.clone(),
            schema: SchemaResponse::from(&action.latest),
            created_at: action.created_at.to_wire(),
            updated_at: action.updated_at.to_wire(),
        }
    }
}

/// A target type of a new schema.
#[derive(Deserialize, ToSchema)]
#[schema(as = AuditLogSchemaTargetDto)]
pub(crate) struct TargetBody {
    #[serde(rename = "type")]
    #[schema(required = true, value_type = String, example = "invoice")]
    target_type: Option<String>,
    /// A JSON Schema for the target's `metadata`.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

/// The actor of a new schema.
#[derive(Deserialize, ToSchema)]
#[schema(as = AuditLogSchemaActorDto)]
pub(crate) struct ActorBody {
    /// A JSON Schema for the actor's `metadata`.
    #[schema(required = true, value_type = Object)]
    metadata: Option<Value>,
}

/// A new schema for an action.
#[derive(Deserialize, ToSchema)]
#[schema(as = AuditLogSchemaDto)]
pub(crate) struct CreateSchemaBody {
    /// The target types the action allows.
    #[serde(default, deserialize_with = "crate::wire::objects_or_null")]
    #[schema(required = true, value_type = Vec<TargetBody>, min_items = 1)]
    targets: Option<Vec<TargetBody>>,
    #[serde(default, deserialize_with = "crate::wire::object_or_null")]
    actor: Option<ActorBody>,
    /// A JSON Schema for the event's `metadata`.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

/// Reads a schema definition in its wire form (`{targets, actor?, metadata?}`), checks it and
/// compiles it. Shared by the API and the CLI.
pub fn schema_definition_from_json(value: Value) -> Result<SchemaDefinition, ValidationErrors> {
    let body: CreateSchemaBody = serde_path_to_error::deserialize(value)
        .map(|crate::wire::ObjectOnly(body)| body)
        .map_err(|error| {
            let path = error.path().to_string().replace('[', ".").replace(']', "");
            let mut errors = ValidationErrors::new();
            errors.push(
                if path == "." { "body".to_owned() } else { path },
                "invalid_type",
                error.into_inner().to_string(),
            );
            errors
        })?;
    let mut errors = ValidationErrors::new();
    let Some(targets) = body.targets else {
        errors.push(
            "targets",
            "required",
            "targets is required: the target types this action allows",
        );
        return Err(errors);
    };
    let mut target_schemas = Vec::with_capacity(targets.len());
    for (index, target) in targets.into_iter().enumerate() {
        match target.target_type {
            Some(target_type) => target_schemas.push(TargetSchema {
                target_type,
                metadata: target.metadata,
            }),
            None => errors.push(format!("targets.{index}.type"), "required", "each target needs a type"),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let definition = SchemaDefinition {
        targets: target_schemas,
        actor_metadata: body.actor.and_then(|actor| actor.metadata),
        metadata: body.metadata,
    };
    validate_new_definition(&definition, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    // Compile before anything is stored, so a schema that cannot be used never is.
    CompiledSchema::compile(definition.clone())?;
    Ok(definition)
}

#[utoipa::path(
    post,
    path = "/audit_logs/actions/{action}/schemas",
    tag = "audit-logs",
    operation_id = "AuditLogValidatorVersionsController_create",
    summary = "Create a schema for an action",
    description = "Creates the action if it does not exist. A definition equal to the latest version's creates nothing and answers that version, also with 201.",
    params(("action" = String, Path, description = "The action's name.", example = "user.logged_in")),
    request_body = CreateSchemaBody,
    responses(
        (status = 201, description = "The new (or equal latest) version.", body = SchemaResponse),
        (status = 422, description = "The action name or the definition is not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn create_schema(
    State(state): State<AppState>,
    WirePath(action): WirePath,
    WireJson(body): WireJson<Value>,
) -> Result<(StatusCode, Json<SchemaResponse>), ApiError> {
    let mut errors = ValidationErrors::new();
    validate_action_name(&action, &mut errors);
    if !body.is_object() {
        errors.push("body", "invalid_type", "the body is a JSON object");
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let definition = schema_definition_from_json(body)?;
    let stored = state.store.create_schema(action, definition).await?.schema;
    state.ingest.schema_created(stored.clone())?;
    // A definition equal to the latest version's creates nothing and answers with that version,
    // still with 201: WorkOS's spec lists 201 as the only success of this operation, and
    // clients tell the two cases apart by `version`.
    Ok((StatusCode::CREATED, Json(SchemaResponse::from(&stored))))
}

#[utoipa::path(
    get,
    path = "/audit_logs/actions",
    tag = "audit-logs",
    operation_id = "AuditLogValidatorsController_list",
    summary = "List actions",
    params(PageParams),
    responses(
        (status = 200, description = "A page of actions, each with its latest schema.", body = ListResponse<ActionResponse>),
        (status = 422, description = "A parameter is not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn list_actions(
    State(state): State<AppState>,
    query: QueryPairs,
) -> Result<Json<ListResponse<ActionResponse>>, ApiError> {
    let mut errors = ValidationErrors::new();
    let page = page_request(&query, &mut errors, |text| {
        ActionId::parse(text).map_err(|error| format!("not an action cursor: {error}"))
    });
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let page = state.store.list_actions(page).await?;
    Ok(Json(ListResponse::from_page(page, |action| {
        ActionResponse::from(&action)
    })))
}

#[utoipa::path(
    get,
    path = "/audit_logs/actions/{action}/schemas",
    tag = "audit-logs",
    operation_id = "AuditLogValidatorVersionsController_schemas",
    summary = "List an action's schemas",
    params(("action" = String, Path, description = "The action's name.", example = "user.logged_in"), PageParams),
    responses(
        (status = 200, description = "A page of the action's schema versions.", body = ListResponse<SchemaResponse>),
        (status = 404, description = "No such action.", body = ErrorResponse),
        (status = 422, description = "A parameter is not acceptable.", body = ValidationError),
    ),
)]
pub(crate) async fn list_schemas(
    State(state): State<AppState>,
    WirePath(action): WirePath,
    query: QueryPairs,
) -> Result<Json<ListResponse<SchemaResponse>>, ApiError> {
    let mut errors = ValidationErrors::new();
    let page = page_request(&query, &mut errors, |text| {
        SchemaId::parse(text).map_err(|error| format!("not a schema cursor: {error}"))
    });
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let page = state.store.list_schemas(&action, page).await?;
    Ok(Json(ListResponse::from_page(page, |schema| {
        SchemaResponse::from(&schema)
    })))
}
