use std::sync::Arc;

use vellum_core::log_record::RecordedBy;
use vellum_store::conformance::{event_at, new_organization};
use vellum_store::{SqliteConfig, SqliteStore, Store};

use super::*;

const DAY: i64 = 24 * 60 * 60 * 1000;

async fn store_with(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&SqliteConfig::new(dir)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_applies_each_organizations_period_and_skips_held_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path()).await;
    let now = Timestamp::from_unix_millis(100 * DAY).unwrap();
    let own = store.create_organization(new_organization("Own")).await.unwrap().id;
    let default = store.create_organization(new_organization("Default")).await.unwrap().id;
    let held = store.create_organization(new_organization("Held")).await.unwrap().id;
    store.set_retention(own, 30).await.unwrap();
    for organization in [own, default, held] {
        // 50 events 60 days old, 5 events 10 days old.
        let events = (0..55)
            .map(|n| {
                event_at(
                    if n < 50 { 40 * DAY + n } else { 90 * DAY + n },
                    "pass.tested",
                    "u",
                    &[],
                )
            })
            .collect();
        store.append_events(organization, events, None).await.unwrap();
    }
    set_legal_hold(&*store, held, true, Some("audit".into()), &RecordedBy::vellum("test"))
        .await
        .unwrap();

    let service = PurgeService::new(Arc::clone(&store), 365).with_step_events(20);
    let summary = service.run_pass(now, &|| false).await.unwrap();
    let of = |id| {
        summary
            .organizations
            .iter()
            .find(|outcome| outcome.organization_id == id)
            .unwrap()
    };
    assert_eq!(
        (of(own).events, of(own).records, of(own).retention_period_in_days),
        (50, 3, 30)
    );
    assert_eq!((of(default).events, of(default).retention_period_in_days), (0, 365));
    assert!(of(held).held);
    assert_eq!(of(held).events, 0);
    assert_eq!(store.log_tree_head(own).await.unwrap().size, 58);

    // A second pass finds nothing more; lifting the hold lets the next pass purge.
    assert_eq!(service.run_pass(now, &|| false).await.unwrap().events(), 0);
    let lifted = set_legal_hold(&*store, held, false, None, &RecordedBy::vellum("test"))
        .await
        .unwrap();
    assert_eq!(lifted.hold, None);
    store.set_retention(held, 30).await.unwrap();
    assert_eq!(service.run_pass(now, &|| false).await.unwrap().events(), 50);

    // A pass told to stop ends after the step in flight.
    store.set_retention(default, 30).await.unwrap();
    let summary = service.run_pass(now, &|| true).await.unwrap();
    assert!(summary.interrupted);
    assert_eq!(summary.events(), 0);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_reason_is_bounded_and_a_missing_organization_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path()).await;
    let organization = store.create_organization(new_organization("Hold")).await.unwrap().id;
    let by = RecordedBy::vellum("test");
    assert!(matches!(
        set_legal_hold(&*store, organization, true, Some("x".repeat(501)), &by).await,
        Err(HoldError::InvalidReason(_))
    ));
    assert!(matches!(
        set_legal_hold(&*store, organization, true, Some("a\u{7}b".into()), &by).await,
        Err(HoldError::InvalidReason(_))
    ));
    assert_eq!(
        store.log_tree_head(organization).await.unwrap().size,
        0,
        "a refused hold records nothing"
    );
    let missing = vellum_core::OrganizationId::from_ulid(vellum_core_ulid());
    assert!(matches!(
        set_legal_hold(&*store, missing, true, None, &by).await,
        Err(HoldError::Store(StoreError::NotFound { .. }))
    ));
    let set = set_legal_hold(&*store, organization, true, Some(" ".into()), &by)
        .await
        .unwrap();
    assert_eq!(
        set.hold.map(|hold| hold.reason),
        Some(None),
        "a blank reason is no reason"
    );
    store.close().await.unwrap();
}

fn vellum_core_ulid() -> vellum_core::id::Ulid {
    vellum_core::id::Ulid::from_parts(1, 1)
}
