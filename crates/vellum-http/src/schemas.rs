//! `/audit_logs/actions`: actions and their immutable, versioned schemas, plus the cache of
//! compiled schemas that event ingest validates against.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use vellum_core::schema::{
    CompiledSchema, SchemaDefinition, TargetSchema, validate_action_name, validate_new_definition,
};
use vellum_core::{ActionId, SchemaId, ValidationErrors};
use vellum_store::{ActionSummary, StoredSchema};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{QueryPairs, WireJson, WirePath};
use crate::wire::{ListResponse, page_request};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/audit_logs/actions", get(list_actions)).route(
        "/audit_logs/actions/{action}/schemas",
        get(list_schemas).post(create_schema),
    )
}

/// The wire form of a schema version.
pub fn schema_json(schema: &StoredSchema) -> Value {
    let mut object = Map::new();
    object.insert("object".into(), json!("audit_log_schema"));
    object.insert("version".into(), json!(schema.version));
    let targets: Vec<Value> = schema
        .definition
        .targets
        .iter()
        .map(|target| match &target.metadata {
            Some(metadata) => json!({"type": target.target_type, "metadata": metadata}),
            None => json!({"type": target.target_type}),
        })
        .collect();
    object.insert("targets".into(), targets.into());
    if let Some(actor_metadata) = &schema.definition.actor_metadata {
        object.insert("actor".into(), json!({"metadata": actor_metadata}));
    }
    if let Some(metadata) = &schema.definition.metadata {
        object.insert("metadata".into(), metadata.clone());
    }
    object.insert("created_at".into(), json!(schema.created_at.to_wire()));
    Value::Object(object)
}

fn action_json(action: &ActionSummary) -> Value {
    json!({
        "object": "audit_log_action",
        "name": action.name,
        "schema": schema_json(&action.latest),
        "created_at": action.created_at.to_wire(),
        "updated_at": action.updated_at.to_wire(),
    })
}

#[derive(Deserialize)]
struct TargetBody {
    #[serde(rename = "type")]
    target_type: Option<String>,
    metadata: Option<Value>,
}

#[derive(Deserialize)]
struct ActorBody {
    metadata: Option<Value>,
}

#[derive(Deserialize)]
struct CreateSchemaBody {
    #[serde(default, deserialize_with = "crate::wire::objects_or_null")]
    targets: Option<Vec<TargetBody>>,
    #[serde(default, deserialize_with = "crate::wire::object_or_null")]
    actor: Option<ActorBody>,
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

async fn create_schema(
    State(state): State<AppState>,
    WirePath(action): WirePath,
    WireJson(body): WireJson<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(schema_json(&stored))))
}

async fn list_actions(State(state): State<AppState>, query: QueryPairs) -> Result<Json<ListResponse<Value>>, ApiError> {
    let mut errors = ValidationErrors::new();
    let page = page_request(&query, &mut errors, |text| {
        ActionId::parse(text).map_err(|error| format!("not an action cursor: {error}"))
    });
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let page = state.store.list_actions(page).await?;
    Ok(Json(ListResponse::from_page(page, |action| action_json(&action))))
}

async fn list_schemas(
    State(state): State<AppState>,
    WirePath(action): WirePath,
    query: QueryPairs,
) -> Result<Json<ListResponse<Value>>, ApiError> {
    let mut errors = ValidationErrors::new();
    let page = page_request(&query, &mut errors, |text| {
        SchemaId::parse(text).map_err(|error| format!("not a schema cursor: {error}"))
    });
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let page = state.store.list_schemas(&action, page).await?;
    Ok(Json(ListResponse::from_page(page, |schema| schema_json(&schema))))
}
