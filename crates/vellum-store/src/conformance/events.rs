//! Conformance: Appending, listing and counting events; idempotency keys.

use super::*;

/// Events get consecutive log indexes in append order and list by occurrence time.
pub async fn events_append_in_log_order_and_list_by_occurrence(store: Arc<impl Store>) {
    let organization = store.create_organization(new_organization("Events")).await.unwrap().id;
    let other = store.create_organization(new_organization("Other")).await.unwrap().id;
    // Appended out of occurrence order, with two events in the same millisecond.
    let first = appended(
        &*store,
        organization,
        vec![event_at(3_000, "a", "u1", &[]), event_at(1_000, "b", "u2", &[])],
    )
    .await;
    let second = appended(
        &*store,
        organization,
        vec![event_at(3_000, "c", "u3", &[("team", "t1")])],
    )
    .await;
    appended(&*store, other, vec![event_at(2_000, "x", "u9", &[])]).await;
    let log: Vec<u64> = first.iter().chain(&second).map(|event| event.log_index).collect();
    assert_eq!(log, [0, 1, 2]);
    assert_eq!(
        first[0].input.actor.metadata,
        event_at(0, "a", "u1", &[]).input.actor.metadata
    );

    let stored = store.get_event(second[0].id).await.unwrap();
    assert_eq!(stored, second[0], "get returns exactly what append returned");
    assert_eq!(stored.organization_id, organization);

    let newest_first = list_ids(&*store, organization, EventFilter::default(), PageRequest::default()).await;
    assert_eq!(
        newest_first,
        [second[0].id, first[0].id, first[1].id],
        "ties on occurred_at break by arrival"
    );

    // Pages of one cross the tie in both directions.
    let mut walked = Vec::new();
    let mut request = PageRequest {
        limit: 1,
        ..PageRequest::default()
    };
    loop {
        let page = store
            .list_events(organization, EventFilter::default(), request.clone())
            .await
            .unwrap();
        walked.extend(page.data.iter().map(|event| event.id));
        let Some(after) = page.list_metadata.after else { break };
        request.cursor = Some(Cursor::After(after));
    }
    assert_eq!(walked, newest_first);
    let back = list_ids(
        &*store,
        organization,
        EventFilter::default(),
        PageRequest {
            limit: 1,
            cursor: Some(Cursor::Before(first[0].id)),
            ..PageRequest::default()
        },
    )
    .await;
    assert_eq!(back, [second[0].id]);
    let ascending = list_ids(
        &*store,
        organization,
        EventFilter::default(),
        PageRequest {
            order: Order::Asc,
            ..PageRequest::default()
        },
    )
    .await;
    assert_eq!(ascending, [first[1].id, first[0].id, second[0].id]);

    let foreign_cursor = store
        .list_events(
            other,
            EventFilter::default(),
            PageRequest {
                cursor: Some(Cursor::After(first[0].id)),
                ..PageRequest::default()
            },
        )
        .await;
    assert!(
        matches!(foreign_cursor, Err(StoreError::InvalidInput { .. })),
        "{foreign_cursor:?}"
    );

    let missing = OrganizationId::from_ulid(ulid::Ulid::from_parts(1, 1));
    assert!(matches!(
        store
            .append_events(missing, vec![event_at(1, "a", "u", &[])], None)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_event(EventId::from_ulid(ulid::Ulid::from_parts(1, 1))).await,
        Err(StoreError::NotFound { .. })
    ));
    store.delete_organization(other).await.unwrap();
    assert!(matches!(
        store.append_events(other, vec![event_at(1, "a", "u", &[])], None).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store
            .list_events(other, EventFilter::default(), PageRequest::default())
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Every filter, alone and combined.
pub async fn events_filter_by_every_field(store: Arc<impl Store>) {
    let organization = store.create_organization(new_organization("Filters")).await.unwrap().id;
    let events = appended(
        &*store,
        organization,
        vec![
            event_at(1_000, "user.signed_in", "alice", &[("team", "t1")]),
            event_at(2_000, "user.signed_out", "bob", &[("team", "t2"), ("repo", "r1")]),
            event_at(3_000, "invoice.paid", "alice", &[("invoice", "i1"), ("invoice", "i2")]),
            event_at(4_000, "user.signed_in", "carol", &[]),
        ],
    )
    .await;
    let ids: Vec<EventId> = events.iter().map(|event| event.id).collect();
    let check = |filter: EventFilter, expected: Vec<EventId>| {
        let store = Arc::clone(&store);
        async move {
            let found = list_ids(&*store, organization, filter.clone(), PageRequest::default()).await;
            assert_eq!(found, expected, "{filter:?}");
        }
    };
    check(
        EventFilter {
            actions: vec!["user.signed_in".into()],
            ..EventFilter::default()
        },
        vec![ids[3], ids[0]],
    )
    .await;
    check(
        EventFilter {
            actor_ids: vec!["alice".into()],
            ..EventFilter::default()
        },
        vec![ids[2], ids[0]],
    )
    .await;
    check(
        EventFilter {
            actor_names: vec!["Name of bob".into()],
            ..EventFilter::default()
        },
        vec![ids[1]],
    )
    .await;
    check(
        EventFilter {
            target_types: vec!["team".into()],
            ..EventFilter::default()
        },
        vec![ids[1], ids[0]],
    )
    .await;
    check(
        EventFilter {
            target_types: vec!["invoice".into()],
            ..EventFilter::default()
        },
        vec![ids[2]],
    )
    .await;
    check(
        EventFilter {
            target_ids: vec!["r1".into(), "i2".into()],
            ..EventFilter::default()
        },
        vec![ids[2], ids[1]],
    )
    .await;
    check(
        EventFilter {
            target_types: vec!["team".into()],
            target_ids: vec!["r1".into()],
            ..EventFilter::default()
        },
        vec![ids[1]],
    )
    .await;
    check(
        EventFilter {
            range_start: Timestamp::from_unix_millis(2_000),
            range_end: Timestamp::from_unix_millis(4_000),
            ..EventFilter::default()
        },
        vec![ids[2], ids[1]],
    )
    .await;
    check(
        EventFilter {
            search: Some("SIGNED_OUT".into()),
            ..EventFilter::default()
        },
        vec![ids[1]],
    )
    .await;
    check(
        EventFilter {
            search: Some("carol".into()),
            ..EventFilter::default()
        },
        vec![ids[3]],
    )
    .await;
    check(
        EventFilter {
            search: Some("i2".into()),
            ..EventFilter::default()
        },
        vec![ids[2]],
    )
    .await;
    check(
        EventFilter {
            search: Some("%".into()),
            ..EventFilter::default()
        },
        vec![],
    )
    .await;
    // Keys and JSON syntax never match; only values do.
    for not_a_value in ["location", "\"type\"", "metadata", "{"] {
        check(
            EventFilter {
                search: Some(not_a_value.into()),
                ..EventFilter::default()
            },
            vec![],
        )
        .await;
    }
    // Text that JSON escapes is found as written, and numbers are values too.
    let mut quoted = event_at(500, "quote.said", "dave", &[]);
    quoted.input.metadata = Some(
        [
            (
                "said".to_owned(),
                MetadataValue::String(r#"she said "hi" in C:\dir"#.into()),
            ),
            ("answer".to_owned(), MetadataValue::Number(4242.into())),
        ]
        .into(),
    );
    let quoted_id = appended(&*store, organization, vec![quoted]).await[0].id;
    for term in [r#""hi""#, r"C:\dir", "4242"] {
        check(
            EventFilter {
                search: Some(term.into()),
                ..EventFilter::default()
            },
            vec![quoted_id],
        )
        .await;
    }
    check(
        EventFilter {
            actions: vec!["user.signed_in".into()],
            actor_ids: vec!["alice".into()],
            ..EventFilter::default()
        },
        vec![ids[0]],
    )
    .await;
    check(
        EventFilter {
            target_types: vec!["team".into()],
            actions: vec!["user.signed_in".into()],
            ..EventFilter::default()
        },
        vec![ids[0]],
    )
    .await;
    // A target-driven listing pages with cursors too.
    let page = store
        .list_events(
            organization,
            EventFilter {
                target_types: vec!["team".into()],
                ..EventFilter::default()
            },
            PageRequest {
                limit: 1,
                ..PageRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.data[0].id, ids[1]);
    let next = list_ids(
        &*store,
        organization,
        EventFilter {
            target_types: vec!["team".into()],
            ..EventFilter::default()
        },
        PageRequest {
            limit: 1,
            cursor: page.list_metadata.after.map(Cursor::After),
            ..PageRequest::default()
        },
    )
    .await;
    assert_eq!(next, [ids[0]]);
}

/// A claimed key replays for the same request, refuses another, and is scoped per organization.
pub async fn idempotency_keys_replay_and_refuse(store: Arc<impl Store>) {
    let organization = store.create_organization(new_organization("Idem")).await.unwrap().id;
    let other = store.create_organization(new_organization("Other")).await.unwrap().id;
    let event = || vec![event_at(1_000, "a", "u", &[])];

    let mut with_record = claim(1, 1);
    with_record.record = Some("caller's record".into());
    let stored = match store
        .append_events(
            organization,
            vec![event_at(1_000, "a", "u", &[]), event_at(1_000, "b", "u", &[])],
            Some(with_record.clone()),
        )
        .await
        .unwrap()
    {
        AppendOutcome::Appended(stored) => stored,
        other => panic!("expected an append, got {other:?}"),
    };
    let replay = AppendOutcome::Replayed {
        record: Some("caller's record".into()),
        event_ids: stored.iter().map(|event| event.id).collect(),
    };
    // The same request again (its record does not take part in the match) replays the first.
    assert_eq!(
        store
            .append_events(organization, event(), Some(claim(1, 1)))
            .await
            .unwrap(),
        replay
    );
    assert_eq!(
        store
            .append_events(organization, event(), Some(claim(1, 2)))
            .await
            .unwrap(),
        AppendOutcome::KeyReused
    );
    assert_eq!(
        count_events(&*store, organization).await,
        2,
        "replays and refusals store nothing"
    );
    // A look-up without a claim sees the same, and claims nothing.
    assert_eq!(
        store.check_idempotency(organization, &claim(1, 1)).await.unwrap(),
        Some(replay)
    );
    assert_eq!(
        store.check_idempotency(organization, &claim(1, 2)).await.unwrap(),
        Some(AppendOutcome::KeyReused)
    );
    assert_eq!(store.check_idempotency(organization, &claim(2, 2)).await.unwrap(), None);
    assert_eq!(store.check_idempotency(other, &claim(1, 1)).await.unwrap(), None);

    assert!(matches!(
        store.append_events(other, event(), Some(claim(1, 1))).await.unwrap(),
        AppendOutcome::Appended(_)
    ));

    // Forgotten keys start over.
    let removed = store
        .purge_idempotency_keys(Timestamp::from_unix_millis(i64::MAX / 1_000_000).unwrap())
        .await
        .unwrap();
    assert_eq!(removed, 2);
    assert!(matches!(
        store
            .append_events(organization, event(), Some(claim(1, 2)))
            .await
            .unwrap(),
        AppendOutcome::Appended(_)
    ));
    assert_eq!(count_events(&*store, organization).await, 3);
}

/// Twenty concurrent requests with one key store one event.
pub async fn concurrent_identical_claims_store_once(store: Arc<impl Store>) {
    let organization = store.create_organization(new_organization("Race")).await.unwrap().id;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .append_events(organization, vec![event_at(5, "a", "u", &[])], Some(claim(9, 9)))
                .await
                .unwrap()
        }));
    }
    let mut appended_count = 0;
    for task in tasks {
        match task.await.unwrap() {
            AppendOutcome::Appended(_) => appended_count += 1,
            AppendOutcome::Replayed {
                record: None,
                event_ids,
            } => assert_eq!(event_ids.len(), 1),
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(appended_count, 1);
    assert_eq!(count_events(&*store, organization).await, 1);
}

/// `event_bounds` counts what listing finds, spans its log positions, and agrees with
/// `ExportFilter::matches`; `log_frontier` rebuilds the root of any prefix.
pub async fn event_bounds_agree_with_listing_and_the_export_filter(store: Arc<impl Store>) {
    let organization = store.create_organization(new_organization("Bounds")).await.unwrap().id;
    let events = appended(
        &*store,
        organization,
        vec![
            event_at(5_000, "user.signed_in", "alice", &[("team", "t1")]),
            event_at(
                1_000,
                "user.signed_out",
                "bob",
                &[("team", "t2"), ("repo", "r1"), ("repo", "r2")],
            ),
            event_at(3_000, "invoice.paid", "alice", &[("invoice", "i1")]),
            event_at(2_000, "user.signed_in", "carol", &[]),
            event_at(9_000, "user.signed_in", "alice", &[("team", "t1")]),
        ],
    )
    .await;
    let filters = {
        let mut filters = vec![
            export_filter(0, 100_000),
            export_filter(2_000, 9_000),
            export_filter(6_000, 8_000),
        ];
        let mut by_action = export_filter(0, 100_000);
        by_action.actions = vec!["user.signed_in".into()];
        let mut by_target = export_filter(0, 6_000);
        by_target.target_types = vec!["team".into(), "invoice".into()];
        let mut by_actor = export_filter(0, 100_000);
        by_actor.actor_ids = vec!["alice".into()];
        by_actor.actor_names = vec!["Name of alice".into()];
        filters.extend([by_action, by_target, by_actor]);
        filters
    };
    for filter in filters {
        let matching: Vec<&vellum_core::Event> = events.iter().filter(|event| filter.matches(event)).collect();
        let bounds = store
            .event_bounds(organization, EventFilter::from(&filter))
            .await
            .unwrap();
        assert_eq!(bounds.events, matching.len() as u64, "{filter:?}");
        let span = matching
            .iter()
            .map(|event| event.log_index)
            .min()
            .zip(matching.iter().map(|event| event.log_index).max())
            .map(|(first, last)| (first, last + 1));
        assert_eq!(bounds.log_range, span, "{filter:?}");
        let most_targets = matching
            .iter()
            .map(|event| event.input.targets.len() as u64)
            .max()
            .unwrap_or(0);
        assert_eq!(bounds.max_targets, most_targets, "{filter:?}");
        let page = PageRequest {
            limit: 100,
            ..PageRequest::default()
        };
        let mut listed = list_ids(&*store, organization, EventFilter::from(&filter), page).await;
        listed.sort();
        let mut expected: Vec<EventId> = matching.iter().map(|event| event.id).collect();
        expected.sort();
        assert_eq!(listed, expected, "{filter:?}");
    }

    let leaves: Vec<vellum_core::merkle::Hash> = events
        .iter()
        .map(|event| vellum_core::merkle::leaf_hash(&vellum_core::canonical::canonical_event_bytes(event)))
        .collect();
    for size in 0..=leaves.len() {
        let hashes = store.log_frontier(organization, size as u64).await.unwrap();
        let mut next = hashes.iter();
        let frontier =
            vellum_core::merkle::Frontier::from_stored(size as u64, &mut |_, _| next.next().copied().ok_or(()))
                .unwrap();
        assert_eq!(
            frontier.root(),
            vellum_core::merkle::root_of(&leaves[..size]),
            "size {size}"
        );
    }
    assert!(store.log_frontier(organization, 6).await.is_err());
}

/// Legacy events of every live organization list together, newest first, with each filter, and
/// page by keyset in both directions; events of the newer API and of deleted organizations do not.
pub async fn audit_trail_events_list_across_organizations(store: Arc<impl Store>) {
    let acme = store.create_organization(new_organization("Acme")).await.unwrap().id;
    let globex = store.create_organization(new_organization("Globex")).await.unwrap().id;
    let gone = store.create_organization(new_organization("Gone")).await.unwrap().id;
    let a = appended(
        &*store,
        acme,
        vec![
            legacy_event(1_000, "acme.com", "C", "user_1", "doc_1", "first"),
            legacy_event(3_000, "acme.com", "r", "user_2", "doc_2", "Third NEEDLE"),
        ],
    )
    .await;
    let g = appended(
        &*store,
        globex,
        vec![legacy_event(2_000, "globex.com", "U", "user_1", "doc_3", "second")],
    )
    .await;
    // The newer API's events and a deleted organization's legacy events are not listed.
    appended(
        &*store,
        acme,
        vec![event_at(2_500, "user.signed_in", "user_1", &[("team", "t")])],
    )
    .await;
    appended(
        &*store,
        gone,
        vec![legacy_event(2_600, "gone.com", "D", "user_1", "doc_9", "x")],
    )
    .await;
    store.delete_organization(gone).await.unwrap();

    let newest_first = vec![a[1].id, g[0].id, a[0].id];
    let all = AuditTrailFilter::default();
    assert_eq!(
        audit_trail_ids(&*store, all.clone(), PageRequest::default()).await,
        newest_first
    );

    // The stored event reads back with its legacy fields, in its own organization.
    let listed = store
        .list_audit_trail_events(all.clone(), PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.data[0], a[1]);
    assert_eq!(listed.data[1].organization_id, globex);
    let fields = listed.data[0].input.audit_trail.as_ref().unwrap();
    assert_eq!((fields.group.as_str(), fields.action_type.as_str()), ("acme.com", "r"));

    let only = |filter: AuditTrailFilter| {
        let store = Arc::clone(&store);
        async move { audit_trail_ids(&*store, filter, PageRequest::default()).await }
    };
    let strings = |items: &[&str]| items.iter().map(|item| (*item).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        only(AuditTrailFilter {
            groups: strings(&["globex.com"]),
            ..all.clone()
        })
        .await,
        [g[0].id]
    );
    assert_eq!(
        only(AuditTrailFilter {
            groups: strings(&["acme.com", "globex.com"]),
            ..all.clone()
        })
        .await,
        newest_first
    );
    assert_eq!(
        only(AuditTrailFilter {
            actions: strings(&["document.C"]),
            ..all.clone()
        })
        .await,
        [a[0].id]
    );
    assert_eq!(
        only(AuditTrailFilter {
            action_types: strings(&["R", "U"]),
            ..all.clone()
        })
        .await,
        [a[1].id, g[0].id]
    );
    assert_eq!(
        only(AuditTrailFilter {
            actor_ids: strings(&["user_1"]),
            ..all.clone()
        })
        .await,
        [g[0].id, a[0].id]
    );
    assert_eq!(
        only(AuditTrailFilter {
            actor_names: strings(&["Name of user_2"]),
            ..all.clone()
        })
        .await,
        [a[1].id]
    );
    assert_eq!(
        only(AuditTrailFilter {
            target_ids: strings(&["doc_3"]),
            ..all.clone()
        })
        .await,
        [g[0].id]
    );
    assert_eq!(
        only(AuditTrailFilter {
            target_names: strings(&["Doc doc_1", "Doc doc_2"]),
            ..all.clone()
        })
        .await,
        [a[1].id, a[0].id]
    );
    assert_eq!(
        only(AuditTrailFilter {
            search: Some("needle".into()),
            ..all.clone()
        })
        .await,
        [a[1].id]
    );
    assert_eq!(
        only(AuditTrailFilter {
            search: Some("GLOBEX".into()),
            ..all.clone()
        })
        .await,
        [g[0].id],
        "search covers the group"
    );
    assert_eq!(
        only(AuditTrailFilter {
            range_start: Timestamp::from_unix_millis(2_000),
            range_end: Timestamp::from_unix_millis(3_000),
            ..all.clone()
        })
        .await,
        [g[0].id]
    );
    assert_eq!(
        only(AuditTrailFilter {
            actor_ids: strings(&["user_1"]),
            groups: strings(&["acme.com"]),
            ..all.clone()
        })
        .await,
        [a[0].id]
    );

    // Keyset pages, both directions and both orders.
    let page = |limit: u32, order: Order, cursor: Option<Cursor<EventId>>| PageRequest { limit, order, cursor };
    let first = store
        .list_audit_trail_events(all.clone(), page(2, Order::Desc, None))
        .await
        .unwrap();
    assert_eq!(
        first.data.iter().map(|event| event.id).collect::<Vec<_>>(),
        newest_first[..2]
    );
    let after = first.list_metadata.after.unwrap();
    let second = audit_trail_ids(&*store, all.clone(), page(2, Order::Desc, Some(Cursor::After(after)))).await;
    assert_eq!(second, [a[0].id]);
    let back = audit_trail_ids(
        &*store,
        all.clone(),
        page(2, Order::Desc, Some(Cursor::Before(a[0].id))),
    )
    .await;
    assert_eq!(back, newest_first[..2]);
    let ascending = audit_trail_ids(&*store, all.clone(), page(10, Order::Asc, None)).await;
    assert_eq!(ascending, [a[0].id, g[0].id, a[1].id]);

    // A cursor that is not a listed legacy event is refused, not ignored.
    let newer_api_event = store
        .list_events(acme, EventFilter::default(), PageRequest::default())
        .await
        .unwrap()
        .data
        .into_iter()
        .find(|event| event.input.audit_trail.is_none())
        .unwrap()
        .id;
    assert!(matches!(
        store
            .list_audit_trail_events(all, page(2, Order::Desc, Some(Cursor::After(newer_api_event))))
            .await,
        Err(StoreError::InvalidInput { field: "cursor", .. })
    ));
}
