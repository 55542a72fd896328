//! The canonical bytes of an event: what its Merkle leaf commits to.
//!
//! The bytes are RFC 8785 (JCS) canonical JSON of a versioned envelope holding everything the
//! event asserts, so anyone can read what was committed and re-derive it in any language: object
//! keys sorted, no insignificant white space, numbers in their shortest ECMAScript form, strings
//! minimally escaped. Equal events encode to equal bytes whatever key order or number spelling
//! they arrived with. The format is specified, with fixtures, in `docs/log-format.md`.

use serde_json::{Map, Value, json};

use crate::event::{Event, Metadata, metadata_to_json};

/// The envelope's format tag; a new encoding gets a new tag, never a changed meaning.
pub const EVENT_FORMAT_V1: &str = "vellum.audit_log_event.v1";

fn party(id: &str, party_type: &str, name: Option<&String>, metadata: Option<&Metadata>) -> Value {
    let mut object = Map::new();
    object.insert("id".into(), json!(id));
    object.insert("type".into(), json!(party_type));
    if let Some(name) = name {
        object.insert("name".into(), json!(name));
    }
    if let Some(metadata) = metadata {
        object.insert("metadata".into(), metadata_to_json(metadata));
    }
    Value::Object(object)
}

/// The envelope, as JSON (before canonicalisation).
pub fn event_envelope(event: &Event) -> Value {
    let input = &event.input;
    let mut context = Map::new();
    context.insert("location".into(), json!(input.context.location));
    if let Some(user_agent) = &input.context.user_agent {
        context.insert("user_agent".into(), json!(user_agent));
    }
    let mut envelope = Map::new();
    envelope.insert("format".into(), json!(EVENT_FORMAT_V1));
    envelope.insert("id".into(), json!(event.id.to_string()));
    envelope.insert("organization_id".into(), json!(event.organization_id.to_string()));
    envelope.insert("log_index".into(), json!(event.log_index));
    envelope.insert("action".into(), json!(input.action));
    envelope.insert("occurred_at".into(), json!(input.occurred_at.to_wire()));
    envelope.insert("received_at".into(), json!(event.received_at.to_wire()));
    envelope.insert("schema_version".into(), json!(event.schema_version));
    envelope.insert(
        "actor".into(),
        party(
            &input.actor.id,
            &input.actor.actor_type,
            input.actor.name.as_ref(),
            input.actor.metadata.as_ref(),
        ),
    );
    envelope.insert(
        "targets".into(),
        input
            .targets
            .iter()
            .map(|target| {
                party(
                    &target.id,
                    &target.target_type,
                    target.name.as_ref(),
                    target.metadata.as_ref(),
                )
            })
            .collect(),
    );
    envelope.insert("context".into(), Value::Object(context));
    if let Some(metadata) = &input.metadata {
        envelope.insert("metadata".into(), metadata_to_json(metadata));
    }
    Value::Object(envelope)
}

/// The canonical bytes of an event.
pub fn canonical_event_bytes(event: &Event) -> Vec<u8> {
    canonical_json(&event_envelope(event))
}

/// RFC 8785 canonical JSON of any value.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(value).expect("a serde_json value always canonicalises")
}

#[cfg(test)]
mod tests {
    //! Regression fixtures: events → canonical bytes → leaf hashes → roots. If the encoding
    //! drifts, these fail; a new encoding needs a new format tag and new fixtures, never edited
    //! ones. Regenerate the expected file only for a new format: `VELLUM_BLESS_FIXTURES=1`.

    use std::path::PathBuf;

    use serde_json::{Value, json};

    use super::*;
    use crate::event::{RawEvent, RawParty, validate_event};
    use crate::merkle::{Hash, leaf_hash, root_of};
    use crate::validation::ValidationErrors;
    use crate::{EventId, OrganizationId, Timestamp};

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-data/log-format")
    }

    fn text(value: &Value, name: &str) -> Option<String> {
        value.get(name).and_then(Value::as_str).map(str::to_owned)
    }

    fn party(value: &Value) -> RawParty {
        RawParty {
            id: text(value, "id"),
            party_type: text(value, "type"),
            name: text(value, "name"),
            metadata: value.get("metadata").and_then(Value::as_object).cloned(),
        }
    }

    fn event(input: &Value) -> Event {
        let body = &input["event"];
        let raw = RawEvent {
            action: text(body, "action"),
            occurred_at: text(body, "occurred_at"),
            version: body.get("version").and_then(Value::as_i64),
            actor: body.get("actor").map(party),
            targets: body
                .get("targets")
                .and_then(Value::as_array)
                .map(|targets| targets.iter().map(party).collect()),
            context: body
                .get("context")
                .map(|context| (text(context, "location"), text(context, "user_agent"))),
            metadata: body.get("metadata").and_then(Value::as_object).cloned(),
        };
        let mut errors = ValidationErrors::new();
        let input_event =
            validate_event(raw, "event", &mut errors).unwrap_or_else(|| panic!("fixture invalid: {errors}"));
        Event {
            id: EventId::parse(input["id"].as_str().unwrap()).unwrap(),
            organization_id: OrganizationId::parse(input["organization_id"].as_str().unwrap()).unwrap(),
            log_index: input["log_index"].as_u64().unwrap(),
            received_at: Timestamp::from_unix_millis(input["received_at_ms"].as_i64().unwrap()).unwrap(),
            schema_version: u32::try_from(input["schema_version"].as_u64().unwrap()).unwrap(),
            input: input_event,
        }
    }

    fn hex(hash: &Hash) -> String {
        hash.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn the_v1_encoding_matches_its_fixtures() {
        let inputs: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(fixtures().join("v1-input.json")).unwrap()).unwrap();
        let mut leaves = Vec::new();
        let mut entries = Vec::new();
        for input in &inputs {
            let bytes = canonical_event_bytes(&event(input));
            let leaf = leaf_hash(&bytes);
            leaves.push(leaf);
            entries.push(json!({
                "canonical": String::from_utf8(bytes).unwrap(),
                "leaf_hash": hex(&leaf),
                "root_after": hex(&root_of(&leaves)),
            }));
        }
        let actual =
            serde_json::to_string_pretty(&json!({ "format": EVENT_FORMAT_V1, "entries": entries })).unwrap() + "\n";
        let expected_path = fixtures().join("v1-expected.json");
        if std::env::var_os("VELLUM_BLESS_FIXTURES").is_some() {
            std::fs::write(&expected_path, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).expect("v1-expected.json exists");
        assert_eq!(actual, expected, "the canonical encoding drifted from its fixtures");
    }

    #[test]
    fn key_order_and_number_spelling_do_not_change_the_bytes() {
        let inputs: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(fixtures().join("v1-input.json")).unwrap()).unwrap();
        let mut respelled = inputs[1].clone();
        respelled["event"]["metadata"] = serde_json::from_str(
            r#"{"ratio": 1e-1, "big": 9.007199254740992e15, "negative": 0, "exponent": 100.0, "amount": 15e-1}"#,
        )
        .unwrap();
        assert_eq!(
            canonical_event_bytes(&event(&inputs[1])),
            canonical_event_bytes(&event(&respelled))
        );
    }
}
