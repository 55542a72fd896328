//! Conformance: Actions and schema versions.

use super::*;

/// Schema versions count up per action; the latest is the default.
pub async fn schemas_are_versioned_per_action(store: Arc<impl Store>) {
    let crate::CreatedSchema { schema: first, created } = store
        .create_schema("user.signed_in".into(), schema(&["team"]))
        .await
        .unwrap();
    assert!(created);
    let crate::CreatedSchema {
        schema: second,
        created: _,
    } = store
        .create_schema("user.signed_in".into(), schema(&["team", "user"]))
        .await
        .unwrap();
    let crate::CreatedSchema {
        schema: other,
        created: _,
    } = store
        .create_schema("invoice.paid".into(), schema(&["invoice"]))
        .await
        .unwrap();
    let crate::CreatedSchema {
        schema: unchanged,
        created,
    } = store
        .create_schema("user.signed_in".into(), schema(&["team", "user"]))
        .await
        .unwrap();
    assert!(!created, "an identical definition creates no version");
    assert_eq!(unchanged, second);
    let crate::CreatedSchema { schema: third, created } = store
        .create_schema("user.signed_in".into(), schema(&["team"]))
        .await
        .unwrap();
    assert!(
        created && third.version == 3,
        "an older definition again is a new version"
    );
    assert_eq!((first.version, second.version, other.version), (1, 2, 1));
    assert_eq!(
        store.get_schema("user.signed_in", None).await.unwrap(),
        Some(third.clone())
    );
    assert_eq!(
        store.get_schema("user.signed_in", Some(2)).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        store.get_schema("user.signed_in", Some(1)).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.get_schema("user.signed_in", Some(4)).await.unwrap(), None);
    assert_eq!(store.get_schema("nope", None).await.unwrap(), None);

    let versions = store
        .list_schemas(
            "user.signed_in",
            PageRequest {
                limit: 2,
                ..PageRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(versions.data, [third.clone(), second.clone()], "newest version first");
    let older = store
        .list_schemas(
            "user.signed_in",
            PageRequest {
                limit: 2,
                cursor: versions.list_metadata.after.map(Cursor::After),
                ..PageRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(older.data, [first]);
    assert_eq!(older.list_metadata.after, None);
    assert!(matches!(
        store.list_schemas("nope", PageRequest::default()).await,
        Err(StoreError::NotFound { .. })
    ));

    let actions = store.list_actions(PageRequest::default()).await.unwrap();
    let names: Vec<_> = actions.data.iter().map(|action| action.name.as_str()).collect();
    assert_eq!(names, ["invoice.paid", "user.signed_in"], "newest action first");
    assert_eq!(actions.data[1].latest, third);
    assert!(actions.data[1].updated_at >= actions.data[1].created_at);
}
