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
