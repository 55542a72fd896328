//! The storage conformance suite: behaviour every [`Store`] backend must show.
//!
//! A backend runs the whole suite with one macro call, given an async function that opens a
//! fresh, empty store and returns it with a guard that cleans up when dropped:
//!
//! ```text
//! vellum_store::store_conformance_suite!(open_fresh_store);
//! ```
//!
//! One module per capability trait: `organizations` (`OrganizationStore`), `access`
//! (`AccessStore`), `schemas` (`SchemaStore`), `events` (`EventStore`), `logs` (`LogStore`,
//! every proof checked against the core's Merkle math), `exports` (`ExportStore`), and `writes`
//! (what every write shares: concurrency, a failing write, closing). Together they call every
//! method of `Store`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use vellum_core::event::{Actor, Context, MetadataValue, Target};
use vellum_core::organization::{DomainInput, DomainState};
use vellum_core::schema::{SchemaDefinition, TargetSchema};
use vellum_core::{
    Cursor, EventId, EventInput, NewOrganization, Order, OrganizationId, OrganizationUpdate, PageRequest, Timestamp,
};

use crate::{
    AppendOutcome, AuditTrailFilter, EventFilter, IdempotencyClaim, NewEvent, OrganizationFilter, Store, StoreError,
    generate_api_key_secret,
};

/// Expands to one `#[tokio::test]` per conformance check, each on a fresh store from `$open`.
#[macro_export]
macro_rules! store_conformance_suite {
    ($open:path) => {
        $crate::store_conformance_suite!(@tests $open;
            organizations_round_trip,
            external_ids_are_unique_among_live_organizations,
            organizations_page_in_every_order,
            organizations_filter_by_domain_and_name,
            api_keys_lifecycle,
            operators_and_sessions,
            sign_in_throttle_counts_across_callers,
            concurrent_writes_are_all_durable_and_distinct,
            a_failing_write_does_not_disturb_its_batch,
            schemas_are_versioned_per_action,
            events_append_in_log_order_and_list_by_occurrence,
            events_filter_by_every_field,
            idempotency_keys_replay_and_refuse,
            concurrent_identical_claims_store_once,
            retention_is_per_organization,
            exports_move_through_their_states_once,
            event_bounds_agree_with_listing_and_the_export_filter,
            audit_trail_events_list_across_organizations,
            log_proofs_and_checkpoints_agree_with_the_core_math,
            concurrent_checkpoints_are_consistent,
            close_keeps_accepted_writes_and_refuses_later_calls,
            export_claims_lease_each_export_to_one_worker,
            concurrent_export_claims_never_share_an_export,
            purge_steps_remove_payloads_and_keep_the_tree,
            deleted_organizations_are_purged_too,
            a_hold_stops_purge_steps_already_running,
            erase_steps_rewrite_events_and_keep_their_leaves,
            streams_round_trip,
            stream_deliveries_are_leased_and_move_the_cursor_once,
            concurrent_stream_claims_never_share_a_stream,
            portal_links_open_once_and_revoke_with_their_sessions,
            concurrent_opens_spend_a_link_once,
        );
    };
    (@tests $open:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $open().await;
                $crate::conformance::$name(std::sync::Arc::new(store)).await;
            }
        )*
    };
}

mod access;
mod events;
mod exports;
mod logs;
mod organizations;
mod portal;
mod retention;
mod schemas;
mod streams;
mod writes;

pub use access::*;
pub use events::*;
pub use exports::*;
pub use logs::*;
pub use organizations::*;
pub use portal::*;
pub use retention::*;
pub use schemas::*;
pub use streams::*;
pub use writes::*;

/// A minimal valid creation request.
pub fn new_organization(name: &str) -> NewOrganization {
    NewOrganization {
        name: name.to_owned(),
        external_id: None,
        metadata: BTreeMap::new(),
        domains: Vec::new(),
        allow_profiles_outside_organization: false,
    }
}

fn domain(name: &str) -> DomainInput {
    DomainInput {
        domain: name.to_owned(),
        state: DomainState::Pending,
    }
}

fn schema(types: &[&str]) -> SchemaDefinition {
    SchemaDefinition {
        targets: types
            .iter()
            .map(|name| TargetSchema {
                target_type: (*name).to_owned(),
                metadata: None,
            })
            .collect(),
        actor_metadata: Some(json!({"type": "object", "properties": {}})),
        metadata: None,
    }
}

/// A valid event of schema version 1 at `millis`: `action` by user `actor` (with a name and
/// metadata), naming `targets` as `(type, id)`, from a fixed location, with event metadata.
pub fn event_at(millis: i64, action: &str, actor: &str, targets: &[(&str, &str)]) -> NewEvent {
    NewEvent {
        input: EventInput {
            action: action.to_owned(),
            occurred_at: Timestamp::from_unix_millis(millis).unwrap(),
            version: None,
            actor: Actor {
                id: actor.to_owned(),
                actor_type: "user".into(),
                name: Some(format!("Name of {actor}")),
                metadata: Some([("role".to_owned(), MetadataValue::String("admin".into()))].into()),
            },
            targets: targets
                .iter()
                .map(|(target_type, id)| Target {
                    id: (*id).to_owned(),
                    target_type: (*target_type).to_owned(),
                    name: None,
                    metadata: None,
                })
                .collect(),
            context: Context {
                location: "192.0.2.7".into(),
                user_agent: Some("test-agent".into()),
            },
            metadata: Some(
                [
                    ("flag".to_owned(), MetadataValue::Bool(true)),
                    ("n".to_owned(), MetadataValue::Number(7.into())),
                ]
                .into(),
            ),
            audit_trail: None,
            system: false,
        },
        schema_version: 1,
    }
}

async fn appended(store: &impl Store, organization: OrganizationId, events: Vec<NewEvent>) -> Vec<vellum_core::Event> {
    match store.append_events(organization, events, None).await.unwrap() {
        AppendOutcome::Appended(events) => events,
        other => panic!("expected an append, got {other:?}"),
    }
}

async fn list_ids(
    store: &impl Store,
    organization: OrganizationId,
    filter: EventFilter,
    page: PageRequest<EventId>,
) -> Vec<EventId> {
    store
        .list_events(organization, filter, page)
        .await
        .unwrap()
        .data
        .into_iter()
        .map(|event| event.id)
        .collect()
}

fn claim(key: u8, request: u8) -> IdempotencyClaim {
    IdempotencyClaim {
        key_hash: [key; 16],
        request_hash: [request; 16],
        record: None,
    }
}

async fn count_events(store: &impl Store, organization: OrganizationId) -> usize {
    store
        .list_events(
            organization,
            EventFilter::default(),
            PageRequest {
                limit: 100,
                ..PageRequest::default()
            },
        )
        .await
        .unwrap()
        .data
        .len()
}

fn export_filter(start: i64, end: i64) -> vellum_core::export::ExportFilter {
    vellum_core::export::ExportFilter {
        range_start: Timestamp::from_unix_millis(start).unwrap(),
        range_end: Timestamp::from_unix_millis(end).unwrap(),
        actions: Vec::new(),
        actor_names: Vec::new(),
        actor_ids: Vec::new(),
        target_types: Vec::new(),
    }
}

fn legacy_event(millis: i64, group: &str, action_type: &str, actor: &str, target: &str, metadata: &str) -> NewEvent {
    let body = json!({
        "group": group,
        "location": "192.0.2.1",
        "action": format!("document.{action_type}"),
        "action_type": action_type,
        "actor_name": format!("Name of {actor}"),
        "actor_id": actor,
        "target_name": format!("Doc {target}"),
        "target_id": target,
        "occurred_at": Timestamp::from_unix_millis(millis).unwrap().to_wire(),
        "metadata": {"note": metadata},
    });
    let mut errors = vellum_core::ValidationErrors::new();
    let body = vellum_core::json::RawObject::from(body.as_object().unwrap());
    let input = vellum_core::audit_trail::validate_audit_trail_event(&body, &mut errors)
        .unwrap_or_else(|| panic!("invalid legacy event: {errors}"));
    NewEvent {
        input,
        schema_version: 0,
    }
}

async fn audit_trail_ids(store: &impl Store, filter: AuditTrailFilter, page: PageRequest<EventId>) -> Vec<EventId> {
    store
        .list_audit_trail_events(filter, page)
        .await
        .unwrap()
        .data
        .into_iter()
        .map(|event| event.id)
        .collect()
}
