//! WorkOS's legacy Audit Trail events: flat "who did what, and when" records (`group`,
//! `location`, `action`, `action_type` C/R/U/D, one actor, one target, string metadata), kept
//! as ordinary events of an organization so that they share its log, exports and listings.
//!
//! A legacy event becomes an [`EventInput`] with one actor of type [`ACTOR_TYPE`], one target of
//! type [`TARGET_TYPE`], `context.location`, its metadata, and the fields only the legacy API has
//! in [`AuditTrailFields`] (committed in the log as the envelope's `audit_trail` member). The
//! rules and the mapping are described in `docs/audit-trail.md`.

use sha2::{Digest, Sha256};

use crate::event::{
    Actor, Context, EventInput, MAX_ACTION_CHARS, MAX_METADATA_KEY_CHARS, MAX_METADATA_KEYS, MAX_METADATA_STRING_CHARS,
    MAX_TEXT_CHARS, Metadata, MetadataValue, Target, parse_occurred_at,
};
use crate::id::{AuditTrailActionId, Ulid};
use crate::json::{self, RawKind, RawObject};
use crate::organization::MAX_EXTERNAL_ID_CHARS;
use crate::validation::{ValidationErrors, has_control_characters};

/// The actor type a legacy event's actor is stored with (the legacy API has no actor types).
pub const ACTOR_TYPE: &str = "actor";
/// The target type a legacy event's target is stored with (the legacy API has no target types).
pub const TARGET_TYPE: &str = "target";

/// What a legacy event says that newer events have no field for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditTrailFields {
    /// The group as the client sent it (it chose the event's organization).
    pub group: String,
    /// `C`, `R`, `U` or `D`, in the case the client sent it.
    pub action_type: String,
    /// A latitude, when the client sent one.
    pub latitude: Option<String>,
    /// A longitude, when the client sent one.
    pub longitude: Option<String>,
}

impl AuditTrailFields {
    /// The CRUD letter in upper case, as filters compare it.
    pub fn crud(&self) -> String {
        self.action_type.to_ascii_uppercase()
    }
}

/// The `evt_action_` id of an action: the first 128 bits of SHA-256 over a fixed label and the
/// name. Stable across restarts, nodes and stores, and distinct for distinct names.
pub fn action_id(name: &str) -> AuditTrailActionId {
    let mut hasher = Sha256::new();
    hasher.update(b"vellum.audit_trail.action\0");
    hasher.update(name.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    AuditTrailActionId::from_ulid(Ulid::from_bytes(bytes))
}

/// Normalises a CRUD letter for a filter: `Some("R")` for `r` or `R`, `None` for anything else.
pub fn parse_crud(text: &str) -> Option<String> {
    match text {
        "C" | "R" | "U" | "D" | "c" | "r" | "u" | "d" => Some(text.to_ascii_uppercase()),
        _ => None,
    }
}

/// A text field of the flat body: present as a string, absent, or present with another type.
fn text_field(body: &RawObject, name: &str, errors: &mut ValidationErrors) -> Option<String> {
    match body.get(name).map(json::kind) {
        None | Some(RawKind::Null) => {
            errors.push(name, "required", format!("{name} must be a string"));
            None
        }
        Some(RawKind::String(text)) => Some(text),
        Some(_) => {
            errors.push(name, "invalid_type", format!("{name} must be a string"));
            None
        }
    }
}

fn bounded(text: Option<String>, name: &str, max_chars: usize, errors: &mut ValidationErrors) -> Option<String> {
    let text = text?;
    if text.chars().count() > max_chars {
        errors.push(
            name,
            "too_long",
            format!("{name} must be at most {max_chars} characters long"),
        );
        return None;
    }
    if has_control_characters(&text) {
        errors.push(name, "invalid", format!("{name} must not contain control characters"));
        return None;
    }
    Some(text)
}

fn non_empty(text: Option<String>, name: &str, errors: &mut ValidationErrors) -> Option<String> {
    match text {
        Some(text) if text.trim().is_empty() => {
            errors.push(name, "required", format!("{name} must be a non-empty string"));
            None
        }
        other => other,
    }
}

/// An optional coordinate: absent or null means none; a string or a number is kept as text. A
/// number obeys the one rule for numbers (`crate::json`), so it is kept with its value.
fn coordinate(body: &RawObject, name: &str, errors: &mut ValidationErrors) -> Option<String> {
    match body.get(name).map(json::kind) {
        None | Some(RawKind::Null) => None,
        Some(RawKind::String(text)) => bounded(Some(text), name, 64, errors),
        Some(RawKind::Number(text)) => match json::exact_number(text) {
            Ok(number) => Some(number.to_string()),
            Err(error) => {
                errors.push(name, "invalid_number", format!("{name}: {error}"));
                None
            }
        },
        Some(_) => {
            errors.push(name, "invalid_type", format!("{name} must be a string"));
            None
        }
    }
}

/// Legacy metadata: at most 50 keys of at most 40 printable ASCII characters, values strings of
/// at most 500 characters (numbers, under the one rule for numbers, and booleans are accepted
/// too).
fn metadata(body: &RawObject, errors: &mut ValidationErrors) -> Option<Metadata> {
    let raw = body.get("metadata")?;
    let object: RawObject = match json::kind(raw) {
        RawKind::Null => return None,
        RawKind::Object => match serde_json::from_str(raw.get()) {
            Ok(object) => object,
            Err(_) => {
                errors.push("metadata", "invalid_type", "metadata must be an object");
                return None;
            }
        },
        _ => {
            errors.push("metadata", "invalid_type", "metadata must be an object");
            return None;
        }
    };
    if object.len() > MAX_METADATA_KEYS {
        errors.push(
            "metadata",
            "too_many_keys",
            format!("metadata must have at most {MAX_METADATA_KEYS} keys"),
        );
        return None;
    }
    let mut metadata = Metadata::new();
    for (key, value) in object.iter() {
        let field = format!("metadata.{key}");
        // Printable ASCII only: keys sort the same in UTF-8 and in JCS's UTF-16 order.
        if key.chars().count() > MAX_METADATA_KEY_CHARS || !key.bytes().all(|byte| (0x20..0x7f).contains(&byte)) {
            errors.push(
                field,
                "invalid_key",
                format!("metadata keys must be at most {MAX_METADATA_KEY_CHARS} printable ASCII characters"),
            );
            continue;
        }
        let value = match json::kind(value) {
            RawKind::String(text) if text.chars().count() > MAX_METADATA_STRING_CHARS => {
                errors.push(
                    field,
                    "too_long",
                    format!("metadata values must be at most {MAX_METADATA_STRING_CHARS} characters long"),
                );
                continue;
            }
            RawKind::String(text) => MetadataValue::String(text),
            RawKind::Bool(flag) => MetadataValue::Bool(flag),
            RawKind::Number(text) => match json::exact_number(text) {
                Ok(number) => MetadataValue::Number(number),
                Err(error) => {
                    errors.push(field, "invalid_number", format!("metadata.{key}: {error}"));
                    continue;
                }
            },
            _ => {
                errors.push(field, "invalid_type", format!("metadata.{key} must be a string"));
                continue;
            }
        };
        metadata.insert(key.to_owned(), value);
    }
    Some(metadata)
}

/// Checks a legacy event's flat body (`POST /events`) and maps it onto an event. Every problem
/// is recorded in `errors`, with messages in the legacy API's style (`target_id must be a
/// string`); `None` when there was any.
pub fn validate_audit_trail_event(body: &RawObject, errors: &mut ValidationErrors) -> Option<EventInput> {
    let before = errors.errors().len();
    let group = text_field(body, "group", errors);
    // A group names an organization by id or external id, so it obeys the external id's limit.
    let group = bounded(
        non_empty(group, "group", errors),
        "group",
        MAX_EXTERNAL_ID_CHARS,
        errors,
    );
    let location = text_field(body, "location", errors);
    let location = bounded(location, "location", MAX_TEXT_CHARS, errors);
    let latitude = coordinate(body, "latitude", errors);
    let longitude = coordinate(body, "longitude", errors);
    let action = text_field(body, "action", errors);
    let action = bounded(non_empty(action, "action", errors), "action", MAX_ACTION_CHARS, errors);
    if let Some(action) = &action
        && crate::log_record::is_reserved_action(action)
    {
        errors.push("action", "invalid", crate::event::RESERVED_ACTION_MESSAGE);
    }
    let action_type = match text_field(body, "action_type", errors) {
        Some(text) if parse_crud(&text).is_some() => Some(text),
        Some(_) => {
            errors.push("action_type", "invalid", "action_type must be one of C, R, U or D");
            None
        }
        None => None,
    };
    let actor_name = bounded(
        text_field(body, "actor_name", errors),
        "actor_name",
        MAX_TEXT_CHARS,
        errors,
    );
    let actor_id = bounded(text_field(body, "actor_id", errors), "actor_id", MAX_TEXT_CHARS, errors);
    let target_name = bounded(
        text_field(body, "target_name", errors),
        "target_name",
        MAX_TEXT_CHARS,
        errors,
    );
    let target_id = bounded(
        text_field(body, "target_id", errors),
        "target_id",
        MAX_TEXT_CHARS,
        errors,
    );
    let occurred_at = match text_field(body, "occurred_at", errors) {
        Some(text) => {
            let parsed = parse_occurred_at(&text);
            if parsed.is_none() {
                errors.push(
                    "occurred_at",
                    "invalid_date",
                    "occurred_at must be an ISO 8601 date string",
                );
            }
            parsed
        }
        None => None,
    };
    let metadata = metadata(body, errors);
    if errors.errors().len() != before {
        return None;
    }
    Some(EventInput {
        action: action?,
        occurred_at: occurred_at?,
        version: None,
        actor: Actor {
            id: actor_id?,
            actor_type: ACTOR_TYPE.to_owned(),
            name: Some(actor_name?),
            metadata: None,
        },
        targets: vec![Target {
            id: target_id?,
            target_type: TARGET_TYPE.to_owned(),
            name: Some(target_name?),
            metadata: None,
        }],
        context: Context {
            location: location?,
            user_agent: None,
        },
        metadata,
        audit_trail: Some(AuditTrailFields {
            group: group?,
            action_type: action_type?,
            latitude,
            longitude,
        }),
        system: false,
    })
}

/// The flat fields of a stored legacy event, as `/events` shows them. `None` for an event that
/// did not come through the legacy API.
#[derive(Clone, Debug, PartialEq)]
pub struct FlatEvent<'a> {
    /// The legacy fields.
    pub fields: &'a AuditTrailFields,
    /// `actor.name`, empty when missing.
    pub actor_name: &'a str,
    /// `actor.id`.
    pub actor_id: &'a str,
    /// The target's name, empty when missing.
    pub target_name: &'a str,
    /// The target's id, empty when the event has no target.
    pub target_id: &'a str,
}

impl<'a> FlatEvent<'a> {
    /// Reads the flat fields out of a legacy event.
    pub fn of(input: &'a EventInput) -> Option<Self> {
        let fields = input.audit_trail.as_ref()?;
        let target = input.targets.first();
        Some(Self {
            fields,
            actor_name: input.actor.name.as_deref().unwrap_or_default(),
            actor_id: &input.actor.id,
            target_name: target.and_then(|target| target.name.as_deref()).unwrap_or_default(),
            target_id: target.map(|target| target.id.as_str()).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;

    fn body(value: Value) -> RawObject {
        match value {
            Value::Object(object) => RawObject::from(&object),
            other => panic!("not an object: {other}"),
        }
    }

    fn valid() -> Value {
        json!({
            "group": "foo-corp.com",
            "location": "192.0.2.8",
            "action": "document.updated",
            "action_type": "U",
            "actor_name": "jane@foo-corp.com",
            "actor_id": "user_1",
            "target_name": "Security Audit 2018",
            "target_id": "document_39127",
            "occurred_at": "2020-08-14T05:04:17.957Z",
            "metadata": {"description": "Edited the title", "x_request_id": ""}
        })
    }

    fn codes(value: Value) -> Vec<(String, String)> {
        let mut errors = ValidationErrors::new();
        assert!(validate_audit_trail_event(&body(value), &mut errors).is_none());
        errors
            .errors()
            .iter()
            .map(|error| (error.field.clone(), error.message.clone()))
            .collect()
    }

    #[test]
    fn a_flat_event_maps_onto_one_actor_one_target_and_its_legacy_fields() {
        let mut errors = ValidationErrors::new();
        let input = validate_audit_trail_event(&body(valid()), &mut errors).unwrap();
        assert_eq!(input.actor.actor_type, ACTOR_TYPE);
        assert_eq!(input.actor.name.as_deref(), Some("jane@foo-corp.com"));
        assert_eq!(input.targets.len(), 1);
        assert_eq!(input.targets[0].target_type, TARGET_TYPE);
        assert_eq!(input.context.location, "192.0.2.8");
        let fields = input.audit_trail.as_ref().unwrap();
        assert_eq!(fields.group, "foo-corp.com");
        assert_eq!(fields.crud(), "U");
        assert_eq!(fields.latitude, None);
        let flat = FlatEvent::of(&input).unwrap();
        assert_eq!(flat.target_id, "document_39127");
        assert_eq!(input.metadata.unwrap().len(), 2);
    }

    #[test]
    fn empty_names_and_ids_are_kept_but_group_and_action_are_required() {
        let mut event = valid();
        event["target_id"] = json!("");
        event["actor_name"] = json!("");
        event["location"] = json!("");
        event["action_type"] = json!("r");
        let input = validate_audit_trail_event(&body(event), &mut ValidationErrors::new()).unwrap();
        assert_eq!(input.targets[0].id, "");
        assert_eq!(input.audit_trail.unwrap().action_type, "r", "the case sent is kept");

        let mut event = valid();
        event["group"] = json!(" ");
        event["action"] = json!("");
        assert_eq!(
            codes(event),
            [
                ("group".to_owned(), "group must be a non-empty string".to_owned()),
                ("action".to_owned(), "action must be a non-empty string".to_owned()),
            ]
        );
    }

    #[test]
    fn every_field_error_is_named_in_the_legacy_style() {
        assert_eq!(
            codes(json!({})),
            [
                "group",
                "location",
                "action",
                "action_type",
                "actor_name",
                "actor_id",
                "target_name",
                "target_id",
                "occurred_at"
            ]
            .map(|name| (name.to_owned(), format!("{name} must be a string")))
        );
        let mut event = valid();
        event["target_id"] = json!(39127);
        event["action_type"] = json!("X");
        event["occurred_at"] = json!("yesterday");
        event["latitude"] = json!(["1"]);
        assert_eq!(
            codes(event),
            [
                ("latitude".to_owned(), "latitude must be a string".to_owned()),
                (
                    "action_type".to_owned(),
                    "action_type must be one of C, R, U or D".to_owned()
                ),
                ("target_id".to_owned(), "target_id must be a string".to_owned()),
                (
                    "occurred_at".to_owned(),
                    "occurred_at must be an ISO 8601 date string".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn metadata_limits() {
        let fifty: Map<String, Value> = (0..50).map(|n| (format!("k{n}"), json!("v"))).collect();
        let mut event = valid();
        event["metadata"] = Value::Object(fifty.clone());
        assert!(validate_audit_trail_event(&body(event), &mut ValidationErrors::new()).is_some());

        let mut many = fifty;
        many.insert("one_more".into(), json!("v"));
        let mut event = valid();
        event["metadata"] = Value::Object(many);
        assert_eq!(codes(event)[0].1, "metadata must have at most 50 keys");

        for (metadata, message) in [
            (
                json!({"k".repeat(41): "v"}),
                "metadata keys must be at most 40 printable ASCII characters",
            ),
            (
                json!({"clé": "v"}),
                "metadata keys must be at most 40 printable ASCII characters",
            ),
            (
                json!({"long": "x".repeat(501)}),
                "metadata values must be at most 500 characters long",
            ),
            (json!({"nested": {"a": "b"}}), "metadata.nested must be a string"),
            (json!("text"), "metadata must be an object"),
        ] {
            let mut event = valid();
            event["metadata"] = metadata.clone();
            assert_eq!(codes(event)[0].1, message, "{metadata}");
        }
        let mut event = valid();
        event["metadata"] = json!({"k".repeat(40): "x".repeat(500), "user.email": "a@b.c"});
        assert!(validate_audit_trail_event(&body(event), &mut ValidationErrors::new()).is_some());
    }

    /// The flat body exactly as a client wrote it.
    fn written(text: &str) -> RawObject {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn numbers_in_metadata_and_coordinates_obey_the_one_rule() {
        let mut event = valid();
        event.as_object_mut().unwrap().remove("metadata");
        let base = event.to_string();
        let with = |extra: &str| written(&format!("{}, {extra}}}", &base[..base.len() - 1]));
        for (extra, field) in [
            (r#""latitude": 123456789012345678901234567890"#, "latitude"),
            (r#""longitude": 0.10000000000000000001"#, "longitude"),
            (r#""latitude": 1e400"#, "latitude"),
            (r#""metadata": {"n": 18446744073709551615}"#, "metadata.n"),
            (r#""metadata": {"n": 123456789012345678901234567890}"#, "metadata.n"),
        ] {
            let mut errors = ValidationErrors::new();
            assert!(
                validate_audit_trail_event(&with(extra), &mut errors).is_none(),
                "{extra}"
            );
            assert_eq!(errors.errors()[0].field, field, "{extra}");
        }
        let input = validate_audit_trail_event(
            &with(r#""latitude": 40.7128, "longitude": -74.0060, "metadata": {"n": 9007199254740992, "f": 0.5}"#),
            &mut ValidationErrors::new(),
        )
        .unwrap();
        let fields = input.audit_trail.unwrap();
        assert_eq!(fields.latitude.as_deref(), Some("40.7128"));
        assert_eq!(fields.longitude.as_deref(), Some("-74.006"));
        assert_eq!(
            input.metadata.unwrap()["n"],
            MetadataValue::Number(9_007_199_254_740_992u64.into())
        );
    }

    #[test]
    fn action_ids_are_stable_and_distinct() {
        assert_eq!(action_id("user.login"), action_id("user.login"));
        assert_ne!(action_id("user.login"), action_id("user.logout"));
        let text = action_id("user.login").to_string();
        assert!(text.starts_with("evt_action_"));
        assert_eq!(AuditTrailActionId::parse(&text), Ok(action_id("user.login")));
    }

    #[test]
    fn crud_filters_ignore_case() {
        assert_eq!(parse_crud("d").as_deref(), Some("D"));
        assert_eq!(parse_crud("R").as_deref(), Some("R"));
        assert_eq!(parse_crud("read"), None);
        assert_eq!(parse_crud(""), None);
    }
}
