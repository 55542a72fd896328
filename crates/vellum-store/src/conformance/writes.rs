//! Conformance: Writes in general: concurrency, failures, closing.

use super::*;

/// Many concurrent writers: every acknowledged write is there, with distinct ids.
pub async fn concurrent_writes_are_all_durable_and_distinct(store: Arc<impl Store>) {
    let mut tasks = Vec::new();
    for index in 0..64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .create_organization(new_organization(&format!("Concurrent {index}")))
                .await
                .unwrap()
                .id
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 64);
    let page = store
        .list_organizations(
            OrganizationFilter::default(),
            PageRequest {
                limit: 100,
                ..PageRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.data.len(), 64);
}

/// Writes that fail (here: external id conflicts) fail alone; the others in flight commit.
pub async fn a_failing_write_does_not_disturb_its_batch(store: Arc<impl Store>) {
    let mut tasks = Vec::new();
    for index in 0..40 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut request = new_organization(&format!("Racer {index}"));
            // Four groups of ten racing for the same external id.
            request.external_id = Some(format!("group-{}", index % 4));
            store.create_organization(request).await
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!((created, conflicts), (4, 36));
    for group in 0..4 {
        store
            .get_organization_by_external_id(&format!("group-{group}"))
            .await
            .unwrap();
    }
    let page = store
        .list_organizations(
            OrganizationFilter::default(),
            PageRequest {
                limit: 100,
                ..PageRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.data.len(), 4, "refused writes left nothing behind");
}

/// A store answers readiness while open, finishes accepted writes when closed, and refuses
/// everything afterwards with `Unavailable`.
pub async fn close_keeps_accepted_writes_and_refuses_later_calls(store: Arc<impl Store>) {
    store.check_ready().await.unwrap();
    let organization = store.create_organization(new_organization("Closing")).await.unwrap().id;
    let mut writes = Vec::new();
    for n in 0..10 {
        let store = Arc::clone(&store);
        writes.push(tokio::spawn(async move {
            store
                .append_events(organization, vec![event_at(n, "a", "u", &[])], None)
                .await
        }));
    }
    let mut acknowledged = 0;
    for write in writes {
        if write.await.unwrap().is_ok() {
            acknowledged += 1;
        }
    }
    assert_eq!(acknowledged, 10);
    store.close().await.unwrap();
    assert!(matches!(store.check_ready().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(
        store.get_organization(organization).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store
            .append_events(organization, vec![event_at(1, "a", "u", &[])], None)
            .await,
        Err(StoreError::Unavailable(_))
    ));
}
