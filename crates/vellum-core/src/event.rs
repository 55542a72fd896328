//! Audit log events: who did what to which resources, when and from where.
//!
//! The rules follow WorkOS's `POST /audit_logs/events` (see `docs/events.md`): required fields,
//! metadata limits (50 keys, keys matching `^[a-zA-Z0-9_-]{0,40}$`, values that are strings of at
//! most 500 characters, numbers or booleans), and `occurred_at` in any RFC 3339 form the SDKs send.
//! Identifiers, types, names, the action, the location and the user agent refuse control
//! characters ([`has_control_characters`]); metadata string values, free text, may hold them.

use std::collections::BTreeMap;

use time::format_description::well_known::Iso8601;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::id::{EventId, OrganizationId};
use crate::json::{self, RawKind};
use crate::timestamp::Timestamp;
use crate::validation::{ValidationErrors, has_control_characters};

/// The most metadata keys in one metadata object.
pub const MAX_METADATA_KEYS: usize = 50;
/// The longest metadata key, in characters.
pub const MAX_METADATA_KEY_CHARS: usize = 40;
/// The longest metadata string value, in characters.
pub const MAX_METADATA_STRING_CHARS: usize = 500;
/// The most targets one event names.
pub const MAX_TARGETS: usize = 100;
/// The longest action name, in characters.
pub const MAX_ACTION_CHARS: usize = 128;
/// The longest identifier, type, name or location, in characters.
pub const MAX_TEXT_CHARS: usize = 1024;
/// The longest user agent, in characters.
pub const MAX_USER_AGENT_CHARS: usize = 4096;

/// One metadata value: WorkOS allows strings, numbers and booleans, nothing nested.
#[derive(Clone, Debug, PartialEq)]
pub enum MetadataValue {
    /// A string of at most [`MAX_METADATA_STRING_CHARS`] characters.
    String(String),
    /// A JSON number, kept exactly as sent.
    Number(serde_json::Number),
    /// A boolean.
    Bool(bool),
}

impl MetadataValue {
    /// Returns the value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::String(text) => serde_json::Value::String(text.clone()),
            Self::Number(number) => serde_json::Value::Number(number.clone()),
            Self::Bool(flag) => serde_json::Value::Bool(*flag),
        }
    }
}

/// A metadata object.
pub type Metadata = BTreeMap<String, MetadataValue>;

/// Renders metadata as a JSON object.
pub fn metadata_to_json(metadata: &Metadata) -> serde_json::Value {
    serde_json::Value::Object(
        metadata
            .iter()
            .map(|(key, value)| (key.clone(), value.to_json()))
            .collect(),
    )
}

/// Who performed the action.
#[derive(Clone, Debug, PartialEq)]
pub struct Actor {
    /// The actor's id in the application.
    pub id: String,
    /// The kind of actor (`user`, `api_key`, ...).
    pub actor_type: String,
    /// A display name.
    pub name: Option<String>,
    /// Extra facts about the actor.
    pub metadata: Option<Metadata>,
}

/// A resource the action touched.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The resource's id in the application.
    pub id: String,
    /// The kind of resource (`team`, `invoice`, ...).
    pub target_type: String,
    /// A display name.
    pub name: Option<String>,
    /// Extra facts about the resource.
    pub metadata: Option<Metadata>,
}

/// Where the action came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    /// An IP address or other location identifier.
    pub location: String,
    /// The client's user agent.
    pub user_agent: Option<String>,
}

/// A validated event as a client sent it, before it is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct EventInput {
    /// The action, e.g. `user.signed_in`.
    pub action: String,
    /// When the action happened (truncated to milliseconds, in UTC).
    pub occurred_at: Timestamp,
    /// The schema version the client asked to be validated against; `None` means the latest.
    pub version: Option<u32>,
    /// Who.
    pub actor: Actor,
    /// To what.
    pub targets: Vec<Target>,
    /// From where.
    pub context: Context,
    /// Extra facts about the event.
    pub metadata: Option<Metadata>,
    /// The fields of an event received through the legacy Audit Trail API (`POST /events`).
    pub audit_trail: Option<crate::audit_trail::AuditTrailFields>,
    /// Whether Vellum itself recorded the event (a purge or a legal hold, see
    /// [`crate::log_record`]); its canonical bytes then carry [`crate::canonical::RECORD_FORMAT_V1`].
    /// No client request can set it.
    pub system: bool,
}

/// An event as stored: the input plus what Vellum assigned on receipt.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// `audit_log_event_` + ULID.
    pub id: EventId,
    /// The organization whose trail holds the event.
    pub organization_id: OrganizationId,
    /// The event's position in its organization's log, from 0.
    pub log_index: u64,
    /// When Vellum received the event.
    pub received_at: Timestamp,
    /// The schema version the event was validated against.
    pub schema_version: u32,
    /// The event itself.
    pub input: EventInput,
    /// The seals of its parties, when its leaf is of format v2 (`None`: its leaf commits to the
    /// values themselves, format v1). See [`crate::seal`].
    pub seals: Option<crate::seal::Seals>,
    /// The positions of the erasure records that removed personal data from it, ascending.
    pub erased_by: Vec<u64>,
}

/// An unvalidated metadata object, its values kept as the JSON text sent (so that numbers are
/// judged as written, see [`crate::json`]).
pub type RawMetadata = crate::json::RawObject;

/// Fields of an actor or target before validation.
#[derive(Clone, Debug, Default)]
pub struct RawParty {
    /// `id`.
    pub id: Option<String>,
    /// `type`.
    pub party_type: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// `metadata`.
    pub metadata: Option<RawMetadata>,
}

/// An event's fields before validation; every field may be missing.
#[derive(Clone, Debug, Default)]
pub struct RawEvent {
    /// `action`.
    pub action: Option<String>,
    /// `occurred_at`, as sent.
    pub occurred_at: Option<String>,
    /// `version`.
    pub version: Option<i64>,
    /// `actor`.
    pub actor: Option<RawParty>,
    /// `targets`.
    pub targets: Option<Vec<RawParty>>,
    /// `context.location`, with `context` itself present or not.
    pub context: Option<(Option<String>, Option<String>)>,
    /// `metadata`.
    pub metadata: Option<RawMetadata>,
}

fn required_text(
    value: Option<String>,
    field: &str,
    max_chars: usize,
    errors: &mut ValidationErrors,
) -> Option<String> {
    match value {
        None => {
            errors.push(field, "required", format!("{field} is required"));
            None
        }
        Some(text) if text.is_empty() => {
            errors.push(field, "required", format!("{field} must not be empty"));
            None
        }
        Some(text) => optional_text(Some(text), field, max_chars, errors),
    }
}

fn optional_text(
    value: Option<String>,
    field: &str,
    max_chars: usize,
    errors: &mut ValidationErrors,
) -> Option<String> {
    let text = value?;
    if text.chars().count() > max_chars {
        errors.push(
            field,
            "too_long",
            format!("{field} is at most {max_chars} characters long"),
        );
        return None;
    }
    if has_control_characters(&text) {
        errors.push(field, "invalid", format!("{field} must not contain control characters"));
        return None;
    }
    Some(text)
}

/// Checks a metadata object against WorkOS's limits.
pub fn validate_metadata(raw: &RawMetadata, field: &str, errors: &mut ValidationErrors) -> Option<Metadata> {
    let before = errors.errors().len();
    if raw.len() > MAX_METADATA_KEYS {
        errors.push(
            field,
            "too_many_keys",
            format!("{field} has at most {MAX_METADATA_KEYS} keys"),
        );
        return None;
    }
    let mut metadata = Metadata::new();
    for (key, value) in raw.iter() {
        let key_field = format!("{field}.{key}");
        let key_ok = key.chars().count() <= MAX_METADATA_KEY_CHARS
            && key
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
        if !key_ok {
            errors.push(
                key_field.clone(),
                "invalid_key",
                format!("metadata keys match ^[a-zA-Z0-9_-]{{0,{MAX_METADATA_KEY_CHARS}}}$"),
            );
            continue;
        }
        let value = match json::kind(value) {
            RawKind::String(text) if text.chars().count() > MAX_METADATA_STRING_CHARS => {
                errors.push(
                    key_field,
                    "too_long",
                    format!("metadata strings are at most {MAX_METADATA_STRING_CHARS} characters long"),
                );
                continue;
            }
            RawKind::String(text) => MetadataValue::String(text),
            // Numbers are IEEE 754 doubles, as in JavaScript and in the canonical encoding: one
            // that would read back changed is refused instead (see `crate::json`).
            RawKind::Number(text) => match json::exact_number(text) {
                Ok(number) => MetadataValue::Number(number),
                Err(error) => {
                    errors.push(key_field, "invalid_number", error.to_string());
                    continue;
                }
            },
            RawKind::Bool(flag) => MetadataValue::Bool(flag),
            _ => {
                errors.push(
                    key_field,
                    "invalid_type",
                    "metadata values are strings, numbers or booleans",
                );
                continue;
            }
        };
        metadata.insert(key.to_owned(), value);
    }
    (errors.errors().len() == before).then_some(metadata)
}

fn validate_party(
    raw: RawParty,
    field: &str,
    errors: &mut ValidationErrors,
) -> Option<(String, String, Option<String>, Option<Metadata>)> {
    let before = errors.errors().len();
    let id = required_text(raw.id, &format!("{field}.id"), MAX_TEXT_CHARS, errors);
    let party_type = required_text(raw.party_type, &format!("{field}.type"), MAX_TEXT_CHARS, errors);
    let name = optional_text(raw.name, &format!("{field}.name"), MAX_TEXT_CHARS, errors);
    let metadata = match raw.metadata {
        Some(metadata) => validate_metadata(&metadata, &format!("{field}.metadata"), errors),
        None => None,
    };
    if errors.errors().len() != before {
        return None;
    }
    Some((id?, party_type?, name, metadata))
}

/// Why an action in Vellum's own namespace is refused.
pub const RESERVED_ACTION_MESSAGE: &str =
    "actions beginning with `vellum.` are reserved for the records Vellum writes itself (purges, legal holds)";

/// Checks an event's fields; `prefix` is the path of the event in the request (`event`).
pub fn validate_event(raw: RawEvent, prefix: &str, errors: &mut ValidationErrors) -> Option<EventInput> {
    let before = errors.errors().len();
    let field = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        }
    };

    let action = required_text(raw.action, &field("action"), MAX_ACTION_CHARS, errors);
    if let Some(action) = &action
        && crate::log_record::is_reserved_action(action)
    {
        errors.push(field("action"), "invalid", RESERVED_ACTION_MESSAGE);
    }
    if let Some(action) = &action
        && (action.chars().any(char::is_whitespace) || has_control_characters(action))
    {
        errors.push(
            field("action"),
            "invalid",
            "action must not contain whitespace or control characters",
        );
    }
    let occurred_at = match raw.occurred_at {
        None => {
            errors.push(
                field("occurred_at"),
                "required",
                format!("{} is required", field("occurred_at")),
            );
            None
        }
        Some(text) => match parse_occurred_at(&text) {
            Some(stamp) => Some(stamp),
            None => {
                errors.push(
                    field("occurred_at"),
                    "invalid_date",
                    format!(
                        "{} must be an ISO 8601 date-time such as 2026-01-15T12:00:00.000Z",
                        field("occurred_at")
                    ),
                );
                None
            }
        },
    };
    let version = match raw.version {
        None => None,
        Some(version) => match u32::try_from(version) {
            Ok(version) if version >= 1 => Some(version),
            _ => {
                errors.push(field("version"), "invalid", "version is a positive integer");
                None
            }
        },
    };
    let actor = match raw.actor {
        None => {
            errors.push(field("actor"), "required", format!("{} is required", field("actor")));
            None
        }
        Some(actor) => validate_party(actor, &field("actor"), errors).map(|(id, actor_type, name, metadata)| Actor {
            id,
            actor_type,
            name,
            metadata,
        }),
    };
    let mut targets = Vec::new();
    match raw.targets {
        None => errors.push(
            field("targets"),
            "required",
            format!("{} is required", field("targets")),
        ),
        Some(raw_targets) if raw_targets.len() > MAX_TARGETS => {
            errors.push(
                field("targets"),
                "too_many",
                format!("an event names at most {MAX_TARGETS} targets"),
            );
        }
        Some(raw_targets) => {
            for (index, target) in raw_targets.into_iter().enumerate() {
                if let Some((id, target_type, name, metadata)) =
                    validate_party(target, &format!("{}.{index}", field("targets")), errors)
                {
                    targets.push(Target {
                        id,
                        target_type,
                        name,
                        metadata,
                    });
                }
            }
        }
    }
    let context = match raw.context {
        None => {
            errors.push(
                field("context"),
                "required",
                format!("{} is required", field("context")),
            );
            None
        }
        Some((location, user_agent)) => {
            let location = required_text(location, &field("context.location"), MAX_TEXT_CHARS, errors);
            let user_agent = optional_text(user_agent, &field("context.user_agent"), MAX_USER_AGENT_CHARS, errors);
            location.map(|location| Context { location, user_agent })
        }
    };
    let metadata = match raw.metadata {
        Some(metadata) => validate_metadata(&metadata, &field("metadata"), errors),
        None => None,
    };
    if errors.errors().len() != before {
        return None;
    }
    Some(EventInput {
        action: action?,
        occurred_at: occurred_at?,
        version,
        actor: actor?,
        targets,
        context: context?,
        metadata,
        audit_trail: None,
        system: false,
    })
}

/// Parses `occurred_at` in every form the official SDKs send: RFC 3339 with 0 to 9 fractional
/// digits and `Z` or `±hh:mm`, or no offset at all (Python's naive datetimes), meaning UTC.
/// Digits beyond the millisecond are truncated.
pub fn parse_occurred_at(text: &str) -> Option<Timestamp> {
    parse_date_time(text).and_then(Timestamp::from_datetime)
}

/// Reads a date-time in the forms of [`parse_occurred_at`], to the nanosecond, in UTC.
pub(crate) fn parse_date_time(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if text.len() < 19 || !text.is_ascii() {
        return None;
    }
    let bytes = text.as_bytes();
    // Calendar dates only (`YYYY-MM-DD`): ISO 8601's week and ordinal dates are not RFC 3339.
    let calendar_date = bytes[..10].iter().enumerate().all(|(position, byte)| match position {
        4 | 7 => *byte == b'-',
        _ => byte.is_ascii_digit(),
    });
    if !calendar_date || !matches!(bytes[10], b'T' | b't') {
        return None;
    }
    // RFC 3339 §5.6 allows `t` and `z`; the ISO 8601 parser below takes only upper case, and no
    // other letter is valid here, so upper-casing the whole text changes nothing else.
    let text = text.to_ascii_uppercase();
    let text = text.as_str();
    if has_explicit_offset(text) {
        return OffsetDateTime::parse(text, &Iso8601::DEFAULT).ok();
    }
    // No offset: read as UTC.
    PrimitiveDateTime::parse(text, &Iso8601::DEFAULT)
        .ok()
        .map(|datetime| datetime.assume_offset(UtcOffset::UTC))
}

/// True when the text after the time of day carries `Z` or `±hh:mm`.
fn has_explicit_offset(text: &str) -> bool {
    let time_part = &text[11..];
    time_part.ends_with(['Z', 'z']) || time_part.contains(['+', '-'])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parsed(text: &str) -> Option<String> {
        parse_occurred_at(text).map(Timestamp::to_wire)
    }

    #[test]
    fn occurred_at_accepts_every_sdk_form() {
        assert_eq!(
            parsed("2026-01-15T12:00:00Z").as_deref(),
            Some("2026-01-15T12:00:00.000Z")
        );
        assert_eq!(
            parsed("2026-01-15T12:00:00.1Z").as_deref(),
            Some("2026-01-15T12:00:00.100Z")
        );
        assert_eq!(
            parsed("2026-01-15T12:00:00.123Z").as_deref(),
            Some("2026-01-15T12:00:00.123Z")
        );
        assert_eq!(
            parsed("2026-01-15T12:00:00.123456Z").as_deref(),
            Some("2026-01-15T12:00:00.123Z")
        );
        assert_eq!(
            parsed("2026-01-15T12:00:00.123456789+02:00").as_deref(),
            Some("2026-01-15T10:00:00.123Z")
        );
        assert_eq!(
            parsed("2026-01-15T12:00:00-05:30").as_deref(),
            Some("2026-01-15T17:30:00.000Z")
        );
        assert_eq!(
            parsed("2026-01-15T12:00:00.5").as_deref(),
            Some("2026-01-15T12:00:00.500Z"),
            "no offset is UTC"
        );
        assert_eq!(
            parsed("2026-01-15T12:00:00").as_deref(),
            Some("2026-01-15T12:00:00.000Z")
        );
    }

    #[test]
    fn occurred_at_rejects_what_is_not_a_date_time() {
        for bad in [
            "",
            "yesterday",
            "2026-01-15",
            "2026-01-15 12:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-15T25:00:00Z",
            "1700000000",
        ] {
            assert_eq!(parsed(bad), None, "{bad}");
        }
    }

    fn raw_metadata(value: serde_json::Value) -> RawMetadata {
        match value {
            serde_json::Value::Object(object) => RawMetadata::from(&object),
            other => panic!("not an object: {other}"),
        }
    }

    /// Metadata exactly as a client wrote it.
    fn written(text: &str) -> RawMetadata {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn metadata_numbers_are_judged_as_written_and_read_back_unchanged() {
        for (text, field) in [
            (r#"{"n": 123456789012345678901234567890}"#, "m.n"),
            (r#"{"n": 18446744073709551615}"#, "m.n"),
            (r#"{"n": 9007199254740993}"#, "m.n"),
            (r#"{"n": 1e400}"#, "m.n"),
            (r#"{"n": 1e-400}"#, "m.n"),
            (r#"{"n": 0.10000000000000000001}"#, "m.n"),
        ] {
            let mut errors = ValidationErrors::new();
            assert!(validate_metadata(&written(text), "m", &mut errors).is_none(), "{text}");
            assert_eq!(errors.errors()[0].field, field);
            assert_eq!(errors.errors()[0].code, "invalid_number", "{text}");
        }
        let accepted = validate_metadata(
            &written(r#"{"a": 9007199254740992, "b": -9007199254740992, "c": 0.1, "d": 1.5e-7, "e": 1e2}"#),
            "m",
            &mut ValidationErrors::new(),
        )
        .unwrap();
        let json = metadata_to_json(&accepted);
        assert_eq!(json["a"].as_u64(), Some(9_007_199_254_740_992));
        assert_eq!(json["c"].as_f64(), Some(0.1));
        assert_eq!(json["e"].as_f64(), Some(100.0));
    }

    #[test]
    fn metadata_rules() {
        let mut errors = ValidationErrors::new();
        let ok = validate_metadata(
            &raw_metadata(json!({"a": "x", "b-2": 3.5, "c_3": true, "": "empty key is allowed"})),
            "m",
            &mut errors,
        );
        assert_eq!(ok.unwrap().len(), 4);
        assert!(errors.is_empty());

        for (value, code) in [
            (json!({"nested": {"a": 1}}), "invalid_type"),
            (json!({"list": [1]}), "invalid_type"),
            (json!({"nothing": null}), "invalid_type"),
            (json!({"big": 9_007_199_254_740_993u64}), "invalid_number"),
            (json!({"long": "x".repeat(501)}), "too_long"),
            (json!({"bad key": "x"}), "invalid_key"),
            (json!({"k".repeat(41): "x"}), "invalid_key"),
        ] {
            let mut errors = ValidationErrors::new();
            assert!(
                validate_metadata(&raw_metadata(value.clone()), "m", &mut errors).is_none(),
                "{value}"
            );
            assert_eq!(errors.errors()[0].code, code, "{value}");
        }
        let many: RawMetadata = (0..51).map(|n| (format!("k{n}"), json!("v"))).collect();
        let mut errors = ValidationErrors::new();
        assert!(validate_metadata(&many, "m", &mut errors).is_none());
        assert_eq!(errors.errors()[0].code, "too_many_keys");
        let fifty: RawMetadata = (0..50).map(|n| (format!("k{n}"), json!("v"))).collect();
        assert!(validate_metadata(&fifty, "m", &mut ValidationErrors::new()).is_some());
    }

    fn valid_raw() -> RawEvent {
        RawEvent {
            action: Some("user.signed_in".into()),
            occurred_at: Some("2026-01-15T12:00:00.000Z".into()),
            version: None,
            actor: Some(RawParty {
                id: Some("user_1".into()),
                party_type: Some("user".into()),
                ..RawParty::default()
            }),
            targets: Some(vec![RawParty {
                id: Some("team_1".into()),
                party_type: Some("team".into()),
                ..RawParty::default()
            }]),
            context: Some((Some("192.0.2.1".into()), None)),
            metadata: None,
        }
    }

    #[test]
    fn a_complete_event_validates() {
        let mut errors = ValidationErrors::new();
        let event = validate_event(valid_raw(), "event", &mut errors).unwrap();
        assert_eq!(event.action, "user.signed_in");
        assert_eq!(event.targets[0].target_type, "team");
        assert_eq!(event.context.location, "192.0.2.1");
    }

    #[test]
    fn every_missing_field_is_named() {
        let mut errors = ValidationErrors::new();
        assert!(validate_event(RawEvent::default(), "event", &mut errors).is_none());
        let fields: Vec<_> = errors.errors().iter().map(|error| error.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "event.action",
                "event.occurred_at",
                "event.actor",
                "event.targets",
                "event.context"
            ]
        );

        let mut raw = valid_raw();
        raw.actor = Some(RawParty::default());
        raw.targets = Some(vec![RawParty {
            id: Some("t".into()),
            ..RawParty::default()
        }]);
        raw.context = Some((None, None));
        raw.version = Some(0);
        let mut errors = ValidationErrors::new();
        assert!(validate_event(raw, "event", &mut errors).is_none());
        let fields: Vec<_> = errors.errors().iter().map(|error| error.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "event.version",
                "event.actor.id",
                "event.actor.type",
                "event.targets.0.type",
                "event.context.location"
            ]
        );
    }

    #[test]
    fn identifiers_types_names_and_context_refuse_control_characters() {
        for bad in ["a\u{0}b", "\u{1b}[31mred", "line\nbreak", "del\u{7f}", "csi\u{9b}31m"] {
            let mut raw = valid_raw();
            raw.actor = Some(RawParty {
                id: Some(bad.into()),
                party_type: Some(bad.into()),
                name: Some(bad.into()),
                ..RawParty::default()
            });
            raw.targets = Some(vec![RawParty {
                id: Some(bad.into()),
                party_type: Some(bad.into()),
                name: Some(bad.into()),
                ..RawParty::default()
            }]);
            raw.context = Some((Some(bad.into()), Some(bad.into())));
            raw.action = Some(format!("user.{bad}"));
            let mut errors = ValidationErrors::new();
            assert!(validate_event(raw, "event", &mut errors).is_none());
            let fields: Vec<_> = errors.errors().iter().map(|error| error.field.as_str()).collect();
            assert_eq!(
                fields,
                [
                    "event.action",
                    "event.actor.id",
                    "event.actor.type",
                    "event.actor.name",
                    "event.targets.0.id",
                    "event.targets.0.type",
                    "event.targets.0.name",
                    "event.context.location",
                    "event.context.user_agent"
                ],
                "{bad:?}"
            );
            assert!(errors.errors().iter().all(|error| error.code == "invalid"));
        }
        // Free text: metadata string values may hold line breaks and other controls.
        let mut raw = valid_raw();
        raw.metadata = Some(raw_metadata(json!({"note": "two\nlines\u{1b}[0m\u{7f}"})));
        assert!(validate_event(raw, "event", &mut ValidationErrors::new()).is_some());
        // Non-control Unicode is welcome.
        let mut raw = valid_raw();
        raw.actor.as_mut().unwrap().name = Some("Zoë 日本 🎉".into());
        assert!(validate_event(raw, "event", &mut ValidationErrors::new()).is_some());
    }

    #[test]
    fn empty_targets_are_allowed_but_bounded() {
        let mut raw = valid_raw();
        raw.targets = Some(Vec::new());
        assert!(validate_event(raw, "event", &mut ValidationErrors::new()).is_some());
        let mut raw = valid_raw();
        raw.targets = Some(vec![
            RawParty {
                id: Some("t".into()),
                party_type: Some("x".into()),
                ..RawParty::default()
            };
            MAX_TARGETS + 1
        ]);
        assert!(validate_event(raw, "event", &mut ValidationErrors::new()).is_none());
    }
}
