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
            concurrent_writes_are_all_durable_and_distinct,
            a_failing_write_does_not_disturb_its_batch,
            schemas_are_versioned_per_action,
            events_append_in_log_order_and_list_by_occurrence,
            events_filter_by_every_field,
            idempotency_keys_replay_and_refuse,
            concurrent_identical_claims_store_once,
            retention_is_per_organization,
            exports_move_through_their_states_once,
            export_claims_lease_each_export_to_one_worker,
            concurrent_export_claims_never_share_an_export,
            event_bounds_agree_with_listing_and_the_export_filter,
            audit_trail_events_list_across_organizations,
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

/// Operators are created once per email (any case), found, listed and re-passworded; sessions
/// are found only until they expire, and end on sign-out or a password change.
pub async fn operators_and_sessions(store: Arc<impl Store>) {
    use vellum_core::operator::{Email, PasswordHash, SessionToken};

    let email = Email::parse("Admin@Example.com").unwrap();
    let hash = PasswordHash::from_stored("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into());
    let operator = store.create_operator(email.clone(), hash.clone()).await.unwrap();
    assert_eq!(operator.email.as_str(), "admin@example.com");
    let again = store
        .create_operator(Email::parse("ADMIN@example.com").unwrap(), hash.clone())
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(
        store.find_operator(email.clone()).await.unwrap(),
        Some(operator.clone())
    );
    assert_eq!(
        store
            .find_operator(Email::parse("nobody@example.com").unwrap())
            .await
            .unwrap(),
        None
    );
    let second = store
        .create_operator(Email::parse("second@example.com").unwrap(), hash.clone())
        .await
        .unwrap();
    let listed: Vec<_> = store
        .list_operators()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(listed, [operator.id, second.id]);

    let now = crate::now();
    let later = Timestamp::from_unix_millis(now.unix_millis() + 3_600_000).unwrap();
    let token = SessionToken::from_random_bytes([3; 32]);
    let session = store
        .create_operator_session(operator.id, token.hash(), later)
        .await
        .unwrap();
    assert_eq!(session.operator_id, operator.id);
    assert_eq!(session.email, operator.email);
    assert_eq!(session.expires_at, later);
    assert_eq!(
        store.find_operator_session(token.hash(), now).await.unwrap(),
        Some(session)
    );
    assert_eq!(
        store.find_operator_session(token.hash(), later).await.unwrap(),
        None,
        "a session is not valid at its expiry"
    );
    let stranger = SessionToken::from_random_bytes([4; 32]);
    assert_eq!(store.find_operator_session(stranger.hash(), now).await.unwrap(), None);

    store.delete_operator_session(token.hash()).await.unwrap();
    assert_eq!(store.find_operator_session(token.hash(), now).await.unwrap(), None);
    store.delete_operator_session(token.hash()).await.unwrap();

    // A password change ends that operator's sessions only.
    let mine = SessionToken::from_random_bytes([5; 32]);
    let theirs = SessionToken::from_random_bytes([6; 32]);
    store
        .create_operator_session(operator.id, mine.hash(), later)
        .await
        .unwrap();
    store
        .create_operator_session(second.id, theirs.hash(), later)
        .await
        .unwrap();
    let new_hash = PasswordHash::from_stored("$argon2id$v=19$m=8,t=1,p=1$b3RoZXJzYWx0$bmV3aGFzaG5ld2hhc2huZQ".into());
    store
        .set_operator_password(operator.id, new_hash.clone())
        .await
        .unwrap();
    assert_eq!(store.find_operator_session(mine.hash(), now).await.unwrap(), None);
    assert!(store.find_operator_session(theirs.hash(), now).await.unwrap().is_some());
    assert_eq!(
        store.find_operator(email).await.unwrap().unwrap().password_hash,
        new_hash
    );

    // A session of an operator that does not exist is refused.
    let ghost = vellum_core::OperatorId::from_ulid(vellum_core::id::Ulid::from_parts(1, 1));
    let orphan = store
        .create_operator_session(ghost, SessionToken::from_random_bytes([7; 32]).hash(), later)
        .await;
    assert!(matches!(orphan, Err(StoreError::NotFound { .. })), "{orphan:?}");
    assert!(matches!(
        store.set_operator_password(ghost, new_hash).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Keys are created, found by hash, listed, revoked and ensured.
pub async fn api_keys_lifecycle(store: Arc<impl Store>) {
    let secret = generate_api_key_secret().unwrap();
    let key = store.create_api_key("ci".into(), secret.clone()).await.unwrap();
    assert!(key.is_active());
    assert_eq!(key.redacted_secret, secret.redacted());
    assert_eq!(store.find_api_key(secret.hash()).await.unwrap(), Some(key.clone()));
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
    assert!(!store.find_api_key(secret.hash()).await.unwrap().unwrap().is_active());

    let revived = store.ensure_api_key("bootstrap".into(), secret.clone()).await;
    assert!(
        matches!(revived, Err(StoreError::Conflict(_))),
        "a revoked key is never brought back: {revived:?}"
    );
    assert!(!store.find_api_key(secret.hash()).await.unwrap().unwrap().is_active());
    let (created, changed) = store.ensure_api_key("bootstrap".into(), other.clone()).await.unwrap();
    assert!(changed && created.is_active());
    let (same, changed) = store.ensure_api_key("bootstrap".into(), other).await.unwrap();
    assert!(!changed);
    assert_eq!(same.id, created.id);

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

/// Schema versions count up per action; the latest is the default.
pub async fn schemas_are_versioned_per_action(store: Arc<impl Store>) {
    let (first, created) = store
        .create_schema("user.signed_in".into(), schema(&["team"]))
        .await
        .unwrap();
    assert!(created);
    let (second, _) = store
        .create_schema("user.signed_in".into(), schema(&["team", "user"]))
        .await
        .unwrap();
    let (other, _) = store
        .create_schema("invoice.paid".into(), schema(&["invoice"]))
        .await
        .unwrap();
    let (unchanged, created) = store
        .create_schema("user.signed_in".into(), schema(&["team", "user"]))
        .await
        .unwrap();
    assert!(!created, "an identical definition creates no version");
    assert_eq!(unchanged, second);
    let (third, created) = store
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

fn event_at(millis: i64, action: &str, actor: &str, targets: &[(&str, &str)]) -> NewEvent {
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

fn claim(key: u8, request: u8) -> IdempotencyClaim {
    IdempotencyClaim {
        key_hash: [key; 16],
        request_hash: [request; 16],
        response: None,
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

/// A claimed key replays for the same request, refuses another, and is scoped per organization.
pub async fn idempotency_keys_replay_and_refuse(store: Arc<impl Store>) {
    let organization = store.create_organization(new_organization("Idem")).await.unwrap().id;
    let other = store.create_organization(new_organization("Other")).await.unwrap().id;
    let event = || vec![event_at(1_000, "a", "u", &[])];

    let mut with_response = claim(1, 1);
    with_response.response = Some(Arc::new(|events: &[vellum_core::Event]| {
        format!("{{\"stored\":{}}}", events.len())
    }));
    assert!(matches!(
        store
            .append_events(organization, event(), Some(with_response.clone()))
            .await
            .unwrap(),
        AppendOutcome::Appended(_)
    ));
    assert_eq!(
        store
            .append_events(organization, event(), Some(with_response))
            .await
            .unwrap(),
        AppendOutcome::Replayed {
            response: Some("{\"stored\":1}".into())
        }
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
        1,
        "replays and refusals store nothing"
    );

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
    assert_eq!(count_events(&*store, organization).await, 2);
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
            AppendOutcome::Replayed { response: None } => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(appended_count, 1);
    assert_eq!(count_events(&*store, organization).await, 1);
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

    // A released lease lets the next claim take the export at once, well before it would run out.
    store.release_export_lease(first, "a").await.unwrap();
    let reclaimed = store.claim_export("d", later, after(later, 30)).await.unwrap().unwrap();
    assert_eq!((reclaimed.id, reclaimed.attempts), (first, 2));
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
