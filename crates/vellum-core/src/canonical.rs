//! The canonical bytes of an event: what its Merkle leaf commits to.
//!
//! The bytes are RFC 8785 (JCS) canonical JSON of a versioned envelope holding everything the
//! event asserts, so anyone can read what was committed and re-derive it in any language: object
//! keys sorted, no insignificant white space, numbers in their shortest ECMAScript form, strings
//! minimally escaped. Equal events encode to equal bytes whatever key order or number spelling
//! they arrived with. The format is specified, with fixtures, in `docs/log-format.md`.

use serde_json::{Map, Value, json};

use crate::audit_trail::AuditTrailFields;
use crate::event::{Event, Metadata, MetadataValue, metadata_to_json};

/// The envelope's format tag; a new encoding gets a new tag, never a changed meaning.
pub const EVENT_FORMAT_V1: &str = "vellum.audit_log_event.v1";

/// The envelope's format tag for events whose parties are sealed ([`crate::seal`]): the leaf
/// holds each party's seal and type instead of its personal fields, and no `context`.
pub const EVENT_FORMAT_V2: &str = "vellum.audit_log_event.v2";

/// The format tag of an entry Vellum itself recorded (a purge, a legal hold): the same envelope,
/// so that no client's event can ever have the bytes of one of Vellum's records.
pub const RECORD_FORMAT_V1: &str = "vellum.log_record.v1";

/// The format tag of an event's envelope.
pub fn format_of(event: &Event) -> &'static str {
    if event.input.system {
        RECORD_FORMAT_V1
    } else if event.seals.is_some() {
        EVENT_FORMAT_V2
    } else {
        EVENT_FORMAT_V1
    }
}

/// Whether an event's leaf can be recomputed from what the store holds: always, except for an
/// event of format v1 that an erasure redacted (its leaf committed to the values themselves).
pub fn leaf_is_recomputable(event: &Event) -> bool {
    event.seals.is_some() || event.erased_by.is_empty()
}

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
    envelope.insert("format".into(), json!(format_of(event)));
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
    if let Some(fields) = &input.audit_trail {
        let mut audit_trail = Map::new();
        audit_trail.insert("action_type".into(), json!(fields.action_type));
        audit_trail.insert("group".into(), json!(fields.group));
        if let Some(latitude) = &fields.latitude {
            audit_trail.insert("latitude".into(), json!(latitude));
        }
        if let Some(longitude) = &fields.longitude {
            audit_trail.insert("longitude".into(), json!(longitude));
        }
        envelope.insert("audit_trail".into(), Value::Object(audit_trail));
    }
    if let Some(metadata) = &input.metadata {
        envelope.insert("metadata".into(), metadata_to_json(metadata));
    }
    Value::Object(envelope)
}

/// The envelope the leaf commits to, as JSON (before canonicalisation): [`event_envelope`] for
/// an event of format v1; for v2, each party holds its seal and type, and there is no `context`
/// and no legacy latitude or longitude (they are sealed with the actor).
pub fn leaf_envelope(event: &Event) -> Value {
    let mut envelope = event_envelope(event);
    let Some(seals) = &event.seals else {
        return envelope;
    };
    let sealed = |seal: crate::merkle::Hash, party_type: &str| json!({"seal": crate::seal::seal_text(&seal), "type": party_type});
    let input = &event.input;
    envelope["actor"] = sealed(seals.actor_seal(input), &input.actor.actor_type);
    envelope["targets"] = input
        .targets
        .iter()
        .enumerate()
        .map(|(index, target)| sealed(seals.target_seal(index, target).unwrap_or([0; 32]), &target.target_type))
        .collect();
    if let Value::Object(members) = &mut envelope {
        members.remove("context");
        if let Some(Value::Object(legacy)) = members.get_mut("audit_trail") {
            legacy.remove("latitude");
            legacy.remove("longitude");
        }
    }
    envelope
}

/// A JSON string as JCS writes it: `"`, `\\` and control characters escaped (`\b \t \n \f \r`
/// short, others `\u00xx`), everything else literal. serde_json's compact writer does exactly this.
fn push_string(buffer: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *buffer, text).expect("writing a string to memory cannot fail");
}

/// Appends a metadata object as canonical (JCS) JSON.
pub fn write_metadata_json(buffer: &mut Vec<u8>, metadata: &Metadata) {
    push_metadata(buffer, metadata);
}

/// A metadata object: keys are ASCII (validated at ingest), so byte order is JCS's UTF-16 order;
/// numbers take ECMAScript's shortest form.
fn push_metadata(buffer: &mut Vec<u8>, metadata: &Metadata) {
    buffer.push(b'{');
    for (index, (key, value)) in metadata.iter().enumerate() {
        if index > 0 {
            buffer.push(b',');
        }
        push_string(buffer, key);
        buffer.push(b':');
        match value {
            MetadataValue::String(text) => push_string(buffer, text),
            MetadataValue::Bool(true) => buffer.extend_from_slice(b"true"),
            MetadataValue::Bool(false) => buffer.extend_from_slice(b"false"),
            MetadataValue::Number(number) => {
                buffer.extend_from_slice(&canonical_json(&Value::Number(number.clone())));
            }
        }
    }
    buffer.push(b'}');
}

/// The `audit_trail` member of a legacy event (members in JCS order), led by its comma.
fn push_audit_trail(buffer: &mut Vec<u8>, fields: Option<&AuditTrailFields>) {
    let Some(fields) = fields else {
        return;
    };
    buffer.extend_from_slice(b",\"audit_trail\":{\"action_type\":");
    push_string(buffer, &fields.action_type);
    buffer.extend_from_slice(b",\"group\":");
    push_string(buffer, &fields.group);
    if let Some(latitude) = &fields.latitude {
        buffer.extend_from_slice(b",\"latitude\":");
        push_string(buffer, latitude);
    }
    if let Some(longitude) = &fields.longitude {
        buffer.extend_from_slice(b",\"longitude\":");
        push_string(buffer, longitude);
    }
    buffer.push(b'}');
}

fn push_party(buffer: &mut Vec<u8>, id: &str, party_type: &str, name: Option<&str>, metadata: Option<&Metadata>) {
    buffer.extend_from_slice(b"{\"id\":");
    push_string(buffer, id);
    if let Some(metadata) = metadata {
        buffer.extend_from_slice(b",\"metadata\":");
        push_metadata(buffer, metadata);
    }
    if let Some(name) = name {
        buffer.extend_from_slice(b",\"name\":");
        push_string(buffer, name);
    }
    buffer.extend_from_slice(b",\"type\":");
    push_string(buffer, party_type);
    buffer.push(b'}');
}

/// The JSON a store keeps for an event's parties and details: `{"actor", "audit_trail"?,
/// "context", "erased_by"?, "metadata"?, "seals"?, "system"?, "targets"}`, written with the same
/// fast, canonical writers as the leaf. `seals` lists the actor's then each target's: a salt
/// (base64), or `{"erased": seal}` for an erased party.
pub fn event_details_json(event: &Event) -> Vec<u8> {
    let input = &event.input;
    let mut buffer = Vec::with_capacity(512);
    buffer.extend_from_slice(b"{\"actor\":");
    push_party(
        &mut buffer,
        &input.actor.id,
        &input.actor.actor_type,
        input.actor.name.as_deref(),
        input.actor.metadata.as_ref(),
    );
    push_audit_trail(&mut buffer, input.audit_trail.as_ref());
    buffer.extend_from_slice(b",\"context\":{\"location\":");
    push_string(&mut buffer, &input.context.location);
    if let Some(user_agent) = &input.context.user_agent {
        buffer.extend_from_slice(b",\"user_agent\":");
        push_string(&mut buffer, user_agent);
    }
    buffer.push(b'}');
    if !event.erased_by.is_empty() {
        buffer.extend_from_slice(b",\"erased_by\":[");
        for (index, position) in event.erased_by.iter().enumerate() {
            if index > 0 {
                buffer.push(b',');
            }
            buffer.extend_from_slice(position.to_string().as_bytes());
        }
        buffer.push(b']');
    }
    if let Some(metadata) = &input.metadata {
        buffer.extend_from_slice(b",\"metadata\":");
        push_metadata(&mut buffer, metadata);
    }
    if let Some(seals) = &event.seals {
        buffer.extend_from_slice(b",\"seals\":[");
        for (index, seal) in std::iter::once(&seals.actor).chain(&seals.targets).enumerate() {
            if index > 0 {
                buffer.push(b',');
            }
            match seal {
                crate::seal::Seal::Salt(salt) => push_string(&mut buffer, &crate::seal::salt_text(salt)),
                crate::seal::Seal::Erased(seal) => {
                    buffer.extend_from_slice(b"{\"erased\":");
                    push_string(&mut buffer, &crate::seal::seal_text(seal));
                    buffer.push(b'}');
                }
            }
        }
        buffer.push(b']');
    }
    if input.system {
        buffer.extend_from_slice(b",\"system\":true");
    }
    buffer.extend_from_slice(b",\"targets\":[");
    for (index, target) in input.targets.iter().enumerate() {
        if index > 0 {
            buffer.push(b',');
        }
        push_party(
            &mut buffer,
            &target.id,
            &target.target_type,
            target.name.as_deref(),
            target.metadata.as_ref(),
        );
    }
    buffer.extend_from_slice(b"]}");
    buffer
}

/// The canonical bytes of an event.
pub fn canonical_event_bytes(event: &Event) -> Vec<u8> {
    PreparedLeaf::new(event).canonical_bytes(event.log_index)
}

/// The envelope's members after `log_index`, in both formats (`metadata`?, `occurred_at`,
/// `organization_id`, `received_at`, `schema_version`, `targets`), each target written by
/// `push_target`, and the closing brace.
fn push_members_after_position(
    event: &Event,
    mut push_target: impl FnMut(&mut Vec<u8>, usize, &crate::event::Target),
) -> Vec<u8> {
    let input = &event.input;
    let mut after = Vec::with_capacity(512);
    if let Some(metadata) = &input.metadata {
        after.extend_from_slice(b",\"metadata\":");
        push_metadata(&mut after, metadata);
    }
    after.extend_from_slice(b",\"occurred_at\":");
    push_string(&mut after, &input.occurred_at.to_wire());
    after.extend_from_slice(b",\"organization_id\":");
    push_string(&mut after, &event.organization_id.to_string());
    after.extend_from_slice(b",\"received_at\":");
    push_string(&mut after, &event.received_at.to_wire());
    after.extend_from_slice(b",\"schema_version\":");
    after.extend_from_slice(event.schema_version.to_string().as_bytes());
    after.extend_from_slice(b",\"targets\":[");
    for (index, target) in input.targets.iter().enumerate() {
        if index > 0 {
            after.push(b',');
        }
        push_target(&mut after, index, target);
    }
    after.extend_from_slice(b"]}");
    after
}

/// An event's canonical bytes with its log position left open, so that the expensive encoding
/// happens before the position is known (outside the single writer) and only the hash after.
///
/// The envelope's top-level members are all ASCII names, so their JCS order is plain byte order
/// and fixed: the bytes are `{` members before `log_index` `,"log_index":N,` members after `}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedLeaf {
    before: Vec<u8>,
    after: Vec<u8>,
}

impl PreparedLeaf {
    /// Encodes everything but the position. `event.log_index` is ignored.
    ///
    /// Written out member by member rather than through a generic JSON value: this runs for every
    /// ingested event. It must equal `canonical_json(&event_envelope(event))` byte for byte, which
    /// the tests check on fixtures and on random input.
    pub fn new(event: &Event) -> Self {
        if let Some(seals) = &event.seals {
            return Self::sealed(event, seals);
        }
        let input = &event.input;
        let mut before = Vec::with_capacity(768);
        before.extend_from_slice(b"{\"action\":");
        push_string(&mut before, &input.action);
        before.extend_from_slice(b",\"actor\":");
        push_party(
            &mut before,
            &input.actor.id,
            &input.actor.actor_type,
            input.actor.name.as_deref(),
            input.actor.metadata.as_ref(),
        );
        push_audit_trail(&mut before, input.audit_trail.as_ref());
        before.extend_from_slice(b",\"context\":{\"location\":");
        push_string(&mut before, &input.context.location);
        if let Some(user_agent) = &input.context.user_agent {
            before.extend_from_slice(b",\"user_agent\":");
            push_string(&mut before, user_agent);
        }
        before.extend_from_slice(b"},\"format\":");
        push_string(&mut before, format_of(event));
        before.extend_from_slice(b",\"id\":");
        push_string(&mut before, &event.id.to_string());
        before.extend_from_slice(b",\"log_index\":");

        let after = push_members_after_position(event, |after, _, target| {
            push_party(
                after,
                &target.id,
                &target.target_type,
                target.name.as_deref(),
                target.metadata.as_ref(),
            );
        });
        Self { before, after }
    }

    /// The v2 encoding: the same members, with each party's seal in place of its personal fields.
    fn sealed(event: &Event, seals: &crate::seal::Seals) -> Self {
        fn push_sealed(buffer: &mut Vec<u8>, seal: &crate::merkle::Hash, party_type: &str) {
            buffer.extend_from_slice(b"{\"seal\":");
            push_string(buffer, &crate::seal::seal_text(seal));
            buffer.extend_from_slice(b",\"type\":");
            push_string(buffer, party_type);
            buffer.push(b'}');
        }
        let input = &event.input;
        let mut before = Vec::with_capacity(512);
        before.extend_from_slice(b"{\"action\":");
        push_string(&mut before, &input.action);
        before.extend_from_slice(b",\"actor\":");
        push_sealed(&mut before, &seals.actor_seal(input), &input.actor.actor_type);
        if let Some(fields) = &input.audit_trail {
            before.extend_from_slice(b",\"audit_trail\":{\"action_type\":");
            push_string(&mut before, &fields.action_type);
            before.extend_from_slice(b",\"group\":");
            push_string(&mut before, &fields.group);
            before.push(b'}');
        }
        before.extend_from_slice(b",\"format\":");
        push_string(&mut before, EVENT_FORMAT_V2);
        before.extend_from_slice(b",\"id\":");
        push_string(&mut before, &event.id.to_string());
        before.extend_from_slice(b",\"log_index\":");

        let after = push_members_after_position(event, |after, index, target| {
            let seal = seals.target_seal(index, target).unwrap_or([0; 32]);
            push_sealed(after, &seal, &target.target_type);
        });
        Self { before, after }
    }

    /// The canonical bytes with the event at `log_index`.
    pub fn canonical_bytes(&self, log_index: u64) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.before.len() + 20 + self.after.len());
        bytes.extend_from_slice(&self.before);
        bytes.extend_from_slice(log_index.to_string().as_bytes());
        bytes.extend_from_slice(&self.after);
        bytes
    }

    /// The leaf hash with the event at `log_index`, without materialising the bytes.
    pub fn leaf_hash(&self, log_index: u64) -> crate::merkle::Hash {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update([0x00]);
        hasher.update(&self.before);
        hasher.update(log_index.to_string().as_bytes());
        hasher.update(&self.after);
        hasher.finalize().into()
    }
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
            metadata: value.get("metadata").and_then(Value::as_object).map(Into::into),
        }
    }

    fn raw_event(body: &Value) -> RawEvent {
        RawEvent {
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
            metadata: body.get("metadata").and_then(Value::as_object).map(Into::into),
        }
    }

    /// Replaces control characters in every string outside metadata (where they are allowed).
    fn mask_control_characters(value: &mut Value) {
        match value {
            Value::String(text) => *text = text.replace(char::is_control, "?"),
            Value::Array(items) => items.iter_mut().for_each(mask_control_characters),
            Value::Object(members) => members
                .iter_mut()
                .filter(|(name, _)| name.as_str() != "metadata")
                .for_each(|(_, member)| mask_control_characters(member)),
            _ => {}
        }
    }

    /// An event as a fixture describes it. The fixtures predate the rule that ids, types, names
    /// and the location refuse control characters, and events stored before it must keep
    /// encoding (and verifying) as they did: so the event is validated with those characters
    /// masked, then given the fixture's text exactly.
    fn event(input: &Value) -> Event {
        let body = &input["event"];
        let mut masked = body.clone();
        mask_control_characters(&mut masked);
        let mut errors = ValidationErrors::new();
        let mut input_event = validate_event(raw_event(&masked), "event", &mut errors)
            .unwrap_or_else(|| panic!("fixture invalid: {errors}"));
        let exact = raw_event(body);
        input_event.action = exact.action.unwrap();
        let actor = exact.actor.unwrap();
        (
            input_event.actor.id,
            input_event.actor.actor_type,
            input_event.actor.name,
        ) = (actor.id.unwrap(), actor.party_type.unwrap(), actor.name);
        for (target, exact) in input_event.targets.iter_mut().zip(exact.targets.unwrap()) {
            (target.id, target.target_type, target.name) = (exact.id.unwrap(), exact.party_type.unwrap(), exact.name);
        }
        let (location, user_agent) = exact.context.unwrap();
        (input_event.context.location, input_event.context.user_agent) = (location.unwrap(), user_agent);
        Event {
            id: EventId::parse(input["id"].as_str().unwrap()).unwrap(),
            organization_id: OrganizationId::parse(input["organization_id"].as_str().unwrap()).unwrap(),
            log_index: input["log_index"].as_u64().unwrap(),
            received_at: Timestamp::from_unix_millis(input["received_at_ms"].as_i64().unwrap()).unwrap(),
            schema_version: u32::try_from(input["schema_version"].as_u64().unwrap()).unwrap(),
            input: input_event,
            seals: None,
            erased_by: Vec::new(),
        }
    }

    fn hex(hash: &Hash) -> String {
        hash.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn the_v1_encoding_matches_its_fixtures() {
        let inputs: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(fixtures().join("v1-input.json")).unwrap()).unwrap();
        assert_matches_fixture(&inputs.iter().map(event).collect::<Vec<_>>(), "v1-expected.json");
    }

    /// Encodes events in order and compares bytes, leaf hashes and roots with an expected file.
    fn assert_matches_fixture(events: &[Event], expected_name: &str) {
        let mut leaves = Vec::new();
        let mut entries = Vec::new();
        for event in events {
            let bytes = canonical_event_bytes(event);
            let leaf = leaf_hash(&bytes);
            leaves.push(leaf);
            entries.push(json!({
                "canonical": String::from_utf8(bytes).unwrap(),
                "leaf_hash": hex(&leaf),
                "root_after": hex(&root_of(&leaves)),
            }));
        }
        let actual = serde_json::to_string_pretty(
            &json!({ "format": events.first().map_or(EVENT_FORMAT_V1, format_of), "entries": entries }),
        )
        .unwrap()
            + "\n";
        let expected_path = fixtures().join(expected_name);
        if std::env::var_os("VELLUM_BLESS_FIXTURES").is_some() {
            std::fs::write(&expected_path, &actual).unwrap();
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| panic!("{expected_name} exists"));
        assert_eq!(actual, expected, "the canonical encoding drifted from its fixtures");
    }

    /// Legacy Audit Trail events (`docs/audit-trail.md`): the same format, with the envelope's
    /// `audit_trail` member. Fixtures of their own, so the v1 fixtures stay untouched.
    fn audit_trail_events() -> Vec<Event> {
        let inputs: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(fixtures().join("v1-audit-trail-input.json")).unwrap())
                .unwrap();
        inputs
            .iter()
            .map(|input| {
                let mut errors = ValidationErrors::new();
                let body = crate::json::RawObject::from(input["body"].as_object().unwrap());
                let event_input = crate::audit_trail::validate_audit_trail_event(&body, &mut errors)
                    .unwrap_or_else(|| panic!("fixture invalid: {errors}"));
                Event {
                    id: EventId::parse(input["id"].as_str().unwrap()).unwrap(),
                    organization_id: OrganizationId::parse(input["organization_id"].as_str().unwrap()).unwrap(),
                    log_index: input["log_index"].as_u64().unwrap(),
                    received_at: Timestamp::from_unix_millis(input["received_at_ms"].as_i64().unwrap()).unwrap(),
                    schema_version: u32::try_from(input["schema_version"].as_u64().unwrap()).unwrap(),
                    input: event_input,
                    seals: None,
                    erased_by: Vec::new(),
                }
            })
            .collect()
    }

    #[test]
    fn audit_trail_events_match_their_fixtures() {
        let events = audit_trail_events();
        assert_matches_fixture(&events, "v1-audit-trail-expected.json");
        for mut event in events {
            for log_index in [0, 7, 1_000_000_007] {
                event.log_index = log_index;
                let whole = canonical_json(&event_envelope(&event));
                assert_eq!(PreparedLeaf::new(&event).canonical_bytes(log_index), whole);
            }
        }
    }

    /// The v1 fixtures' events with sealed parties (fixed salts, so the bytes are fixed).
    fn sealed(mut event: Event) -> Event {
        let parties = 1 + event.input.targets.len();
        let random: Vec<u8> = (0..parties * crate::seal::SALT_LEN)
            .map(|index| u8::try_from(index % 251).unwrap())
            .collect();
        event.seals = Some(crate::seal::Seals::from_random(&random, event.input.targets.len()));
        event
    }

    #[test]
    fn the_v2_encoding_matches_its_fixtures_and_erasure_keeps_the_leaf() {
        let inputs: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(fixtures().join("v1-input.json")).unwrap()).unwrap();
        let mut events: Vec<Event> = inputs.iter().map(|input| sealed(event(input))).collect();
        events.extend(audit_trail_events().into_iter().map(sealed));
        assert_matches_fixture(&events, "v2-expected.json");
        for event in &events {
            let prepared = PreparedLeaf::new(event);
            let bytes = prepared.canonical_bytes(event.log_index);
            assert_eq!(bytes, canonical_json(&leaf_envelope(event)));
            let text = String::from_utf8(bytes.clone()).unwrap();
            assert!(
                text.contains(EVENT_FORMAT_V2) && !text.contains("\"context\""),
                "{text}"
            );
            // Erasing the actor, or a target, or both, never changes the leaf, and removes the
            // values from what is stored.
            let mut subjects = vec![event.input.actor.id.clone()];
            subjects.extend(event.input.targets.iter().map(|target| target.id.clone()));
            for id in subjects.into_iter().filter(|id| !id.is_empty()) {
                let mut erased = event.clone();
                let subject = crate::seal::ErasureSubject { ids: vec![id.clone()] };
                assert!(crate::seal::erase(&mut erased, &subject, 99));
                assert!(!crate::seal::erase(&mut erased, &subject, 100), "nothing left to erase");
                assert_eq!(erased.erased_by, vec![99]);
                assert_eq!(canonical_event_bytes(&erased), bytes, "erasing {id} changed the leaf");
                let stored = String::from_utf8(event_details_json(&erased)).unwrap();
                assert!(!stored.contains(&format!("\"{id}\"")), "{id} is still stored: {stored}");
                assert!(stored.contains("\"erased_by\":[99]"), "{stored}");
            }
        }
    }

    #[test]
    fn the_prepared_encoding_is_exactly_jcs_of_the_envelope() {
        let inputs: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(fixtures().join("v1-input.json")).unwrap()).unwrap();
        for input in &inputs {
            let mut event = event(input);
            for log_index in [0, 7, 1_000_000_007] {
                event.log_index = log_index;
                let whole = canonical_json(&event_envelope(&event));
                let prepared = PreparedLeaf::new(&event);
                assert_eq!(prepared.canonical_bytes(log_index), whole);
                assert_eq!(prepared.leaf_hash(log_index), leaf_hash(&whole));
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// The hand-written encoder agrees with a general JCS implementation on any text and
        /// numbers (unicode, control characters, quotes, escapes).
        #[test]
        fn the_fast_encoder_agrees_with_jcs_on_random_events(
            action in "\\PC{0,20}",
            actor in proptest::prelude::any::<String>(),
            name in proptest::option::of(proptest::prelude::any::<String>()),
            location in "[\\x00-\\x7f\\u{80}-\\u{10ffff}]{0,16}",
            value in proptest::prelude::any::<String>(),
            number in proptest::num::f64::NORMAL | proptest::num::f64::ZERO | proptest::num::f64::SUBNORMAL,
            integer in -(1i64 << 53)..(1i64 << 53),
        ) {
            let inputs: Vec<Value> =
                serde_json::from_str(&std::fs::read_to_string(fixtures().join("v1-input.json")).unwrap()).unwrap();
            let mut event = event(&inputs[0]);
            event.input.action = action;
            event.input.actor.id = actor;
            event.input.actor.name = name;
            event.input.context.location = location;
            let metadata = event.input.metadata.get_or_insert_with(Default::default);
            metadata.insert("s".into(), MetadataValue::String(value));
            metadata.insert("f".into(), MetadataValue::Number(serde_json::Number::from_f64(number).unwrap()));
            metadata.insert("i".into(), MetadataValue::Number(integer.into()));
            event.log_index = 12;
            proptest::prop_assert_eq!(canonical_event_bytes(&event), canonical_json(&event_envelope(&event)));
            let mut legacy = audit_trail_events().remove(1);
            let fields = legacy.input.audit_trail.as_mut().unwrap();
            fields.group.clone_from(&event.input.actor.id);
            fields.latitude.clone_from(&event.input.actor.name);
            fields.longitude = Some(event.input.context.location.clone());
            legacy.input.context.location.clone_from(&event.input.action);
            proptest::prop_assert_eq!(canonical_event_bytes(&legacy), canonical_json(&event_envelope(&legacy)));
        }
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
