//! Property-based robustness tests of the core's parsers and encoders, through the public API:
//! the event rules ingest runs (`validate_event`, `parse_occurred_at`, the legacy flat body),
//! the canonical encoding the log commits to (RFC 8785), and cursors (ids and keyset pages).
//!
//! Case counts are bounded so that the file runs in seconds; `PROPTEST_CASES=N` overrides every
//! count for a longer search.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{Map, Number, Value};
use vellum_core::audit_trail::validate_audit_trail_event;
use vellum_core::canonical::{canonical_event_bytes, canonical_json, event_envelope};
use vellum_core::event::{RawEvent, RawMetadata, RawParty, parse_occurred_at, validate_event};
use vellum_core::id::{IdParseError, Ulid};
use vellum_core::json::RawObject;
use vellum_core::pagination::{KeyBound, Order};
use vellum_core::{
    ActionId, ApiKeyId, AuditTrailActionId, AuditTrailEventId, Cursor, Event, EventId, ExportId, OperatorId,
    OrganizationDomainId, OrganizationId, PageRequest, SchemaId, Timestamp, ValidationErrors,
};

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

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/// Any characters at all, control characters and unpaired-looking escapes included
/// (`any::<String>()` draws printable characters only).
fn wild_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter)
}

/// Text of every kind: mostly short and printable, sometimes control characters, sometimes past
/// the limits (1,024 characters for ids and names, 128 for actions, 500 for metadata strings).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9_.@ -]{1,12}",
        2 => any::<String>(),
        2 => wild_text(),
        1 => "[\\x00-\\x1f\\x7f\"\\\\]{0,4}",
        1 => Just(String::new()),
        1 => (1usize..3).prop_map(|factor| "x".repeat(500 * factor + 1)),
        1 => Just("=HYPERLINK(\"x\")".to_owned()),
    ]
}

fn metadata_key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-zA-Z0-9_-]{0,12}",
        1 => any::<String>(),
        1 => Just("k".repeat(41)),
    ]
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((metadata_key(), inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// A metadata value: mostly what the rules allow, sometimes what they refuse.
fn metadata_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => text().prop_map(Value::String),
        3 => number().prop_map(Value::Number),
        2 => any::<bool>().prop_map(Value::Bool),
        1 => json_value(),
    ]
}

fn raw_metadata() -> impl Strategy<Value = RawMetadata> {
    prop_oneof![
        8 => prop::collection::vec((metadata_key(), metadata_value()), 0..6),
        1 => prop::collection::vec(("k[0-9]{1,3}", Just(Value::Bool(true))), 48..53),
    ]
    .prop_map(|pairs| pairs.into_iter().collect())
}

/// Mostly present, sometimes missing.
fn usually<T: std::fmt::Debug + Clone + 'static>(
    strategy: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![9 => strategy.prop_map(Some), 1 => Just(None)].boxed()
}

fn raw_party() -> impl Strategy<Value = RawParty> {
    (
        usually(text()),
        usually(text()),
        prop::option::of(text()),
        prop::option::weighted(0.4, raw_metadata()),
    )
        .prop_map(|(id, party_type, name, metadata)| RawParty {
            id,
            party_type,
            name,
            metadata,
        })
}

/// `occurred_at` as the SDKs send it, and sometimes not.
fn occurred_at_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => date_time().prop_map(|(text, _)| text),
        1 => any::<String>(),
        1 => Just("2026-02-30T00:00:00Z".to_owned()),
    ]
}

fn raw_event() -> impl Strategy<Value = RawEvent> {
    (
        usually(prop_oneof![4 => "[a-z]{1,8}\\.[a-z_]{1,8}", 1 => text()]),
        usually(occurred_at_text()),
        prop::option::weighted(0.2, prop_oneof![1i64..5, any::<i64>()]),
        usually(raw_party()),
        usually(prop_oneof![
            20 => prop::collection::vec(raw_party(), 0..4),
            1 => prop::collection::vec(raw_party(), 101..102),
        ]),
        usually((usually(text()), prop::option::of(text()))),
        prop::option::weighted(0.5, raw_metadata()),
    )
        .prop_map(
            |(action, occurred_at, version, actor, targets, context, metadata)| RawEvent {
                action,
                occurred_at,
                version,
                actor,
                targets,
                context,
                metadata,
            },
        )
}

/// Text the rules usually accept: non-empty, within the limits, of any characters.
fn friendly_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9_.@ -]{1,12}",
        1 => any::<String>().prop_filter("empty", |text| !text.is_empty()),
        1 => wild_text().prop_filter("empty", |text| !text.is_empty()),
    ]
}

fn friendly_metadata() -> impl Strategy<Value = RawMetadata> {
    prop::collection::vec(
        (
            "[a-zA-Z0-9_-]{0,12}",
            prop_oneof![
                3 => prop_oneof![friendly_text(), Just(String::new())].prop_map(Value::String),
                2 => number().prop_map(Value::Number),
                1 => any::<bool>().prop_map(Value::Bool),
            ],
        ),
        0..6,
    )
    .prop_map(|pairs| pairs.into_iter().collect())
}

fn friendly_party() -> impl Strategy<Value = RawParty> {
    (
        friendly_text(),
        friendly_text(),
        prop::option::of(friendly_text()),
        prop::option::of(friendly_metadata()),
    )
        .prop_map(|(id, party_type, name, metadata)| RawParty {
            id: Some(id),
            party_type: Some(party_type),
            name,
            metadata,
        })
}

/// An event the rules accept, stored at some position. Drawn from fields the rules usually
/// accept (and filtered by the rules themselves), so that most draws are used.
fn accepted_event() -> impl Strategy<Value = Event> {
    let raw = (
        prop_oneof![3 => "[a-z]{1,8}\\.[a-z_]{1,8}", 1 => friendly_text()],
        date_time(),
        prop::option::weighted(0.2, 1i64..5),
        friendly_party(),
        prop::collection::vec(friendly_party(), 0..4),
        (friendly_text(), prop::option::of(friendly_text())),
        prop::option::of(friendly_metadata()),
    )
        .prop_map(
            |(action, (occurred_at, _), version, actor, targets, (location, user_agent), metadata)| RawEvent {
                action: Some(action),
                occurred_at: Some(occurred_at),
                version,
                actor: Some(actor),
                targets: Some(targets),
                context: Some((Some(location), user_agent)),
                metadata,
            },
        );
    (raw, any::<u128>(), any::<u128>(), 0u64..1_000_000, 1u32..5).prop_filter_map(
        "the rules refused it",
        |(raw, id, organization, log_index, schema_version)| {
            let input = validate_event(raw, "event", &mut ValidationErrors::new())?;
            Some(Event {
                id: EventId::from_ulid(Ulid(id)),
                organization_id: OrganizationId::from_ulid(Ulid(organization)),
                log_index,
                received_at: Timestamp::from_unix_millis(1_768_478_400_000 + i64::try_from(log_index).ok()?)?,
                schema_version,
                input,
                seals: None,
                erased_by: Vec::new(),
            })
        },
    )
}

/// The input with every metadata number as the double it denotes: the canonical encoding
/// writes numbers in their shortest ECMAScript form, so `-0.0` and `0`, `1.0` and `1` are one.
fn numbers_as_doubles(mut input: vellum_core::EventInput) -> vellum_core::EventInput {
    fn normalise(metadata: &mut Option<vellum_core::event::Metadata>) {
        for value in metadata.iter_mut().flat_map(|metadata| metadata.values_mut()) {
            if let vellum_core::event::MetadataValue::Number(number) = value {
                let double = number.as_f64().unwrap_or(f64::NAN);
                // -0.0 and 0.0 are one number.
                *number = Number::from_f64(if double == 0.0 { 0.0 } else { double }).unwrap_or_else(|| number.clone());
            }
        }
    }
    normalise(&mut input.metadata);
    normalise(&mut input.actor.metadata);
    for target in &mut input.targets {
        normalise(&mut target.metadata);
    }
    input
}

/// An RFC 3339 date-time in one of the SDKs' spellings, with the instant it names in
/// milliseconds (computed independently, with `time`).
fn date_time() -> impl Strategy<Value = (String, i64)> {
    (
        1i32..=9999,
        1u8..=12,
        1u8..=28,
        0u8..24,
        0u8..60,
        0u8..60,
        0usize..=9,
        any::<u32>(),
        prop_oneof![Just(None), (-23i8..=23, 0i8..60).prop_map(Some)],
    )
        .prop_filter_map(
            "outside the representable range",
            |(year, month, day, hour, minute, second, digits, fraction, offset)| {
                let nanos = fraction % 1_000_000_000;
                let fraction_text = format!("{nanos:09}");
                let fraction_text = &fraction_text[..digits];
                let kept_nanos = if digits == 0 {
                    0
                } else {
                    fraction_text.parse::<u32>().ok()? * 10u32.pow(9 - u32::try_from(digits).ok()?)
                };
                let (offset_text, offset) = match offset {
                    None => ("Z".to_owned(), time::UtcOffset::UTC),
                    Some((hours, minutes)) => {
                        let minutes = if hours < 0 { -minutes } else { minutes };
                        let sign = if hours < 0 || (hours == 0 && minutes < 0) { '-' } else { '+' };
                        (
                            format!("{sign}{:02}:{:02}", hours.unsigned_abs(), minutes.unsigned_abs()),
                            time::UtcOffset::from_hms(hours, minutes, 0).ok()?,
                        )
                    }
                };
                let date = time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
                let clock = time::Time::from_hms_nano(hour, minute, second, kept_nanos).ok()?;
                let instant = time::PrimitiveDateTime::new(date, clock).assume_offset(offset);
                let millis = i64::try_from(instant.unix_timestamp_nanos().div_euclid(1_000_000)).ok()?;
                Timestamp::from_unix_millis(millis)?;
                let dot = if digits == 0 { "" } else { "." };
                Some((
                    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{dot}{fraction_text}{offset_text}"),
                    millis,
                ))
            },
        )
}

fn check_errors(errors: &ValidationErrors, prefix: &str) -> Result<(), TestCaseError> {
    for error in errors.errors() {
        prop_assert!(!error.field.is_empty(), "an error names no field: {error:?}");
        prop_assert!(
            prefix.is_empty() || error.field == prefix || error.field.starts_with(&format!("{prefix}.")),
            "{error:?} is not under {prefix:?}"
        );
        prop_assert!(!error.code.is_empty() && !error.message.is_empty(), "{error:?}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1. The event rules ingest runs
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// Any combination of fields is either accepted or refused with errors that each name a
    /// field under the event's path; never both, never neither, never a panic.
    #[test]
    fn event_rules_accept_or_name_the_field(raw in raw_event(), prefix in prop_oneof![Just(""), Just("event"), Just("events.7")]) {
        let mut errors = ValidationErrors::new();
        let accepted = validate_event(raw, prefix, &mut errors);
        prop_assert_eq!(accepted.is_some(), errors.is_empty(), "{:?}", errors);
        check_errors(&errors, prefix)?;
    }

    /// What the rules accept, rendered as the envelope the log commits to and read back through
    /// the same rules, is the same event.
    #[test]
    fn accepted_events_survive_their_rendering(event in accepted_event()) {
        let rendered: Value = serde_json::from_slice(&canonical_event_bytes(&event)).expect("canonical bytes are JSON");
        let text = |value: &Value, name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
        let party = |value: &Value| RawParty {
            id: text(value, "id"),
            party_type: text(value, "type"),
            name: text(value, "name"),
            metadata: value.get("metadata").and_then(Value::as_object).map(RawObject::from),
        };
        let raw = RawEvent {
            action: text(&rendered, "action"),
            occurred_at: text(&rendered, "occurred_at"),
            version: event.input.version.map(i64::from),
            actor: rendered.get("actor").map(party),
            targets: rendered["targets"].as_array().map(|targets| targets.iter().map(party).collect()),
            context: rendered
                .get("context")
                .map(|context| (text(context, "location"), text(context, "user_agent"))),
            metadata: rendered.get("metadata").and_then(Value::as_object).map(RawObject::from),
        };
        let mut errors = ValidationErrors::new();
        let reparsed = validate_event(raw, "event", &mut errors);
        prop_assert!(errors.is_empty(), "{:?}", errors);
        prop_assert_eq!(reparsed.map(numbers_as_doubles), Some(numbers_as_doubles(event.input)));
    }

    /// `occurred_at` never panics on any text, and whatever it accepts it writes back in the
    /// one wire form, which reads back to the same instant.
    #[test]
    fn occurred_at_parses_or_refuses_any_text(text in prop_oneof![any::<String>(), "[0-9T:.+zZ -]{0,40}"]) {
        if let Some(stamp) = parse_occurred_at(&text) {
            prop_assert_eq!(parse_occurred_at(&stamp.to_wire()), Some(stamp));
        }
    }

    /// Every SDK spelling of a date-time names the instant `time` computes for it (or is
    /// refused, for years outside what the rules allow; this century is always allowed).
    #[test]
    fn occurred_at_reads_every_spelling_to_its_instant((text, millis) in date_time()) {
        match parse_occurred_at(&text) {
            Some(stamp) => prop_assert_eq!(stamp.unix_millis(), millis, "{}", text),
            None => prop_assert!(!text.starts_with("20"), "{} refused", text),
        }
    }

    /// RFC 3339 (section 5.6) allows `t` and `z` in lower case, and the parser means to accept
    /// both (it checks for `z` among the offsets).
    #[test]
    fn occurred_at_accepts_lower_case_t_and_z((text, millis) in date_time()) {
        let lower = text.replace('T', "t").replace('Z', "z");
        prop_assert_eq!(parse_occurred_at(&lower).map(Timestamp::unix_millis), Some(millis), "{}", lower);
    }

    /// The legacy flat body: any JSON object is accepted or refused with errors naming a field
    /// of the body; never a panic.
    #[test]
    fn legacy_bodies_are_accepted_or_name_the_field(
        body in prop::collection::vec(
            (
                prop_oneof![
                    4 => prop::sample::select(vec![
                        "group", "location", "latitude", "longitude", "action", "action_type",
                        "actor_name", "actor_id", "target_name", "target_id", "occurred_at", "metadata",
                    ]).prop_map(str::to_owned),
                    1 => metadata_key(),
                ],
                prop_oneof![3 => text().prop_map(Value::String), 1 => json_value(), 1 => occurred_at_text().prop_map(Value::String)],
            ),
            0..14,
        ).prop_map(|pairs| pairs.into_iter().collect::<Map<String, Value>>())
    ) {
        let mut errors = ValidationErrors::new();
        let accepted = validate_audit_trail_event(&RawObject::from(&body), &mut errors);
        prop_assert_eq!(accepted.is_some(), errors.is_empty(), "{:?}", errors);
        check_errors(&errors, "")?;
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The canonical encoding (RFC 8785)
// ---------------------------------------------------------------------------------------------

/// The same JSON with the members of every object in another order.
fn shuffled(value: &Value, seed: u64) -> Value {
    match value {
        Value::Object(object) => {
            let mut members: Vec<(&String, &Value)> = object.iter().collect();
            // A cheap deterministic permutation: rotate by the seed, then reverse on odd seeds.
            let len = members.len().max(1);
            members.rotate_left(usize::try_from(seed).unwrap_or(0) % len);
            if seed % 2 == 1 {
                members.reverse();
            }
            Value::Object(
                members
                    .into_iter()
                    .map(|(key, member)| (key.clone(), shuffled(member, seed.wrapping_mul(31).wrapping_add(7))))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|item| shuffled(item, seed)).collect()),
        other => other.clone(),
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// The bytes are deterministic, valid JSON, already canonical (canonicalising them again
    /// changes nothing), and equal to a general JCS implementation's encoding of the envelope.
    #[test]
    fn canonical_bytes_are_stable_valid_and_already_canonical(event in accepted_event()) {
        let bytes = canonical_event_bytes(&event);
        prop_assert_eq!(&bytes, &canonical_event_bytes(&event));
        let parsed: Value = serde_json::from_slice(&bytes).expect("canonical bytes are JSON");
        prop_assert_eq!(&canonical_json(&parsed), &bytes);
        prop_assert_eq!(&canonical_json(&event_envelope(&event)), &bytes);
        prop_assert_eq!(parsed["id"].as_str().map(str::to_owned), Some(event.id.to_string()));
        prop_assert_eq!(parsed["log_index"].as_u64(), Some(event.log_index));
    }

    /// Metadata sent with its keys in any order is the same event, with the same bytes; and any
    /// JSON value canonicalises the same whatever the order of its members.
    #[test]
    fn member_order_never_changes_the_bytes(event in accepted_event(), seed in any::<u64>(), value in json_value()) {
        let mut permuted_input = event.input.clone();
        // Re-send every metadata object with its keys in another order, through the rules.
        let reorder = |metadata: &Option<vellum_core::event::Metadata>| -> Result<Option<vellum_core::event::Metadata>, TestCaseError> {
            let Some(metadata) = metadata else { return Ok(None) };
            let json = shuffled(&vellum_core::event::metadata_to_json(metadata), seed);
            let raw = RawObject::from(json.as_object().expect("metadata is an object"));
            let mut errors = ValidationErrors::new();
            let reread = vellum_core::event::validate_metadata(&raw, "metadata", &mut errors);
            prop_assert!(errors.is_empty(), "{:?}", errors);
            Ok(reread)
        };
        permuted_input.metadata = reorder(&event.input.metadata)?;
        permuted_input.actor.metadata = reorder(&event.input.actor.metadata)?;
        for target in &mut permuted_input.targets {
            target.metadata = reorder(&target.metadata)?;
        }
        let permuted = Event { input: permuted_input, ..event.clone() };
        prop_assert_eq!(canonical_event_bytes(&permuted), canonical_event_bytes(&event));
        prop_assert_eq!(canonical_json(&shuffled(&event_envelope(&event), seed)), canonical_event_bytes(&event));
        prop_assert_eq!(canonical_json(&shuffled(&value, seed)), canonical_json(&value));
    }

    /// The bytes commit to the content: changing what an event says changes them.
    #[test]
    fn a_changed_event_has_other_bytes(event in accepted_event(), suffix in "[a-z0-9]{1,4}", which in 0usize..4) {
        let mut changed = event.clone();
        match which {
            0 => changed.input.actor.id.push_str(&suffix),
            1 => changed.input.context.location.push_str(&suffix),
            2 => changed.input.action.push_str(&suffix),
            _ => changed.log_index += 1,
        }
        prop_assert_ne!(canonical_event_bytes(&changed), canonical_event_bytes(&event));
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Cursors: ids (every `before`/`after` is one) and keyset pages
// ---------------------------------------------------------------------------------------------

/// Parses `text` as every kind of id; for each that accepts it, the id must write back as `text`.
fn parse_every_kind(text: &str) -> Result<usize, TestCaseError> {
    fn one<T: std::fmt::Display>(text: &str, parsed: Result<T, IdParseError>) -> Result<usize, TestCaseError> {
        match parsed {
            Ok(id) => {
                prop_assert_eq!(id.to_string(), text, "an id parsed from text it does not write back");
                Ok(1)
            }
            Err(_) => Ok(0),
        }
    }
    Ok(one(text, OrganizationId::parse(text))?
        + one(text, OrganizationDomainId::parse(text))?
        + one(text, ApiKeyId::parse(text))?
        + one(text, EventId::parse(text))?
        + one(text, ExportId::parse(text))?
        + one(text, ActionId::parse(text))?
        + one(text, SchemaId::parse(text))?
        + one(text, OperatorId::parse(text))?
        + one(text, AuditTrailEventId::parse(text))?
        + one(text, AuditTrailActionId::parse(text))?)
}

/// A valid id's text with one edit: a character replaced, inserted or removed, or case changed.
fn near_miss() -> impl Strategy<Value = String> {
    (
        any::<u128>(),
        prop::sample::select(vec![
            "org_",
            "org_domain_",
            "key_",
            "audit_log_event_",
            "audit_log_export_",
            "evt_",
            "evt_action_",
        ]),
        any::<prop::sample::Index>(),
        any::<char>(),
        0u8..4,
    )
        .prop_map(|(bits, prefix, index, character, edit)| {
            let mut text: Vec<char> = format!("{prefix}{}", Ulid(bits)).chars().collect();
            let at = index.index(text.len());
            match edit {
                0 => text[at] = character,
                1 => text.insert(at, character),
                2 => {
                    text.remove(at);
                }
                _ => text[at] = text[at].to_ascii_lowercase(),
            }
            text.into_iter().collect()
        })
}

/// Reads one page of `keys` (sorted, distinct) the way a backend follows a plan.
fn read_page(keys: &[u32], request: &PageRequest<u32>) -> vellum_core::Page<u32, u32> {
    let plan = request.plan();
    let mut rows: Vec<u32> = keys
        .iter()
        .copied()
        .filter(|key| match &plan.bound {
            None => true,
            Some(KeyBound::Above(bound)) => key > bound,
            Some(KeyBound::Below(bound)) => key < bound,
        })
        .collect();
    if !plan.ascending {
        rows.reverse();
    }
    rows.truncate(plan.fetch as usize);
    request.finish(rows, |key| *key)
}

proptest! {
    #![proptest_config(config(1024))]

    /// Any text is accepted or refused by every id parser without a panic; an accepted one is
    /// the id's one spelling; no text is an id of two kinds.
    #[test]
    fn any_text_is_an_id_or_refused(text in prop_oneof![any::<String>(), "(org_|evt_|key_|audit_log_event_)[0-9A-Za-z]{24,28}", near_miss()]) {
        prop_assert!(parse_every_kind(&text)? <= 1, "{} parses as two kinds of id", text);
    }

    /// Every id writes to text that parses back to it, as its own kind only; the legacy and the
    /// newer name of one event convert into each other.
    #[test]
    fn ids_round_trip_through_their_text(bits in any::<u128>()) {
        let organization = OrganizationId::from_ulid(Ulid(bits));
        prop_assert_eq!(OrganizationId::parse(&organization.to_string()), Ok(organization));
        prop_assert_eq!(parse_every_kind(&organization.to_string())?, 1);
        let event = EventId::from_ulid(Ulid(bits));
        prop_assert_eq!(EventId::parse(&event.to_string()), Ok(event));
        prop_assert_eq!(parse_every_kind(&event.to_string())?, 1);
        let legacy = AuditTrailEventId::from(event);
        prop_assert_eq!(AuditTrailEventId::parse(&legacy.to_string()), Ok(legacy));
        prop_assert_eq!(EventId::from(legacy), event);
        prop_assert!(EventId::parse(&legacy.to_string()).is_err());
        let export = ExportId::from_ulid(Ulid(bits));
        prop_assert_eq!(ExportId::parse(&export.to_string()), Ok(export));
        let lower = organization.to_string().to_lowercase();
        if lower != organization.to_string() {
            prop_assert!(OrganizationId::parse(&lower).is_err(), "{} parses", lower);
        }
    }

    /// Walking a list page by page with the cursors each page names visits every object once,
    /// in the list's order, in every order and from either end; walking back retraces it.
    #[test]
    fn cursors_walk_every_object_exactly_once(
        keys in prop::collection::btree_set(any::<u32>(), 0..60),
        limit in 1u32..12,
        order in prop::sample::select(vec![Order::Asc, Order::Desc, Order::Normal]),
    ) {
        let keys: Vec<u32> = keys.into_iter().collect();
        let mut displayed = keys.clone();
        if order != Order::Asc {
            displayed.reverse();
        }
        // In `normal` order `before` moves forward; in the others `after` does.
        let forward = |key| if order == Order::Normal { Cursor::Before(key) } else { Cursor::After(key) };
        let backward = |key| if order == Order::Normal { Cursor::After(key) } else { Cursor::Before(key) };
        let next_of = |page: &vellum_core::Page<u32, u32>| if order == Order::Normal { page.list_metadata.before } else { page.list_metadata.after };
        let previous_of = |page: &vellum_core::Page<u32, u32>| if order == Order::Normal { page.list_metadata.after } else { page.list_metadata.before };

        let mut request = PageRequest { limit, order, cursor: None };
        let mut pages = Vec::new();
        loop {
            let page = read_page(&keys, &request);
            prop_assert!(page.data.len() <= limit as usize);
            for cursor in [page.list_metadata.before, page.list_metadata.after].into_iter().flatten() {
                prop_assert!(page.data.contains(&cursor), "cursor {} is not on its page", cursor);
            }
            let next = next_of(&page);
            pages.push(page);
            match next {
                Some(key) => request.cursor = Some(forward(key)),
                None => break,
            }
            prop_assert!(pages.len() <= keys.len() + 1, "the walk does not end");
        }
        let walked: Vec<u32> = pages.iter().flat_map(|page| page.data.iter().copied()).collect();
        prop_assert_eq!(&walked, &displayed);
        let seen: BTreeSet<u32> = walked.iter().copied().collect();
        prop_assert_eq!(seen.len(), walked.len());

        // Back from the last page: every earlier page again, in reverse.
        let mut back = Vec::new();
        let mut previous = pages.last().and_then(previous_of);
        while let Some(key) = previous {
            let page = read_page(&keys, &PageRequest { limit, order, cursor: Some(backward(key)) });
            previous = previous_of(&page);
            back.push(page.data);
            prop_assert!(back.len() <= pages.len(), "the walk back does not end");
        }
        let expected_back: Vec<Vec<u32>> = pages.iter().rev().skip(1).map(|page| page.data.clone()).collect();
        prop_assert_eq!(back, expected_back);
    }
}
