//! What an `Idempotency-Key` remembers of a batch besides the ids of the events stored: which
//! items were refused, and why. A storage encoding owned by this crate (versioned JSON), never a
//! wire shape: the HTTP layer renders the outcome it decodes to, as it renders a fresh one.

use serde::{Deserialize, Serialize};
use vellum_core::schema::SchemaViolation;
use vellum_core::{EventId, FieldError, ValidationErrors};

use crate::{BatchItem, BatchOutcome, Rejection};

const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Record {
    v: u8,
    items: Vec<Item>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "t")]
enum Item {
    #[serde(rename = "stored")]
    Stored,
    #[serde(rename = "fields")]
    Fields { errors: Vec<[String; 3]> },
    #[serde(rename = "schema")]
    Schema { violations: Vec<[String; 2]> },
}

/// Encodes the items of a batch before it is appended (stored items are filled in with the ids
/// the store keeps with the claim).
pub(crate) fn encode(items: &[Option<Rejection>]) -> String {
    let items = items
        .iter()
        .map(|item| match item {
            None => Item::Stored,
            Some(Rejection::Fields(errors)) => Item::Fields {
                errors: errors
                    .errors()
                    .iter()
                    .map(|error| [error.field.clone(), error.code.to_string(), error.message.clone()])
                    .collect(),
            },
            Some(Rejection::Schema(violations)) => Item::Schema {
                violations: violations
                    .iter()
                    .map(|violation| [violation.instance_path.clone(), violation.message.clone()])
                    .collect(),
            },
        })
        .collect();
    serde_json::to_string(&Record { v: VERSION, items }).expect("a record serializes")
}

/// What a stored record says.
pub(crate) enum Decoded {
    /// The outcome, with the stored events' ids put back in place.
    Outcome(BatchOutcome),
    /// A record this version does not write: the response body an earlier version stored.
    Verbatim(String),
}

pub(crate) fn decode(text: String, event_ids: &[EventId]) -> Result<Decoded, String> {
    let Ok(record) = serde_json::from_str::<Record>(&text) else {
        // Before records, the store kept the batch response itself; anything else is damage.
        let earlier_body = serde_json::from_str::<serde_json::Value>(&text)
            .is_ok_and(|body| body.get("object").and_then(serde_json::Value::as_str) == Some("audit_log_event_batch"));
        return if earlier_body {
            Ok(Decoded::Verbatim(text))
        } else {
            Err("an idempotency record is unreadable".into())
        };
    };
    if record.v != VERSION {
        return Err(format!("idempotency record version {} is unknown", record.v));
    }
    let mut ids = event_ids.iter();
    let items = record
        .items
        .into_iter()
        .map(|item| match item {
            Item::Stored => ids
                .next()
                .map(|id| BatchItem::Stored(*id))
                .ok_or_else(|| "the record names more stored events than the claim kept".to_owned()),
            Item::Fields { errors } => {
                let mut collected = ValidationErrors::new();
                for [field, code, message] in errors {
                    collected.push_error(FieldError {
                        field,
                        code: code.into(),
                        message,
                    });
                }
                Ok(BatchItem::Rejected(Rejection::Fields(collected)))
            }
            Item::Schema { violations } => Ok(BatchItem::Rejected(Rejection::Schema(
                violations
                    .into_iter()
                    .map(|[instance_path, message]| SchemaViolation { instance_path, message })
                    .collect(),
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.next().is_some() {
        return Err("the claim kept more stored events than the record names".into());
    }
    Ok(Decoded::Outcome(BatchOutcome { items }))
}
