//! The stored form of an event's details (`vellum_core::canonical::event_details_json`: actor,
//! targets, context, metadata, legacy fields), decoded straight into the core types. Every
//! backend stores the same text, so that reading it back is written once.

use vellum_core::canonical::PreparedLeaf;
use vellum_core::event::{Actor, Context, Metadata, MetadataValue, Target};
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
    events
        .into_iter()
        .map(|new_event| {
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
            };
            let payload = String::from_utf8(vellum_core::canonical::event_details_json(&event.input))
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

/// An event's details as decoded: actor, targets, context, metadata, legacy fields, and whether
/// Vellum recorded it.
pub(crate) type Decoded = (
    Actor,
    Vec<Target>,
    Context,
    Option<Metadata>,
    Option<vellum_core::audit_trail::AuditTrailFields>,
    bool,
);

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
    Ok((
        actor,
        targets,
        context,
        stored.metadata.map(|metadata| metadata.0),
        audit_trail,
        stored.system,
    ))
}
