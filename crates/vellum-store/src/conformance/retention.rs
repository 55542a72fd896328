//! Conformance: purge steps, the leaves and records they leave, and legal holds.

use super::*;
use crate::{LogEntry, PurgeRule, PurgeStep};

fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(millis).unwrap()
}

/// A purge step removes exactly the events its rule covers (lowest positions first, at most its
/// limit), never Vellum's own records, and appends the record accounting for them in the same
/// commit: the tree's root, proofs and every leaf stay; listings, reads and entries no longer
/// return the events; the verifier accepts the log. A hold stops the next step.
pub async fn purge_steps_remove_payloads_and_keep_the_tree(store: Arc<impl Store>) {
    use vellum_core::audit::{Entry, LogAuditor};
    let organization = store.create_organization(new_organization("Purge")).await.unwrap().id;
    let other = store.create_organization(new_organization("Kept")).await.unwrap().id;
    // Positions 0..10: even ones occurred long ago, odd ones recently.
    let new: Vec<NewEvent> = (0..10)
        .map(|n| {
            let millis = if n % 2 == 0 { 1_000 + n } else { 5_000_000 + n };
            event_at(millis, "purge.tested", &format!("u{n}"), &[("doc", &format!("d{n}"))])
        })
        .collect();
    let stored = appended(&*store, organization, new).await;
    appended(&*store, other, vec![event_at(1_000, "purge.tested", "x", &[])]).await;
    let before = store.log_tree_head(organization).await.unwrap();

    let rule = PurgeRule {
        occurred_before: at(1_000_000),
        below_log_index: 8,
        retention_period_in_days: 30,
    };
    // Limit 2: positions 0 and 2, recorded at 10.
    let PurgeStep::Purged(first) = store.purge_step(organization, rule, 2).await.unwrap() else {
        panic!("the first step removed nothing");
    };
    assert_eq!((first.events, first.record.log_index), (2, 10));
    assert!(first.record.input.system);
    assert_eq!(first.record.input.action, vellum_core::log_record::PURGE_ACTION);
    // The rest below 8: positions 4 and 6 (8 is not below 8), recorded at 11.
    let PurgeStep::Purged(second) = store.purge_step(organization, rule, 100).await.unwrap() else {
        panic!("the second step removed nothing");
    };
    assert_eq!((second.events, second.record.log_index), (2, 11));
    assert_eq!(
        store.purge_step(organization, rule, 100).await.unwrap(),
        PurgeStep::Done
    );
    // Records are never purged, whatever the rule.
    let everything = PurgeRule {
        occurred_before: at(i64::from(i32::MAX) * 1_000),
        below_log_index: 12,
        retention_period_in_days: 1,
    };
    let PurgeStep::Purged(third) = store.purge_step(organization, everything, 100).await.unwrap() else {
        panic!("nothing left to purge");
    };
    let record_proof = store
        .log_inclusion_proof(organization, first.record.id, Some(12))
        .await
        .unwrap();
    assert_eq!(
        third.events, 6,
        "positions 1, 3, 5, 7, 8 and 9, not the records at 10 and 11"
    );

    let after = store.log_tree_head(organization).await.unwrap();
    assert_eq!(after.size, 13);
    assert!(vellum_core::merkle::verify_consistency(
        10,
        13,
        &before.root,
        &after.root,
        &store.log_consistency_proof(organization, 10, 13).await.unwrap()
    ));
    // A remaining entry's proof is what it was; a purged event has none by id.
    assert_eq!(
        store
            .log_inclusion_proof(organization, first.record.id, Some(12))
            .await
            .unwrap(),
        record_proof
    );
    assert!(matches!(
        store.log_inclusion_proof(organization, stored[9].id, Some(10)).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.get_event(stored[0].id).await,
        Err(StoreError::NotFound { .. })
    ));
    let listed = store
        .list_events(
            organization,
            EventFilter::default(),
            PageRequest {
                limit: 100,
                order: Order::Asc,
                cursor: None,
            },
        )
        .await
        .unwrap();
    let listed: Vec<u64> = listed.data.iter().map(|event| event.log_index).collect();
    assert_eq!(listed, vec![10, 11, 12], "only the records remain");
    let targets = EventFilter {
        target_types: vec!["doc".into()],
        ..EventFilter::default()
    };
    assert!(
        store
            .list_events(
                organization,
                targets,
                PageRequest {
                    limit: 100,
                    order: Order::Asc,
                    cursor: None
                }
            )
            .await
            .unwrap()
            .data
            .is_empty(),
        "target rows went with their events"
    );

    // Entries and scans serve what is left of each position, and the verifier accepts them.
    let entries = store.log_entries(organization, 0, 13).await.unwrap();
    assert_eq!(entries.len(), 13);
    let scan = store.log_scan(organization, 0, 100).await.unwrap();
    let mut auditor = LogAuditor::new(None);
    for (record, entry) in scan.records.iter().zip(&entries) {
        match (record.purged_by, entry) {
            (Some(purged_by), LogEntry::Purged(position)) => {
                assert_eq!(position.purged_by, purged_by);
                assert_eq!(Some(position.leaf), record.stored_leaf);
                assert_eq!(position.leaf, leaf_of(&stored[position.log_index as usize]));
                assert!(auditor.push_purged(record.log_index, position.leaf, purged_by));
            }
            (None, LogEntry::Event(event)) => {
                let bytes = vellum_core::canonical::canonical_event_bytes(event);
                assert!(auditor.push(Entry {
                    position: record.log_index,
                    event_id: Some(event.id.to_string()),
                    canonical: Ok(&bytes),
                    stored_leaf: Some(record.stored_leaf),
                    erased_by: &[],
                }));
            }
            other => panic!("scan and entries disagree: {other:?}"),
        }
    }
    let summary = auditor.finish(Some(scan.tree_size)).unwrap();
    assert_eq!((summary.purged, summary.purge_records), (10, 3));
    assert_eq!(summary.root, after.root);

    // The other organization was not touched; a held one is not purged.
    assert_eq!(store.log_tree_head(other).await.unwrap().size, 1);
    let record = vellum_core::log_record::legal_hold_input(
        &other.to_string(),
        true,
        Some("litigation"),
        &vellum_core::log_record::RecordedBy::vellum("test"),
        at(10_000),
    );
    let (hold, appended_record) = store
        .set_legal_hold(other, Some(Some("litigation".into())), record.clone())
        .await
        .unwrap();
    assert_eq!(
        hold.as_ref().and_then(|hold| hold.reason.as_deref()),
        Some("litigation")
    );
    assert_eq!(appended_record.map(|event| event.log_index), Some(1));
    assert_eq!(store.legal_hold(other).await.unwrap(), hold);
    let (_, again) = store
        .set_legal_hold(other, Some(Some("again".into())), record)
        .await
        .unwrap();
    assert_eq!(again, None, "setting a hold in force records nothing");
    let rule = PurgeRule {
        occurred_before: at(1_000_000),
        below_log_index: 1,
        retention_period_in_days: 1,
    };
    assert_eq!(store.purge_step(other, rule, 100).await.unwrap(), PurgeStep::Held);
    let policies = store.retention_policies().await.unwrap();
    let held = policies.iter().find(|policy| policy.organization_id == other).unwrap();
    assert!(held.legal_hold.is_some());
    assert_eq!(held.log_size, 2);

    let lift = vellum_core::log_record::legal_hold_input(
        &other.to_string(),
        false,
        None,
        &vellum_core::log_record::RecordedBy::vellum("test"),
        at(11_000),
    );
    let (hold, lifted) = store.set_legal_hold(other, None, lift).await.unwrap();
    assert_eq!(hold, None);
    assert_eq!(
        lifted.map(|event| event.input.action),
        Some("vellum.legal_hold.lifted".into())
    );
    assert!(matches!(
        store.purge_step(other, rule, 100).await.unwrap(),
        PurgeStep::Purged(chunk) if chunk.events == 1
    ));
    assert!(store.store_size().await.unwrap() > 0);
    while store.reclaim_space().await.unwrap() > 0 {}
}

/// A deleted organization's events follow the same rule: its log takes the purge record.
pub async fn deleted_organizations_are_purged_too(store: Arc<impl Store>) {
    let organization = store.create_organization(new_organization("Gone")).await.unwrap().id;
    appended(
        &*store,
        organization,
        (0..3).map(|n| event_at(1_000 + n, "gone.tested", "u", &[])).collect(),
    )
    .await;
    store.delete_organization(organization).await.unwrap();
    let policy = store
        .retention_policies()
        .await
        .unwrap()
        .into_iter()
        .find(|policy| policy.organization_id == organization)
        .unwrap();
    assert!(policy.deleted);
    let rule = PurgeRule {
        occurred_before: at(2_000),
        below_log_index: policy.log_size,
        retention_period_in_days: 1,
    };
    assert!(matches!(
        store.purge_step(organization, rule, 100).await.unwrap(),
        PurgeStep::Purged(chunk) if chunk.events == 3 && chunk.record.log_index == 3
    ));
    assert_eq!(store.log_tree_head(organization).await.unwrap().size, 4);
}

/// Once setting a hold has returned, no purge step removes anything more, even with steps
/// running concurrently (on PostgreSQL from another connection, as another node's would).
pub async fn a_hold_stops_purge_steps_already_running(store: Arc<impl Store>) {
    let organization = store.create_organization(new_organization("Race")).await.unwrap().id;
    appended(
        &*store,
        organization,
        (0..400).map(|n| event_at(1_000 + n, "race.tested", "u", &[])).collect(),
    )
    .await;
    let rule = PurgeRule {
        occurred_before: at(1_000_000),
        below_log_index: 400,
        retention_period_in_days: 1,
    };
    let purging = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut steps = 0u32;
            loop {
                match store.purge_step(organization, rule, 3).await.unwrap() {
                    PurgeStep::Purged(_) => steps += 1,
                    PurgeStep::Held | PurgeStep::Done => return steps,
                }
            }
        })
    };
    // Let some steps run, then hold.
    while store.log_tree_head(organization).await.unwrap().size < 405 {
        tokio::task::yield_now().await;
    }
    let record = vellum_core::log_record::legal_hold_input(
        &organization.to_string(),
        true,
        None,
        &vellum_core::log_record::RecordedBy::vellum("test"),
        at(10_000),
    );
    let (_, hold_record) = store.set_legal_hold(organization, Some(None), record).await.unwrap();
    let hold_position = hold_record.unwrap().log_index;
    let steps = purging.await.unwrap();
    assert!(steps >= 2, "{steps} steps ran");
    // Every purge record comes before the hold's: none was appended once the hold was set.
    let scan = store.log_scan(organization, 0, 10_000).await.unwrap();
    let last_record = scan
        .records
        .iter()
        .filter_map(|record| record.event.as_ref().ok())
        .filter(|event| event.input.action == vellum_core::log_record::PURGE_ACTION)
        .map(|event| event.log_index)
        .max()
        .unwrap();
    assert!(
        last_record < hold_position,
        "a purge record at {last_record} after the hold at {hold_position}"
    );
    assert_eq!(scan.tree_size, hold_position + 1);
    assert_eq!(store.purge_step(organization, rule, 3).await.unwrap(), PurgeStep::Held);
}

/// An erase step rewrites at most its limit of events naming the subject (as actor or target),
/// lowest positions first, never Vellum's own records nor another organization's events, and
/// appends the erasure record in the same commit: the events stay, without the subject's values,
/// their leaves unchanged (their parties are sealed), and target filters no longer find them. A
/// hold refuses the step.
pub async fn erase_steps_rewrite_events_and_keep_their_leaves(store: Arc<impl Store>) {
    use vellum_core::log_record::{ERASURE_ACTION, RecordedBy};
    use vellum_core::seal::ErasureSubject;
    let organization = store.create_organization(new_organization("Erase")).await.unwrap().id;
    let other = store.create_organization(new_organization("Other")).await.unwrap().id;
    let new = vec![
        event_at(1_000, "erase.tested", "alice", &[("doc", "d0")]),
        event_at(1_001, "erase.tested", "bob", &[("user", "alice"), ("doc", "d1")]),
        event_at(1_002, "erase.tested", "bob", &[("doc", "d2")]),
        event_at(1_003, "erase.tested", "alice", &[]),
    ];
    let stored = appended(&*store, organization, new).await;
    assert!(
        stored.iter().all(|event| event.seals.is_some()),
        "new events are sealed"
    );
    appended(&*store, other, vec![event_at(1_000, "erase.tested", "alice", &[])]).await;
    let head = store.log_tree_head(organization).await.unwrap();
    let subject = ErasureSubject {
        ids: vec!["alice".into()],
    };
    let by = RecordedBy::vellum("test");

    let crate::EraseStep::Erased { record, events } = store.erase_step(organization, &subject, &by, 2).await.unwrap()
    else {
        panic!("the first step erased nothing");
    };
    assert_eq!((events, record.log_index), (2, 4));
    assert_eq!(record.input.action, ERASURE_ACTION);
    assert!(record.input.system);
    let crate::EraseStep::Erased { events, record } = store.erase_step(organization, &subject, &by, 100).await.unwrap()
    else {
        panic!("the second step erased nothing");
    };
    assert_eq!((events, record.log_index), (1, 5));
    assert_eq!(
        store.erase_step(organization, &subject, &by, 100).await.unwrap(),
        crate::EraseStep::Done
    );

    let entries = store.log_entries(organization, 0, 6).await.unwrap();
    for (position, entry) in entries.iter().enumerate().take(4) {
        let LogEntry::Event(event) = entry else {
            panic!("position {position} lost its event");
        };
        // The leaf is unchanged: the seals stand for the erased values.
        assert_eq!(
            vellum_core::canonical::canonical_event_bytes(event),
            vellum_core::canonical::canonical_event_bytes(&stored[position]),
            "position {position}"
        );
        let text = String::from_utf8(vellum_core::canonical::event_details_json(event)).unwrap();
        assert!(!text.contains("alice"), "position {position}: {text}");
        assert_eq!(event.erased_by.is_empty(), position == 2, "position {position}");
    }
    let LogEntry::Event(first) = &entries[0] else {
        unreachable!()
    };
    assert_eq!(first.input.actor.id, "");
    assert_eq!(first.input.actor.name, None);
    assert_eq!(first.input.actor.actor_type, "user");
    assert_eq!(first.erased_by, vec![4]);
    let LogEntry::Event(second) = &entries[1] else {
        unreachable!()
    };
    assert_eq!(second.input.actor.id, "bob", "only the subject's parties go");
    assert_eq!(second.input.targets[0].id, "");
    assert_eq!(second.input.targets[1].id, "d1");
    assert_eq!(store.log_tree_head(organization).await.unwrap().size, head.size + 2);
    // Indexed columns follow: the subject is no longer found by actor or target.
    for filter in [
        EventFilter {
            actor_ids: vec!["alice".into()],
            ..EventFilter::default()
        },
        EventFilter {
            target_ids: vec!["alice".into()],
            ..EventFilter::default()
        },
        EventFilter {
            search: Some("alice".into()),
            ..EventFilter::default()
        },
    ] {
        let page = PageRequest {
            limit: 100,
            ..PageRequest::default()
        };
        let found = list_ids(&*store, organization, filter, page).await;
        assert!(found.is_empty(), "{found:?}");
    }
    // Another organization's events are untouched.
    let others = store.log_entries(other, 0, 1).await.unwrap();
    let LogEntry::Event(kept) = &others[0] else {
        unreachable!()
    };
    assert_eq!(kept.input.actor.id, "alice");

    // A hold refuses the step.
    let hold = vellum_core::log_record::legal_hold_input(&other.to_string(), true, None, &by, at(2_000));
    store.set_legal_hold(other, Some(None), hold).await.unwrap();
    assert_eq!(
        store.erase_step(other, &subject, &by, 100).await.unwrap(),
        crate::EraseStep::Held
    );
}
