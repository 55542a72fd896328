//! Event schemas: for each action, immutable numbered versions that say which target types an
//! event may name and, optionally, JSON Schemas its event, actor and target metadata must meet.
//!
//! JSON Schemas are compiled once per version ([`CompiledSchema`]) and cached by the caller.
//! Remote `$ref`s are never fetched: the `jsonschema` crate is built without its HTTP and file
//! resolvers, so a schema that refers outside itself is refused when it is created.

use std::collections::HashMap;

use serde_json::Value;

use crate::event::{EventInput, Metadata, metadata_to_json};
use crate::validation::{ValidationErrors, has_control_characters};

/// The longest action name, in characters.
pub const MAX_ACTION_NAME_CHARS: usize = crate::event::MAX_ACTION_CHARS;
/// The most target types one schema allows.
pub const MAX_SCHEMA_TARGETS: usize = 100;

/// One allowed target type and its optional metadata schema.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetSchema {
    /// The target type.
    pub target_type: String,
    /// A JSON Schema for the target's metadata.
    pub metadata: Option<Value>,
}

/// What a schema version says, exactly as it was created.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaDefinition {
    /// The allowed target types (at least one).
    pub targets: Vec<TargetSchema>,
    /// A JSON Schema for the actor's metadata.
    pub actor_metadata: Option<Value>,
    /// A JSON Schema for the event's metadata.
    pub metadata: Option<Value>,
}

/// A problem with an event measured against its schema, in Ajv's terms: a JSON Pointer into the
/// event (`/targets/0/type`) and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaViolation {
    /// A JSON Pointer into the event.
    pub instance_path: String,
    /// What is wrong.
    pub message: String,
}

/// Checks an action name: 1 to 128 characters, no whitespace, control characters or `/`.
pub fn validate_action_name(name: &str, errors: &mut ValidationErrors) -> bool {
    if name.is_empty() || name.chars().count() > MAX_ACTION_NAME_CHARS {
        errors.push(
            "action",
            "invalid",
            format!("an action name is 1 to {MAX_ACTION_NAME_CHARS} characters long"),
        );
        return false;
    }
    if name
        .chars()
        .any(|character| character.is_whitespace() || character == '/')
        || has_control_characters(name)
    {
        errors.push(
            "action",
            "invalid",
            "an action name has no whitespace, control characters or `/`",
        );
        return false;
    }
    if crate::log_record::is_reserved_action(name) {
        errors.push("action", "invalid", crate::event::RESERVED_ACTION_MESSAGE);
        return false;
    }
    true
}

/// Rules a definition meets to be stored as a new version, beyond what [`CompiledSchema::compile`]
/// checks: target types have no control characters, as event target types cannot have them.
/// (Kept out of `compile`, which also compiles versions stored before the rule, so that those
/// keep working.)
pub fn validate_new_definition(definition: &SchemaDefinition, errors: &mut ValidationErrors) {
    for (index, target) in definition.targets.iter().enumerate() {
        if has_control_characters(&target.target_type) {
            errors.push(
                format!("targets.{index}.type"),
                "invalid",
                "a target type must not contain control characters",
            );
        }
    }
}

fn compile(schema: &Value, field: &str, errors: &mut ValidationErrors) -> Option<jsonschema::Validator> {
    let Some(object) = schema.as_object() else {
        errors.push(field, "invalid_schema", format!("{field} must be a JSON Schema object"));
        return None;
    };
    if let Some(schema_type) = object.get("type")
        && schema_type != "object"
    {
        errors.push(
            field,
            "invalid_schema",
            format!("{field} describes metadata, an object: its `type` must be \"object\""),
        );
        return None;
    }
    match jsonschema::options().build(schema) {
        Ok(validator) => Some(validator),
        Err(error) => {
            errors.push(
                field,
                "invalid_schema",
                format!("{field} is not a valid JSON Schema: {error}"),
            );
            None
        }
    }
}

/// A schema version ready to check events: its definition with every JSON Schema compiled.
pub struct CompiledSchema {
    definition: SchemaDefinition,
    actor_metadata: Option<jsonschema::Validator>,
    metadata: Option<jsonschema::Validator>,
    targets: HashMap<String, Option<jsonschema::Validator>>,
}

impl std::fmt::Debug for CompiledSchema {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CompiledSchema")
            .field("definition", &self.definition)
            .finish_non_exhaustive()
    }
}

impl CompiledSchema {
    /// Checks and compiles a definition. Errors name the request fields (`targets.0.metadata`).
    pub fn compile(definition: SchemaDefinition) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if definition.targets.is_empty() {
            errors.push("targets", "required", "a schema allows at least one target type");
        }
        if definition.targets.len() > MAX_SCHEMA_TARGETS {
            errors.push(
                "targets",
                "too_many",
                format!("a schema allows at most {MAX_SCHEMA_TARGETS} target types"),
            );
        }
        let mut targets = HashMap::new();
        for (index, target) in definition.targets.iter().enumerate() {
            let type_ok =
                !target.target_type.is_empty() && target.target_type.chars().count() <= crate::event::MAX_TEXT_CHARS;
            if !type_ok {
                errors.push(
                    format!("targets.{index}.type"),
                    "required",
                    "a target type is a non-empty string",
                );
                continue;
            }
            if targets.contains_key(&target.target_type) {
                errors.push(
                    format!("targets.{index}.type"),
                    "duplicate",
                    format!("target type `{}` is listed twice", target.target_type),
                );
                continue;
            }
            let validator = match &target.metadata {
                Some(schema) => compile(schema, &format!("targets.{index}.metadata"), &mut errors),
                None => None,
            };
            targets.insert(target.target_type.clone(), validator);
        }
        let actor_metadata = match &definition.actor_metadata {
            Some(schema) => compile(schema, "actor.metadata", &mut errors),
            None => None,
        };
        let metadata = match &definition.metadata {
            Some(schema) => compile(schema, "metadata", &mut errors),
            None => None,
        };
        errors.into_result(Self {
            definition,
            actor_metadata,
            metadata,
            targets,
        })
    }

    /// The definition this was compiled from.
    pub fn definition(&self) -> &SchemaDefinition {
        &self.definition
    }

    /// Checks an event; an empty list means it conforms.
    pub fn check(&self, event: &EventInput) -> Vec<SchemaViolation> {
        let mut violations = Vec::new();
        check_metadata(
            self.actor_metadata.as_ref(),
            event.actor.metadata.as_ref(),
            "/actor/metadata",
            &mut violations,
        );
        for (index, target) in event.targets.iter().enumerate() {
            match self.targets.get(&target.target_type) {
                None => violations.push(SchemaViolation {
                    instance_path: format!("/targets/{index}/type"),
                    message: format!(
                        "target type `{}` is not allowed for this action (allowed: {})",
                        target.target_type,
                        self.allowed_target_types().join(", ")
                    ),
                }),
                Some(validator) => check_metadata(
                    validator.as_ref(),
                    target.metadata.as_ref(),
                    &format!("/targets/{index}/metadata"),
                    &mut violations,
                ),
            }
        }
        check_metadata(
            self.metadata.as_ref(),
            event.metadata.as_ref(),
            "/metadata",
            &mut violations,
        );
        violations
    }

    fn allowed_target_types(&self) -> Vec<&str> {
        self.definition
            .targets
            .iter()
            .map(|target| target.target_type.as_str())
            .collect()
    }
}

/// Checks metadata against a compiled JSON Schema; absent metadata is checked as `{}`, so that
/// `required` keys are enforced.
fn check_metadata(
    validator: Option<&jsonschema::Validator>,
    metadata: Option<&Metadata>,
    base_path: &str,
    violations: &mut Vec<SchemaViolation>,
) {
    let Some(validator) = validator else {
        return;
    };
    let instance = metadata.map_or_else(|| Value::Object(serde_json::Map::new()), metadata_to_json);
    for error in validator.iter_errors(&instance) {
        violations.push(SchemaViolation {
            instance_path: format!("{base_path}{}", error.instance_path().as_str()),
            message: error.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::{Actor, Context, MetadataValue, Target};
    use crate::timestamp::Timestamp;

    fn definition() -> SchemaDefinition {
        SchemaDefinition {
            targets: vec![
                TargetSchema {
                    target_type: "team".into(),
                    metadata: None,
                },
                TargetSchema {
                    target_type: "invoice".into(),
                    metadata: Some(
                        json!({"type": "object", "properties": {"cost": {"type": "number"}}, "required": ["cost"]}),
                    ),
                },
            ],
            actor_metadata: Some(json!({"type": "object", "properties": {"role": {"type": "string"}}})),
            metadata: Some(json!({"type": "object", "properties": {"ok": {"type": "boolean"}}})),
        }
    }

    fn event(targets: Vec<Target>) -> EventInput {
        EventInput {
            action: "user.paid".into(),
            occurred_at: Timestamp::from_unix_millis(0).unwrap(),
            version: None,
            actor: Actor {
                id: "u".into(),
                actor_type: "user".into(),
                name: None,
                metadata: None,
            },
            targets,
            context: Context {
                location: "::1".into(),
                user_agent: None,
            },
            metadata: None,
            audit_trail: None,
            system: false,
        }
    }

    fn target(target_type: &str, metadata: Option<Metadata>) -> Target {
        Target {
            id: "t".into(),
            target_type: target_type.into(),
            name: None,
            metadata,
        }
    }

    #[test]
    fn conforming_events_pass() {
        let schema = CompiledSchema::compile(definition()).unwrap();
        let cost: Metadata = [("cost".to_owned(), MetadataValue::Number(5.into()))].into();
        assert!(
            schema
                .check(&event(vec![target("team", None), target("invoice", Some(cost))]))
                .is_empty()
        );
    }

    #[test]
    fn violations_point_into_the_event() {
        let schema = CompiledSchema::compile(definition()).unwrap();
        let wrong_cost: Metadata = [("cost".to_owned(), MetadataValue::String("free".into()))].into();
        let mut checked = event(vec![
            target("repo", None),
            target("invoice", Some(wrong_cost)),
            target("invoice", None),
        ]);
        checked.actor.metadata = Some([("role".to_owned(), MetadataValue::Bool(true))].into());
        let paths: Vec<_> = schema
            .check(&checked)
            .into_iter()
            .map(|violation| violation.instance_path)
            .collect();
        assert_eq!(
            paths,
            [
                "/actor/metadata/role",
                "/targets/0/type",
                "/targets/1/metadata/cost",
                "/targets/2/metadata"
            ]
        );
    }

    #[test]
    fn bad_definitions_are_refused_with_the_field() {
        let fields = |definition: SchemaDefinition| -> Vec<String> {
            CompiledSchema::compile(definition)
                .unwrap_err()
                .errors()
                .iter()
                .map(|error| error.field.clone())
                .collect()
        };
        assert_eq!(
            fields(SchemaDefinition {
                targets: vec![],
                actor_metadata: None,
                metadata: None
            }),
            ["targets"]
        );
        let mut bad = definition();
        bad.targets.push(TargetSchema {
            target_type: "team".into(),
            metadata: None,
        });
        bad.metadata = Some(json!({"type": "string"}));
        bad.actor_metadata = Some(json!({"type": "object", "properties": {"x": {"type": "no-such-type"}}}));
        assert_eq!(fields(bad), ["targets.2.type", "actor.metadata", "metadata"]);
        let mut remote = definition();
        remote.metadata = Some(json!({"$ref": "https://example.com/schema.json"}));
        assert_eq!(fields(remote), ["metadata"], "remote references are never fetched");
    }

    #[test]
    fn new_target_types_and_action_names_refuse_control_characters() {
        let mut bad = definition();
        bad.targets[1].target_type = "in\u{1b}[31mvoice".into();
        let mut errors = ValidationErrors::new();
        validate_new_definition(&bad, &mut errors);
        assert_eq!(errors.errors()[0].field, "targets.1.type");
        let mut errors = ValidationErrors::new();
        validate_new_definition(&definition(), &mut errors);
        assert!(errors.is_empty());
        for name in ["user\u{0}x", "user.\u{7f}", "user.\u{9b}x", "a b", "a/b"] {
            assert!(!validate_action_name(name, &mut ValidationErrors::new()), "{name:?}");
        }
        assert!(validate_action_name("user.signed_in", &mut ValidationErrors::new()));
    }
}
