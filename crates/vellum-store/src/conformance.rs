//! The storage conformance suite: behaviour every [`Store`] backend must show.
//!
//! A backend runs the whole suite with one macro call, given an async function that opens a
//! fresh, empty store and returns it with a guard that cleans up when dropped:
//!
//! ```text
//! vellum_store::store_conformance_suite!(open_fresh_store);
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use vellum_core::organization::{DomainInput, DomainState};
use vellum_core::{
    Cursor, NewOrganization, Order, OrganizationId, OrganizationUpdate, PageRequest,
};

use crate::{OrganizationFilter, Store, StoreError, generate_api_key_secret};

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
            concurrent_writes_are_all_durable_and_distinct,
            a_failing_write_does_not_disturb_its_batch,
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

/// Create, get, update and delete one organization.
pub async fn organizations_round_trip(store: Arc<impl Store>) {
    let mut request = new_organization("Acme");
    request.external_id = Some("acme-1".into());
    request.metadata.insert("tier".into(), "gold".into());
    request.domains.push(domain("acme.com"));
    let created = store.create_organization(request).await.unwrap();
    assert_eq!(created.name, "Acme");
    assert_eq!(created.created_at, created.updated_at);
    assert_eq!(created.domains.len(), 1);
    assert_eq!(store.get_organization(created.id).await.unwrap(), created);

    let updated = store
        .update_organization(
            created.id,
            OrganizationUpdate {
                name: Some("Acme Inc".into()),
                domains: Some(vec![domain("acme.com"), domain("acme.io")]),
                ..OrganizationUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "Acme Inc");
    assert_eq!(updated.external_id.as_deref(), Some("acme-1"));
    assert_eq!(updated.domains[0].id, created.domains[0].id);
    assert_eq!(updated.metadata, created.metadata);
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(store.get_organization(created.id).await.unwrap(), updated);

    store.delete_organization(created.id).await.unwrap();
    assert!(matches!(
        store.get_organization(created.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_organization(created.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .update_organization(created.id, OrganizationUpdate::default())
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let missing = OrganizationId::from_ulid(ulid::Ulid::from_parts(1, 1));
    assert!(matches!(
        store.get_organization(missing).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// An external id belongs to one live organization, and deletion frees it.
pub async fn external_ids_are_unique_among_live_organizations(store: Arc<impl Store>) {
    let mut request = new_organization("First");
    request.external_id = Some("shared".into());
    let first = store.create_organization(request.clone()).await.unwrap();
    assert_eq!(
        store
            .get_organization_by_external_id("shared")
            .await
            .unwrap()
            .id,
        first.id
    );
    assert!(matches!(
        store.create_organization(request.clone()).await,
        Err(StoreError::Conflict(_))
    ));

    let second = store
        .create_organization(new_organization("Second"))
        .await
        .unwrap();
    let taken = store
        .update_organization(
            second.id,
            OrganizationUpdate {
                external_id: Some(Some("shared".into())),
                ..OrganizationUpdate::default()
            },
        )
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert_eq!(
        store.get_organization(second.id).await.unwrap(),
        second,
        "a refused update changes nothing"
    );

    store.delete_organization(first.id).await.unwrap();
    assert!(matches!(
        store.get_organization_by_external_id("shared").await,
        Err(StoreError::NotFound { .. })
    ));
    let third = store.create_organization(request).await.unwrap();
    assert_eq!(
        store
            .get_organization_by_external_id("shared")
            .await
            .unwrap()
            .id,
        third.id
    );
}

/// Pages cover every live organization exactly once, in every order.
pub async fn organizations_page_in_every_order(store: Arc<impl Store>) {
    let mut ids = Vec::new();
    for index in 0..23 {
        ids.push(
            store
                .create_organization(new_organization(&format!("Org {index}")))
                .await
                .unwrap()
                .id,
        );
    }
    store.delete_organization(ids.remove(7)).await.unwrap();
    for window in ids.windows(2) {
        assert!(window[0] < window[1], "ids grow in creation order");
    }

    for (order, follow_before) in [
        (Order::Desc, false),
        (Order::Asc, false),
        (Order::Normal, true),
    ] {
        let mut seen = Vec::new();
        let mut request = PageRequest {
            limit: 5,
            order,
            cursor: None,
        };
        loop {
            let page = store
                .list_organizations(OrganizationFilter::default(), request.clone())
                .await
                .unwrap();
            assert!(page.data.len() <= 5);
            seen.extend(page.data.iter().map(|organization| organization.id));
            let next = if follow_before {
                page.list_metadata.before
            } else {
                page.list_metadata.after
            };
            match next {
                Some(cursor) => {
                    request.cursor = Some(if follow_before {
                        Cursor::Before(cursor)
                    } else {
                        Cursor::After(cursor)
                    });
                }
                None => break,
            }
        }
        let mut expected = ids.clone();
        if order != Order::Asc {
            expected.reverse();
        }
        assert_eq!(seen, expected, "{order:?}");
    }

    let newest_first = store
        .list_organizations(
            OrganizationFilter::default(),
            PageRequest {
                limit: 3,
                order: Order::Desc,
                cursor: Some(Cursor::Before(ids[10])),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        newest_first
            .data
            .iter()
            .map(|organization| organization.id)
            .collect::<Vec<_>>(),
        [ids[13], ids[12], ids[11]]
    );
}

/// Domain and name filters.
pub async fn organizations_filter_by_domain_and_name(store: Arc<impl Store>) {
    let mut request = new_organization("Alpha Widgets");
    request.domains = vec![domain("alpha.com"), domain("alpha.io")];
    let alpha = store.create_organization(request).await.unwrap();
    let mut request = new_organization("Beta 100%_done");
    request.domains = vec![domain("beta.com")];
    let beta = store.create_organization(request).await.unwrap();
    store
        .create_organization(new_organization("Gamma"))
        .await
        .unwrap();

    let list = |filter: OrganizationFilter| {
        let store = Arc::clone(&store);
        async move {
            store
                .list_organizations(filter, PageRequest::default())
                .await
                .unwrap()
                .data
                .into_iter()
                .map(|organization| organization.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(OrganizationFilter {
            domains: vec!["alpha.io".into()],
            search: None
        })
        .await,
        [alpha.id]
    );
    assert_eq!(
        list(OrganizationFilter {
            domains: vec!["beta.com".into(), "alpha.com".into()],
            search: None
        })
        .await,
        [beta.id, alpha.id]
    );
    assert_eq!(
        list(OrganizationFilter {
            domains: vec![],
            search: Some("widget".into())
        })
        .await,
        [alpha.id]
    );
    assert_eq!(
        list(OrganizationFilter {
            domains: vec![],
            search: Some("100%_".into())
        })
        .await,
        [beta.id]
    );
    assert!(
        list(OrganizationFilter {
            domains: vec![],
            search: Some("%".into())
        })
        .await
            == [beta.id]
    );
    assert!(
        list(OrganizationFilter {
            domains: vec!["none.com".into()],
            search: None
        })
        .await
        .is_empty()
    );
}

/// Keys are created, found by hash, listed, revoked and ensured.
pub async fn api_keys_lifecycle(store: Arc<impl Store>) {
    let secret = generate_api_key_secret().unwrap();
    let key = store
        .create_api_key("ci".into(), secret.clone())
        .await
        .unwrap();
    assert!(key.is_active());
    assert_eq!(key.redacted_secret, secret.redacted());
    assert_eq!(
        store.find_api_key(secret.hash()).await.unwrap(),
        Some(key.clone())
    );
    assert!(matches!(
        store.create_api_key("again".into(), secret.clone()).await,
        Err(StoreError::Conflict(_))
    ));

    let other = generate_api_key_secret().unwrap();
    assert_eq!(store.find_api_key(other.hash()).await.unwrap(), None);

    let revoked = store.revoke_api_key(key.id).await.unwrap();
    assert!(!revoked.is_active());
    let revoked_again = store.revoke_api_key(key.id).await.unwrap();
    assert_eq!(
        revoked_again.revoked_at, revoked.revoked_at,
        "revoking twice keeps the first time"
    );
    assert!(
        !store
            .find_api_key(secret.hash())
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );

    let (reactivated, changed) = store
        .ensure_api_key("bootstrap".into(), secret.clone())
        .await
        .unwrap();
    assert!(changed && reactivated.is_active());
    assert_eq!(reactivated.id, key.id);
    let (same, changed) = store
        .ensure_api_key("bootstrap".into(), secret)
        .await
        .unwrap();
    assert!(!changed);
    assert_eq!(same.id, key.id);
    let (created, changed) = store
        .ensure_api_key("bootstrap".into(), other)
        .await
        .unwrap();
    assert!(changed && created.is_active());

    let listed: Vec<_> = store
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|key| key.id)
        .collect();
    assert_eq!(listed, [key.id, created.id]);
    let missing = vellum_core::ApiKeyId::from_ulid(ulid::Ulid::from_parts(1, 1));
    assert!(matches!(
        store.revoke_api_key(missing).await,
        Err(StoreError::NotFound { .. })
    ));
}

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
