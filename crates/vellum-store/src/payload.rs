//! The stored form of an event's details (`vellum_core::canonical::event_details_json`: actor,
//! targets, context, metadata, legacy fields), decoded straight into the core types. Every
//! backend stores the same text, so that reading it back is written once.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use vellum_core::canonical::PreparedLeaf;
use vellum_core::event::{Actor, Context, Metadata, MetadataValue, Target};
use vellum_core::seal::{SALT_LEN, Seal, Seals};
use vellum_core::{Event, EventId, EventInput, OrganizationId, Timestamp};

use crate::ids::IdGenerator;
use crate::{NewEvent, StoreError};

/// An event made ready for appending: id and receipt time assigned, stored payload and the
/// canonical encoding computed, so that only its position is left to the appender.
#[derive(Debug)]
pub(crate) struct PreparedEvent {
    pub(crate) event: Event,
    pub(crate) leaf: PreparedLeaf,
    pub(crate) payload: String,
}

/// Prepares events received now, off the async workers when there are many (encoding is most of
/// an append's CPU).
pub(crate) async fn prepare_now(
    ids: &std::sync::Arc<IdGenerator>,
    organization_id: OrganizationId,
    events: Vec<NewEvent>,
) -> Result<Vec<PreparedEvent>, StoreError> {
    let received_at = crate::now();
    if events.len() <= 64 {
        return Ok(prepare(ids, organization_id, events, received_at));
    }
    let ids = std::sync::Arc::clone(ids);
    tokio::task::spawn_blocking(move || prepare(&ids, organization_id, events, received_at))
        .await
        .map_err(|error| StoreError::Internal(format!("preparing events failed: {error}")))
}

/// Prepares events outside the writer (this is most of the CPU work of an append).
pub(crate) fn prepare(
    ids: &IdGenerator,
    organization_id: OrganizationId,
    events: Vec<NewEvent>,
    received_at: Timestamp,
) -> Vec<PreparedEvent> {
    // Each party of each event gets its own salt (`vellum_core::seal`), drawn in one call.
    let parties: usize = events.iter().map(|new_event| 1 + new_event.input.targets.len()).sum();
    let mut random = vec![0u8; parties * SALT_LEN];
    getrandom::fill(&mut random).expect("the operating system's random source is available");
    let mut random = random.as_slice();
    events
        .into_iter()
        .map(|new_event| {
            let targets = new_event.input.targets.len();
            let system = new_event.input.system;
            let (salts, rest) = random.split_at((1 + targets) * SALT_LEN);
            random = rest;
            let event = Event {
                id: EventId::from_ulid(ids.next()),
                organization_id,
                log_index: 0,
                received_at,
                schema_version: new_event.schema_version,
                input: EventInput {
                    version: Some(new_event.schema_version),
                    ..new_event.input
                },
                // Vellum's own records name no person: they keep the v1 leaf.
                seals: (!system).then(|| Seals::from_random(salts, targets)),
                erased_by: Vec::new(),
            };
            let payload = String::from_utf8(vellum_core::canonical::event_details_json(&event))
                .expect("JSON written from strings is UTF-8");
            PreparedEvent {
                leaf: PreparedLeaf::new(&event),
                payload,
                event,
            }
        })
        .collect()
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored event has an invalid {what}"))
}

/// An event's details as decoded: everything but what the store keeps in columns.
pub(crate) struct Decoded {
    actor: Actor,
    targets: Vec<Target>,
    context: Context,
    metadata: Option<Metadata>,
    audit_trail: Option<vellum_core::audit_trail::AuditTrailFields>,
    system: bool,
    seals: Option<Seals>,
    erased_by: Vec<u64>,
}

/// The columns every backend keeps beside the payload.
pub(crate) struct EventColumns {
    pub(crate) id: EventId,
    pub(crate) organization_id: OrganizationId,
    pub(crate) log_index: u64,
    pub(crate) received_at: Timestamp,
    pub(crate) schema_version: u32,
    pub(crate) action: String,
    pub(crate) occurred_at: Timestamp,
}

impl Decoded {
    /// The event, with the columns read beside the payload.
    pub(crate) fn into_event(self, columns: EventColumns) -> Event {
        Event {
            id: columns.id,
            organization_id: columns.organization_id,
            log_index: columns.log_index,
            received_at: columns.received_at,
            schema_version: columns.schema_version,
            input: EventInput {
                action: columns.action,
                occurred_at: columns.occurred_at,
                version: Some(columns.schema_version),
                actor: self.actor,
                targets: self.targets,
                context: self.context,
                metadata: self.metadata,
                audit_trail: self.audit_trail,
                system: self.system,
            },
            seals: self.seals,
            erased_by: self.erased_by,
        }
    }
}

// The stored payload (`event_details_json`), decoded straight into the core types: this runs for
// every event read (listing, exports, verification), so no intermediate JSON tree is built.

#[derive(serde::Deserialize)]
struct StoredPayload {
    actor: StoredParty,
    targets: Vec<StoredParty>,
    context: StoredContext,
    #[serde(default)]
    metadata: Option<StoredMetadata>,
    #[serde(default)]
    audit_trail: Option<StoredAuditTrail>,
    #[serde(default)]
    system: bool,
    #[serde(default)]
    seals: Option<Vec<StoredSeal>>,
    #[serde(default)]
    erased_by: Vec<u64>,
}

/// A party's seal as stored: its salt, or what an erasure left.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum StoredSeal {
    Salt(String),
    Erased { erased: String },
}

impl StoredSeal {
    fn decode(self) -> Option<Seal> {
        match self {
            Self::Salt(text) => Some(Seal::Salt(BASE64.decode(text).ok()?.try_into().ok()?)),
            Self::Erased { erased } => Some(Seal::Erased(BASE64.decode(erased).ok()?.try_into().ok()?)),
        }
    }
}

#[derive(serde::Deserialize)]
struct StoredAuditTrail {
    action_type: String,
    group: String,
    #[serde(default)]
    latitude: Option<String>,
    #[serde(default)]
    longitude: Option<String>,
}

#[derive(serde::Deserialize)]
struct StoredParty {
    id: String,
    #[serde(rename = "type")]
    party_type: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    metadata: Option<StoredMetadata>,
}

#[derive(serde::Deserialize)]
struct StoredContext {
    location: String,
    #[serde(default)]
    user_agent: Option<String>,
}

/// Metadata: an object of strings, numbers and booleans.
struct StoredMetadata(Metadata);

impl<'de> serde::Deserialize<'de> for StoredMetadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> serde::de::Visitor<'de> for MapVisitor {
            type Value = StoredMetadata;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a metadata object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut metadata = Metadata::new();
                while let Some((key, StoredValue(value))) = map.next_entry::<String, StoredValue>()? {
                    metadata.insert(key, value);
                }
                Ok(StoredMetadata(metadata))
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

struct StoredValue(MetadataValue);

impl<'de> serde::Deserialize<'de> for StoredValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl serde::de::Visitor<'_> for ValueVisitor {
            type Value = StoredValue;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a string, number or boolean")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(StoredValue(MetadataValue::String(text.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(StoredValue(MetadataValue::String(text)))
            }
            fn visit_bool<E: serde::de::Error>(self, flag: bool) -> Result<Self::Value, E> {
                Ok(StoredValue(MetadataValue::Bool(flag)))
            }
            fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<Self::Value, E> {
                Ok(StoredValue(MetadataValue::Number(number.into())))
            }
            fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<Self::Value, E> {
                Ok(StoredValue(MetadataValue::Number(number.into())))
            }
            fn visit_f64<E: serde::de::Error>(self, number: f64) -> Result<Self::Value, E> {
                serde_json::Number::from_f64(number)
                    .map(|number| StoredValue(MetadataValue::Number(number)))
                    .ok_or_else(|| E::custom("a metadata number is not finite"))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Decodes the stored details of an event.
pub(crate) fn decode_payload(payload: &str) -> Result<Decoded, StoreError> {
    let stored: StoredPayload = serde_json::from_str(payload).map_err(|_| corrupt("payload"))?;
    let actor = Actor {
        id: stored.actor.id,
        actor_type: stored.actor.party_type,
        name: stored.actor.name,
        metadata: stored.actor.metadata.map(|metadata| metadata.0),
    };
    let targets = stored
        .targets
        .into_iter()
        .map(|target| Target {
            id: target.id,
            target_type: target.party_type,
            name: target.name,
            metadata: target.metadata.map(|metadata| metadata.0),
        })
        .collect();
    let context = Context {
        location: stored.context.location,
        user_agent: stored.context.user_agent,
    };
    let audit_trail = stored
        .audit_trail
        .map(|fields| vellum_core::audit_trail::AuditTrailFields {
            group: fields.group,
            action_type: fields.action_type,
            latitude: fields.latitude,
            longitude: fields.longitude,
        });
    let seals = match stored.seals {
        None => None,
        Some(seals) => {
            let mut seals = seals.into_iter().map(StoredSeal::decode);
            let actor = seals.next().flatten().ok_or_else(|| corrupt("seal"))?;
            let targets = seals.collect::<Option<Vec<_>>>().ok_or_else(|| corrupt("seal"))?;
            Some(Seals { actor, targets })
        }
    };
    Ok(Decoded {
        actor,
        targets,
        context,
        metadata: stored.metadata.map(|metadata| metadata.0),
        audit_trail,
        system: stored.system,
        seals,
        erased_by: stored.erased_by,
    })
}

/// An export's stored filter without these values (an erased person's ids and names), or `None`
/// when it names none of them. Only for exports that are no longer run: removing a value from a
/// list widens what the filter matches.
pub(crate) fn filter_without(filter: &str, values: &[String]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(filter).ok()?;
    let mut parsed = vellum_core::export::ExportFilter::from_json(&value)?;
    parsed.forget(values).then(|| parsed.to_json().to_string())
}

/// Adds what an erasure forgets in export filters because of this event, before it is erased:
/// the name its actor had, when the actor is the subject (`values` starts with the subject's ids).
pub(crate) fn note_erased_values(values: &mut Vec<String>, subject: &vellum_core::seal::ErasureSubject, event: &Event) {
    if let Some(name) = &event.input.actor.name
        && subject.ids.contains(&event.input.actor.id)
        && !values.contains(name)
    {
        values.push(name.clone());
    }
}
