//! Property-based robustness tests of the ingest body parser: the steps `create_event` runs on
//! the bytes of `POST /audit_logs/events` before it looks at schemas or the store (JSON into
//! `CreateEventBody`, `organization_id`, then the core's event rules).
//!
//! Case counts are bounded so that these run in seconds; `PROPTEST_CASES=N` overrides them.

use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};
use vellum_core::id::Ulid;
use vellum_core::{Event, EventId, EventInput, OrganizationId, Timestamp, ValidationErrors};

use super::{CreateEventBody, event_json, organization_id};
use crate::error::ApiError;
use crate::extract::parse_json;

/// `cases` unless `PROPTEST_CASES` says otherwise (an explicit count would hide the variable).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The ingest parser: what `create_event` does with the body before the schema check.
fn ingest(bytes: &[u8]) -> Result<(OrganizationId, EventInput), ApiError> {
    let body: CreateEventBody = parse_json(bytes)?;
    let mut errors = ValidationErrors::new();
    let organization = organization_id(body.organization_id, &mut errors)?;
    let input = match body.event {
        None => {
            errors.push("event", "required", "event is required");
            None
        }
        Some(event) => vellum_core::event::validate_event(event.into(), "event", &mut errors),
    };
    match (organization, input) {
        (Some(organization), Some(input)) if errors.is_empty() => Ok((organization, input)),
        _ => Err(errors.into()),
    }
}

/// A refusal as a client sees it: a 4xx with a JSON `message` and `code`; a 422 names each
/// field under one of the body's members.
fn check_refusal(error: &ApiError, valid_json: bool) -> Result<(), TestCaseError> {
    let status = error.status();
    prop_assert!(status.is_client_error(), "{error:?} is a {status}");
    let body = serde_json::to_value(error.body()).expect("an error body is JSON");
    prop_assert!(body["message"].is_string() && body["code"].is_string(), "{body}");
    match error {
        ApiError::Validation(errors) => {
            prop_assert!(!errors.is_empty(), "a 422 without errors");
            for error in errors.errors() {
                let root = error.field.split('.').next().unwrap_or_default();
                prop_assert!(
                    matches!(root, "organization_id" | "event" | "body"),
                    "the error names no field of the body: {error:?}"
                );
            }
        }
        ApiError::BadRequest { code, .. } => {
            prop_assert_eq!(*code, "invalid_json");
            prop_assert!(!valid_json, "valid JSON refused as invalid: {body}");
        }
        ApiError::NotFound { message } => {
            prop_assert!(message.starts_with("Organization not found"), "{message}");
        }
        other => prop_assert!(false, "unexpected refusal {other:?}"),
    }
    Ok(())
}

fn wild_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..16).prop_map(String::from_iter)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9_.@ -]{1,10}",
        2 => wild_text(),
        1 => Just(String::new()),
        1 => Just("x".repeat(1025)),
    ]
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
    ]
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 20, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{0,8}", inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A value of the right type most of the time, any JSON value otherwise.
fn or_anything(strategy: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![8 => strategy, 1 => json_value()].boxed()
}

/// An object with these members, each present most of the time, plus sometimes unknown ones.
fn object(members: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let count = members.len();
    let members: Vec<BoxedStrategy<Option<(String, Value)>>> = members
        .into_iter()
        .map(|(name, strategy)| {
            prop::option::weighted(0.9, strategy.prop_map(move |value| (name.to_owned(), value))).boxed()
        })
        .collect();
    (members, prop::collection::vec(("[a-z]{1,6}", json_value()), 0..2))
        .prop_map(move |(known, unknown)| {
            let mut object = Map::with_capacity(count + unknown.len());
            object.extend(known.into_iter().flatten());
            object.extend(unknown);
            Value::Object(object)
        })
        .boxed()
}

fn metadata() -> BoxedStrategy<Value> {
    or_anything(
        prop::collection::vec(
            (
                prop_oneof![8 => "[a-zA-Z0-9_-]{0,8}", 1 => wild_text()],
                prop_oneof![
                    text().prop_map(Value::String),
                    number().prop_map(Value::Number),
                    any::<bool>().prop_map(Value::Bool),
                ],
            ),
            0..5,
        )
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
    )
}

fn party() -> BoxedStrategy<Value> {
    or_anything(object(vec![
        ("id", or_anything(text().prop_map(Value::String))),
        ("type", or_anything(text().prop_map(Value::String))),
        ("name", or_anything(text().prop_map(Value::String))),
        ("metadata", metadata()),
    ]))
}

fn occurred_at() -> BoxedStrategy<Value> {
    or_anything(
        prop_oneof![
            4 => valid_occurred_at(),
            1 => wild_text(),
        ]
        .prop_map(Value::String),
    )
}

fn valid_occurred_at() -> impl Strategy<Value = String> {
    (2000u32..2100, 1u32..13, 1u32..29, 0u32..24, 0u32..1000)
        .prop_map(|(year, month, day, hour, millis)| format!("{year}-{month:02}-{day:02}T{hour:02}:30:00.{millis:03}Z"))
}

/// A `POST /audit_logs/events` body: near the valid shape, with any member missing, of the
/// wrong type, or unknown.
fn body() -> BoxedStrategy<Value> {
    let event = object(vec![
        (
            "action",
            or_anything(prop_oneof![3 => "[a-z]{1,6}\\.[a-z]{1,6}", 1 => text()].prop_map(Value::String)),
        ),
        ("occurred_at", occurred_at()),
        (
            "version",
            or_anything(prop_oneof![1i64..4, any::<i64>()].prop_map(|version| json!(version))),
        ),
        ("actor", party()),
        (
            "targets",
            or_anything(prop::collection::vec(party(), 0..3).prop_map(Value::Array)),
        ),
        (
            "context",
            or_anything(object(vec![
                ("location", or_anything(text().prop_map(Value::String))),
                ("user_agent", or_anything(text().prop_map(Value::String))),
            ])),
        ),
        ("metadata", metadata()),
    ]);
    object(vec![
        (
            "organization_id",
            or_anything(
                prop_oneof![
                    4 => any::<u128>().prop_map(|bits| OrganizationId::from_ulid(Ulid(bits)).to_string()),
                    1 => text(),
                ]
                .prop_map(Value::String),
            ),
        ),
        ("event", or_anything(event)),
    ])
}

/// A body the rules usually accept: every member present and of the right type, text of any
/// characters within the limits.
fn friendly_body() -> impl Strategy<Value = Value> {
    let friendly_text =
        || prop_oneof![3 => "[a-zA-Z0-9_.@ -]{1,10}", 1 => wild_text().prop_filter("empty", |text| !text.is_empty())];
    let metadata = move || {
        prop::collection::vec(
            (
                "[a-zA-Z0-9_-]{0,8}",
                prop_oneof![
                    friendly_text().prop_map(Value::String),
                    number().prop_map(Value::Number),
                    any::<bool>().prop_map(Value::Bool),
                ],
            ),
            0..5,
        )
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<String, Value>>()))
    };
    let party = move || {
        (
            friendly_text(),
            friendly_text(),
            prop::option::of(friendly_text()),
            prop::option::of(metadata()),
        )
            .prop_map(|(id, party_type, name, metadata)| {
                let mut party = json!({ "id": id, "type": party_type });
                if let Some(name) = name {
                    party["name"] = json!(name);
                }
                if let Some(metadata) = metadata {
                    party["metadata"] = metadata;
                }
                party
            })
    };
    (
        any::<u128>(),
        "[a-z]{1,6}\\.[a-z]{1,6}",
        valid_occurred_at().prop_map(Value::String),
        prop::option::weighted(0.3, 1u32..4),
        party(),
        prop::collection::vec(party(), 0..3),
        (friendly_text(), prop::option::of(friendly_text())),
        prop::option::of(metadata()),
    )
        .prop_map(
            |(organization, action, occurred_at, version, actor, targets, (location, user_agent), metadata)| {
                let mut event = json!({
                    "action": action, "occurred_at": occurred_at, "actor": actor, "targets": targets,
                    "context": { "location": location },
                });
                if let Some(version) = version {
                    event["version"] = json!(version);
                }
                if let Some(user_agent) = user_agent {
                    event["context"]["user_agent"] = json!(user_agent);
                }
                if let Some(metadata) = metadata {
                    event["metadata"] = metadata;
                }
                json!({ "organization_id": OrganizationId::from_ulid(Ulid(organization)).to_string(), "event": event })
            },
        )
}

/// An object's member values as an array, in order.
fn as_array(object: &Value) -> Value {
    Value::Array(object.as_object().expect("an object").values().cloned().collect())
}

/// Bytes that are JSON or close to it: whole documents, cut short, or with bytes changed.
fn near_json_bytes() -> impl Strategy<Value = Vec<u8>> {
    (body(), any::<prop::sample::Index>(), any::<u8>(), 0u8..4).prop_map(|(value, index, byte, edit)| {
        let mut bytes = serde_json::to_vec(&value).expect("serialisable");
        let at = index.index(bytes.len());
        match edit {
            0 => bytes.truncate(at),
            1 => bytes[at] = byte,
            2 => bytes.insert(at, byte),
            _ => bytes.extend_from_slice(b" trailing"),
        }
        bytes
    })
}

proptest! {
    #![proptest_config(config(512))]

    /// Any bytes at all: parsed or refused with a client error in our shape, never a panic.
    #[test]
    fn any_bytes_are_parsed_or_refused(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        near_json_bytes(),
    ]) {
        if let Err(error) = ingest(&bytes) {
            check_refusal(&error, serde_json::from_slice::<Value>(&bytes).is_ok())?;
        }
    }

    /// Any JSON object (with members missing, mistyped or unknown, nested anyhow) is accepted or
    /// refused with errors that name a field; valid JSON is never called invalid JSON.
    #[test]
    fn any_json_object_is_accepted_or_names_the_field(value in prop_oneof![
        1 => json_value().prop_filter("not an object", Value::is_object),
        4 => body(),
        1 => friendly_body(),
    ]) {
        let bytes = serde_json::to_vec(&value).expect("serialisable");
        if let Err(error) = ingest(&bytes) {
            check_refusal(&error, true)?;
        }
    }

    /// A body, or a member, that should be a JSON object but is not (an array, a string, a
    /// number, `true`, `null`) is refused naming it. An array must not be read as the members
    /// in declaration order (serde's derived structs accept that by default): `["org_…", {…}]`
    /// is not an event, and `"context": ["a", "b", "c"]` is not invalid JSON.
    #[test]
    fn what_should_be_an_object_and_is_not_is_refused(
        (value, member) in prop_oneof![
            json_value().prop_filter("an object", |value| !value.is_object()).prop_map(|value| (value, "body")),
            friendly_body().prop_map(|body| (as_array(&body), "body")),
            (friendly_body(), prop::sample::select(vec!["event", "event.actor", "event.context"]), 0usize..3)
                .prop_map(|(mut body, member, extra)| {
                    let pointer = format!("/{}", member.replace('.', "/"));
                    let slot = body.pointer_mut(&pointer).expect("a member of the body");
                    let mut array = as_array(slot);
                    array.as_array_mut().expect("an array").extend((0..extra).map(|_| Value::Null));
                    *slot = array;
                    (body, member)
                }),
        ]
    ) {
        let bytes = serde_json::to_vec(&value).expect("serialisable");
        let result = ingest(&bytes);
        prop_assert!(result.is_err(), "accepted {}", value);
        if let Err(error) = result {
            check_refusal(&error, true)?;
            if let ApiError::Validation(errors) = &error {
                prop_assert!(errors.errors().iter().all(|error| error.field == member), "{:?} in {}", errors, value);
            }
        }
    }

    /// An accepted event, stored and rendered in its wire form (`GET /audit_logs/events/{id}`),
    /// sent back as a new event reads as the same event.
    #[test]
    fn accepted_events_survive_their_wire_form(
        bytes in prop_oneof![4 => friendly_body(), 1 => body()]
            .prop_map(|value| serde_json::to_vec(&value).expect("serialisable"))
            .prop_filter("refused", |bytes| ingest(bytes).is_ok()),
        id in any::<u128>(),
        log_index in 0u64..1000,
    ) {
        let (organization_id, input) = ingest(&bytes).expect("filtered");
        let event = Event {
            id: EventId::from_ulid(Ulid(id)),
            organization_id,
            log_index,
            received_at: Timestamp::from_unix_millis(1_768_478_400_000).expect("in range"),
            schema_version: input.version.unwrap_or(1),
            input: input.clone(),
            seals: None, erased_by: Vec::new(),
        };
        let mut rendered = event_json(&event);
        let rendered_object = rendered.as_object_mut().expect("an object");
        for stored_only in ["object", "id", "organization_id", "log_index", "received_at"] {
            rendered_object.remove(stored_only);
        }
        let again = serde_json::to_vec(&json!({ "organization_id": organization_id.to_string(), "event": rendered }))
            .expect("serialisable");
        let reparsed = ingest(&again);
        prop_assert!(reparsed.is_ok(), "{:?}", reparsed.err());
        let (reparsed_organization, mut reparsed_input) = reparsed.expect("checked");
        prop_assert_eq!(reparsed_organization, organization_id);
        // The wire form's `version` is the version validated against, which a client that named
        // none did not send.
        prop_assert_eq!(reparsed_input.version, Some(event.schema_version));
        reparsed_input.version = input.version;
        prop_assert_eq!(reparsed_input, input);
    }
}
