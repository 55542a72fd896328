//! The stored text of organizations' metadata and domains and of schema definitions: JSON that
//! every backend stores the same way, encoded and decoded once here.

use std::collections::BTreeMap;

use serde_json::json;
use vellum_core::organization::DomainState;
use vellum_core::schema::{SchemaDefinition, TargetSchema};
use vellum_core::{OrganizationDomain, OrganizationDomainId, Timestamp};

use crate::StoreError;

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("stored organization has an invalid {what}"))
}

fn timestamp(millis: i64, what: &str) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_millis(millis).ok_or_else(|| corrupt(what))
}

pub(crate) fn encode_metadata(metadata: &BTreeMap<String, String>) -> String {
    serde_json::to_string(metadata).expect("a map of strings always serialises")
}

pub(crate) fn encode_domains(domains: &[OrganizationDomain]) -> String {
    let encoded: Vec<_> = domains
        .iter()
        .map(|domain| {
            json!({
                "id": domain.id.to_string(),
                "domain": domain.domain,
                "state": domain.state.as_str(),
                "created_at": domain.created_at.unix_millis(),
                "updated_at": domain.updated_at.unix_millis(),
            })
        })
        .collect();
    serde_json::Value::Array(encoded).to_string()
}

pub(crate) fn decode_domains(text: &str) -> Result<Vec<OrganizationDomain>, StoreError> {
    let values: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|_| corrupt("domains"))?;
    let mut domains = Vec::with_capacity(values.len());
    for value in values {
        let text_field = |name: &str| {
            value
                .get(name)
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| corrupt("domain"))
        };
        let millis_field = |name: &str| {
            value
                .get(name)
                .and_then(serde_json::Value::as_i64)
                .ok_or_else(|| corrupt("domain"))
                .and_then(|millis| timestamp(millis, "domain timestamp"))
        };
        domains.push(OrganizationDomain {
            id: OrganizationDomainId::parse(text_field("id")?).map_err(|_| corrupt("domain id"))?,
            domain: text_field("domain")?.to_owned(),
            state: DomainState::parse(text_field("state")?).ok_or_else(|| corrupt("domain state"))?,
            created_at: millis_field("created_at")?,
            updated_at: millis_field("updated_at")?,
        });
    }
    Ok(domains)
}

pub(crate) fn encode_definition(definition: &SchemaDefinition) -> String {
    let targets: Vec<_> = definition
        .targets
        .iter()
        .map(|target| match &target.metadata {
            Some(metadata) => json!({"type": target.target_type, "metadata": metadata}),
            None => json!({"type": target.target_type}),
        })
        .collect();
    let mut encoded = serde_json::Map::new();
    encoded.insert("targets".into(), targets.into());
    if let Some(actor_metadata) = &definition.actor_metadata {
        encoded.insert("actor".into(), json!({"metadata": actor_metadata}));
    }
    if let Some(metadata) = &definition.metadata {
        encoded.insert("metadata".into(), metadata.clone());
    }
    serde_json::Value::Object(encoded).to_string()
}

pub(crate) fn decode_definition(text: &str) -> Result<SchemaDefinition, StoreError> {
    let corrupt = || StoreError::Internal("stored schema definition is invalid".into());
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| corrupt())?;
    let targets = value
        .get("targets")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(corrupt)?
        .iter()
        .map(|target| {
            Ok(TargetSchema {
                target_type: target
                    .get("type")
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(corrupt)?
                    .to_owned(),
                metadata: target.get("metadata").cloned(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(SchemaDefinition {
        targets,
        actor_metadata: value.get("actor").and_then(|actor| actor.get("metadata")).cloned(),
        metadata: value.get("metadata").cloned(),
    })
}
