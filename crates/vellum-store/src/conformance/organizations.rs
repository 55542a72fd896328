//! Conformance: Organizations and their retention.

use super::*;

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
        store.get_organization_by_external_id("shared").await.unwrap().id,
        first.id
    );
    assert!(matches!(
        store.create_organization(request.clone()).await,
        Err(StoreError::Conflict(_))
    ));

    let second = store.create_organization(new_organization("Second")).await.unwrap();
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
        store.get_organization_by_external_id("shared").await.unwrap().id,
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

    for (order, follow_before) in [(Order::Desc, false), (Order::Asc, false), (Order::Normal, true)] {
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
    store.create_organization(new_organization("Gamma")).await.unwrap();

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

/// Retention is unset until set, per organization.
pub async fn retention_is_per_organization(store: Arc<impl Store>) {
    let organization = store.create_organization(new_organization("Keep")).await.unwrap().id;
    let other = store.create_organization(new_organization("Other")).await.unwrap().id;
    assert_eq!(store.get_retention(organization).await.unwrap(), None);
    store.set_retention(organization, 365).await.unwrap();
    assert_eq!(store.get_retention(organization).await.unwrap(), Some(365));
    assert_eq!(store.get_retention(other).await.unwrap(), None);
    let missing = OrganizationId::from_ulid(ulid::Ulid::from_parts(1, 1));
    assert!(matches!(
        store.get_retention(missing).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.set_retention(missing, 30).await,
        Err(StoreError::NotFound { .. })
    ));
}
