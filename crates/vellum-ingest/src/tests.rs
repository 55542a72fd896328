//! The service against a real embedded store.

use std::sync::Arc;

use vellum_core::schema::{SchemaDefinition, TargetSchema};
use vellum_core::{EventInput, OrganizationId, ValidationErrors};
use vellum_store::{IdempotencyClaim, SqliteConfig, SqliteStore, Store, StoreError};

use super::*;

async fn service() -> (IngestService, Arc<dyn Store>, OrganizationId, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path())).unwrap());
    let organization = store
        .create_organization(vellum_store::conformance::new_organization("Ingest"))
        .await
        .unwrap()
        .id;
    store
        .create_schema(
            "doc.read".into(),
            SchemaDefinition {
                targets: vec![TargetSchema {
                    target_type: "doc".into(),
                    metadata: None,
                }],
                actor_metadata: None,
                metadata: None,
            },
        )
        .await
        .unwrap();
    (IngestService::new(Arc::clone(&store)), store, organization, dir)
}

fn event(action: &str, target_type: &str) -> EventInput {
    vellum_store::conformance::event_at(1_700_000_000_000, action, "u1", &[(target_type, "d1")]).input
}

fn shape_error() -> ValidationErrors {
    let mut errors = ValidationErrors::new();
    errors.push("events.1.action", "invalid_type", "action is a string");
    errors
}

fn key(body: &str) -> IdempotencyKey {
    IdempotencyKey::new(b"key-1", "/audit_logs/events/batch", body.as_bytes()).unwrap()
}

#[tokio::test]
async fn a_batch_stores_what_passes_and_replays_its_whole_outcome() {
    let (service, store, organization, _dir) = service().await;
    let mut committed = service.subscribe();
    let items = vec![
        Ok(event("doc.read", "doc")),
        Err(shape_error()),
        Ok(event("doc.read", "folder")),
        Ok(event("doc.read", "doc")),
    ];
    let BatchResult::Outcome(first) = service
        .create_batch(organization, items.clone(), Some(key("a")))
        .await
        .unwrap()
    else {
        panic!("a fresh batch has an outcome");
    };
    assert_eq!(first.succeeded(), 2);
    assert!(matches!(first.items[1], BatchItem::Rejected(Rejection::Fields(_))));
    assert!(
        matches!(&first.items[2], BatchItem::Rejected(Rejection::Schema(violations)) if violations[0].instance_path == "/targets/0/type")
    );

    // Subscribers hear of the commit, with the events in log order.
    let heard = committed.recv().await.unwrap();
    assert_eq!(heard.organization_id, organization);
    let heard_ids: Vec<_> = heard.events.iter().map(|event| event.id).collect();
    let stored_ids: Vec<_> = first
        .items
        .iter()
        .filter_map(|item| match item {
            BatchItem::Stored(id) => Some(*id),
            BatchItem::Rejected(_) => None,
        })
        .collect();
    assert_eq!(heard_ids, stored_ids);
    assert_eq!(
        heard.events.iter().map(|event| event.log_index).collect::<Vec<_>>(),
        [0, 1]
    );

    // The same request again: the same outcome, item by item, and nothing stored or heard.
    let again = service
        .create_batch(organization, items.clone(), Some(key("a")))
        .await
        .unwrap();
    assert_eq!(again, BatchResult::Outcome(first));
    assert_eq!(store.log_tree_head(organization).await.unwrap().size, 2);
    assert!(committed.try_recv().is_err());

    // The same key with another request is refused.
    assert!(matches!(
        service.create_batch(organization, items, Some(key("b"))).await,
        Err(IngestError::KeyReused)
    ));
}

#[tokio::test]
async fn a_batch_claimed_by_an_earlier_version_replays_its_stored_body() {
    let (service, store, organization, _dir) = service().await;
    let earlier = key("old");
    let body = r#"{"object":"audit_log_event_batch","succeeded":0,"failed":1,"data":[]}"#;
    store
        .append_events(
            organization,
            Vec::new(),
            Some(IdempotencyClaim {
                record: Some(body.into()),
                ..earlier.claim(None)
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        service.create_batch(organization, vec![], Some(earlier)).await.unwrap(),
        BatchResult::Verbatim(body.into())
    );
}

#[tokio::test]
async fn a_damaged_batch_record_is_an_error_not_a_response() {
    let (service, store, organization, _dir) = service().await;
    let damaged = key("damaged");
    store
        .append_events(
            organization,
            Vec::new(),
            Some(IdempotencyClaim {
                record: Some("{\"v\":1,\"items\":[{\"t\":".into()),
                ..damaged.claim(None)
            }),
        )
        .await
        .unwrap();
    assert!(matches!(
        service.create_batch(organization, vec![], Some(damaged)).await,
        Err(IngestError::Store(StoreError::Internal(_)))
    ));
}

#[tokio::test]
async fn one_event_is_checked_claimed_and_announced() {
    let (service, _store, organization, _dir) = service().await;
    let mut committed = service.subscribe();
    let one = IdempotencyKey::new(b"k", "/audit_logs/events", b"body").unwrap();
    let created = service
        .create_event(organization, event("doc.read", "doc"), Some(one.clone()))
        .await
        .unwrap();
    let Created::Stored(id) = created else { panic!("stored") };
    assert_eq!(committed.recv().await.unwrap().events[0].id, id);
    // A retry is answered as the first, even when it would now fail its schema check.
    assert_eq!(
        service
            .create_event(organization, event("doc.read", "folder"), Some(one))
            .await
            .unwrap(),
        Created::Replayed
    );
    assert!(matches!(
        service
            .create_event(organization, event("doc.read", "folder"), None)
            .await,
        Err(IngestError::Rejected(Rejection::Schema(_)))
    ));
    assert!(matches!(
        service.create_event(organization, event("nope", "doc"), None).await,
        Err(IngestError::Rejected(Rejection::Schema(violations))) if violations[0].instance_path == "/action"
    ));
    let unknown = OrganizationId::from_ulid(ulid_for_tests());
    assert!(matches!(
        service.create_event(unknown, event("doc.read", "doc"), None).await,
        Err(IngestError::Store(StoreError::NotFound { .. }))
    ));
    assert!(committed.try_recv().is_err(), "refusals are not announced");
}

#[tokio::test]
async fn an_empty_or_refused_batch_still_names_an_unknown_organization() {
    let (service, _store, _organization, _dir) = service().await;
    let unknown = OrganizationId::from_ulid(ulid_for_tests());
    assert!(matches!(
        service.create_batch(unknown, vec![Err(shape_error())], None).await,
        Err(IngestError::Store(StoreError::NotFound { .. }))
    ));
}

#[test]
fn keys_are_bounded_and_bound_to_their_request() {
    assert!(IdempotencyKey::new(b"", "/p", b"").is_err());
    assert!(IdempotencyKey::new(&[b'k'; MAX_IDEMPOTENCY_KEY_BYTES + 1], "/p", b"").is_err());
    let key = IdempotencyKey::new(&[b'k'; MAX_IDEMPOTENCY_KEY_BYTES], "/p", b"x").unwrap();
    assert_ne!(
        key,
        IdempotencyKey::new(&[b'k'; MAX_IDEMPOTENCY_KEY_BYTES], "/q", b"x").unwrap()
    );
    assert_ne!(
        key,
        IdempotencyKey::new(&[b'k'; MAX_IDEMPOTENCY_KEY_BYTES], "/p", b"y").unwrap()
    );
}

fn ulid_for_tests() -> vellum_core::id::Ulid {
    vellum_core::id::Ulid::from_parts(1, 42)
}
