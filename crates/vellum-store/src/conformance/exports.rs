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
