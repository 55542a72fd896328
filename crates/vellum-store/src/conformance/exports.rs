//! Conformance: Export jobs.

use super::*;

/// Exports are created pending, started (counted), and finished exactly once.
pub async fn exports_move_through_their_states_once(store: Arc<impl Store>) {
    use vellum_core::export::{ExportFormat, ExportState};
    let organization = store.create_organization(new_organization("Exports")).await.unwrap().id;
    let mut filter = export_filter(0, 10_000);
    filter.actions = vec!["user.signed_in".into()];
    let created = store
        .create_export(organization, ExportFormat::Ndjson, filter.clone())
        .await
        .unwrap();
    assert_eq!(created.state, ExportState::Pending);
    assert_eq!(
        (created.format, &created.filter, created.attempts),
        (ExportFormat::Ndjson, &filter, 0)
    );
    assert_eq!(store.get_export(created.id).await.unwrap(), created);

    let later = Timestamp::from_unix_millis(created.updated_at.unix_millis() + 1).unwrap();
    let pending = store.exports_in_state(ExportState::Pending, later).await.unwrap();
    assert_eq!(
        pending.iter().map(|export| export.id).collect::<Vec<_>>(),
        vec![created.id]
    );
    assert_eq!(store.start_export(created.id).await.unwrap().attempts, 1);
    assert_eq!(store.start_export(created.id).await.unwrap().attempts, 2);

    let ready = store
        .finish_export(
            created.id,
            crate::ExportOutcome::Ready {
                object_path: "exports/x.ndjson".into(),
                rows: 3,
                bytes: 99,
            },
        )
        .await
        .unwrap();
    assert_eq!(ready.state, ExportState::Ready);
    assert_eq!(
        (ready.object_path.as_deref(), ready.rows, ready.bytes),
        (Some("exports/x.ndjson"), Some(3), Some(99))
    );
    // A finished export is not started or failed again.
    assert_eq!(store.start_export(created.id).await.unwrap().attempts, 2);
    assert!(matches!(
        store
            .finish_export(created.id, crate::ExportOutcome::Failed("late".into()))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let expired = store
        .finish_export(created.id, crate::ExportOutcome::Expired)
        .await
        .unwrap();
    assert_eq!(expired.state, ExportState::Expired);

    let failing = store
        .create_export(organization, ExportFormat::Csv, export_filter(0, 1))
        .await
        .unwrap();
    let failed = store
        .finish_export(failing.id, crate::ExportOutcome::Failed("disk full".into()))
        .await
        .unwrap();
    assert_eq!(
        (failed.state, failed.error.as_deref()),
        (ExportState::Error, Some("disk full"))
    );

    let missing = vellum_core::ExportId::from_ulid(ulid::Ulid::from_parts(1, 1));
    assert!(matches!(
        store.get_export(missing).await,
        Err(StoreError::NotFound { .. })
    ));
    let unknown_organization = OrganizationId::from_ulid(ulid::Ulid::from_parts(1, 1));
    assert!(matches!(
        store
            .create_export(unknown_organization, ExportFormat::Csv, export_filter(0, 1))
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

fn after(timestamp: Timestamp, seconds: i64) -> Timestamp {
    Timestamp::from_unix_millis(timestamp.unix_millis() + seconds * 1000).unwrap()
}

/// A claim takes the oldest pending export without a live lease and counts a start; the lease
/// keeps other workers off until it runs out or is released; only its owner renews it or
/// finishes the export, and finishing ends it.
pub async fn export_claims_lease_each_export_to_one_worker(store: Arc<impl Store>) {
    use vellum_core::export::{ExportFormat, ExportState};
    let organization = store.create_organization(new_organization("Leases")).await.unwrap().id;
    let mut exports = Vec::new();
    for _ in 0..3 {
        let export = store
            .create_export(organization, ExportFormat::Csv, export_filter(0, 1))
            .await
            .unwrap();
        exports.push(export.id);
    }
    let [first, second, finished] = exports[..] else {
        unreachable!()
    };
    store
        .finish_export(finished, crate::ExportOutcome::Failed("done before".into()))
        .await
        .unwrap();

    let start = crate::now();
    let claimed = store.claim_export("a", start, after(start, 30)).await.unwrap().unwrap();
    assert_eq!(
        (claimed.id, claimed.state, claimed.attempts),
        (first, ExportState::Pending, 1)
    );
    let claimed = store.claim_export("b", start, after(start, 30)).await.unwrap().unwrap();
    assert_eq!((claimed.id, claimed.attempts), (second, 1));
    assert_eq!(store.claim_export("c", start, after(start, 30)).await.unwrap(), None);

    // Only the owner renews.
    assert!(matches!(
        store.renew_export_lease(first, "b", after(start, 60)).await,
        Err(StoreError::Conflict(_))
    ));
    store.renew_export_lease(first, "a", after(start, 60)).await.unwrap();

    // At 45 s the second export's lease has run out (the first was renewed): "c" takes it over,
    // and that counts as another start.
    let later = after(start, 45);
    let taken_over = store.claim_export("c", later, after(later, 30)).await.unwrap().unwrap();
    assert_eq!((taken_over.id, taken_over.attempts), (second, 2));
    assert_eq!(store.claim_export("d", later, after(later, 30)).await.unwrap(), None);

    // The worker that lost it can neither finish nor renew it, and its release changes nothing.
    let ready = crate::ExportOutcome::Ready {
        object_path: "exports/second.csv".into(),
        rows: 1,
        bytes: 10,
    };
    assert!(matches!(
        store.finish_leased_export(second, "b", ready.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_export(second).await.unwrap().state, ExportState::Pending);
    assert!(matches!(
        store.renew_export_lease(second, "b", after(later, 60)).await,
        Err(StoreError::Conflict(_))
    ));
    store.release_export_lease(second, "b").await.unwrap();
    assert_eq!(store.claim_export("d", later, after(later, 30)).await.unwrap(), None);

    // The owner finishes it; then it is nobody's, and only the sweep's plain transition applies.
    let finished_ready = store.finish_leased_export(second, "c", ready.clone()).await.unwrap();
    assert_eq!(
        (finished_ready.state, finished_ready.object_path.as_deref()),
        (ExportState::Ready, Some("exports/second.csv"))
    );
    assert!(matches!(
        store.finish_leased_export(second, "c", ready.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.renew_export_lease(second, "c", after(later, 60)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .finish_leased_export(second, "c", crate::ExportOutcome::Expired)
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .finish_export(second, crate::ExportOutcome::Expired)
        .await
        .unwrap();

    // A released lease lets the next claim take the export at once, well before it would run out,
    // and the start it gave back does not count.
    store.release_export_lease(first, "a").await.unwrap();
    let reclaimed = store.claim_export("d", later, after(later, 30)).await.unwrap().unwrap();
    assert_eq!((reclaimed.id, reclaimed.attempts), (first, 1));
    let failed = store
        .finish_leased_export(first, "d", crate::ExportOutcome::Failed("no space".into()))
        .await
        .unwrap();
    assert_eq!(
        (failed.state, failed.error.as_deref()),
        (ExportState::Error, Some("no space"))
    );

    // Finished exports are never claimed, however late.
    let much_later = after(start, 365 * 24 * 3600);
    assert_eq!(
        store
            .claim_export("e", much_later, after(much_later, 30))
            .await
            .unwrap(),
        None
    );
    let missing = vellum_core::ExportId::from_ulid(ulid::Ulid::from_parts(1, 1));
    assert!(matches!(
        store.renew_export_lease(missing, "a", much_later).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.finish_leased_export(missing, "a", ready).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Many workers claiming at once never get the same export, and between them take every one.
pub async fn concurrent_export_claims_never_share_an_export(store: Arc<impl Store>) {
    use vellum_core::export::ExportFormat;
    let organization = store.create_organization(new_organization("Race")).await.unwrap().id;
    let mut created = Vec::new();
    for _ in 0..24 {
        let export = store
            .create_export(organization, ExportFormat::Csv, export_filter(0, 1))
            .await
            .unwrap();
        created.push(export.id);
    }
    let now = crate::now();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut claimed = Vec::new();
            while let Some(export) = store
                .claim_export(&format!("worker-{worker}"), now, after(now, 60))
                .await
                .unwrap()
            {
                assert_eq!(export.attempts, 1);
                claimed.push(export.id);
            }
            claimed
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    claimed.sort();
    let mut expected = created.clone();
    expected.sort();
    assert_eq!(claimed, expected, "every export claimed exactly once");
}
