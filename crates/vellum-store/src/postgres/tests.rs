//! The conformance suite on PostgreSQL, and what only a shared database sees: several stores
//! ("nodes") on one database appending to one organization, racing one idempotency key, signing
//! checkpoints and claiming exports at once.

use std::sync::Arc;

use super::testing::TestDatabase;
use super::{PostgresConfig, PostgresStore};
use crate::conformance::{event_at, new_organization};
use crate::prelude::*;
use crate::{AppendOutcome, IdempotencyClaim};

async fn open_fresh() -> (PostgresStore, TestDatabase) {
    let database = TestDatabase::create().await;
    let store = PostgresStore::open(&PostgresConfig::new(database.url()))
        .await
        .expect("open a fresh PostgreSQL store");
    (store, database)
}

crate::store_conformance_suite!(open_fresh);

/// Three stores over one database, as three nodes would be.
async fn three_nodes() -> (Vec<Arc<PostgresStore>>, TestDatabase) {
    let database = TestDatabase::create().await;
    let config = PostgresConfig::new(database.url());
    // Opening together also races the migrations: each node must come up.
    let (a, b, c) = tokio::join!(
        PostgresStore::open(&config),
        PostgresStore::open(&config),
        PostgresStore::open(&config)
    );
    let nodes = [a, b, c]
        .into_iter()
        .map(|node| Arc::new(node.expect("open a node")))
        .collect();
    (nodes, database)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_appending_to_one_organization_keep_one_gap_free_log() {
    let (nodes, _database) = three_nodes().await;
    let organization = nodes[0]
        .create_organization(new_organization("Shared"))
        .await
        .unwrap()
        .id;
    let mut tasks = Vec::new();
    for client in 0..24_usize {
        let node = Arc::clone(&nodes[client % 3]);
        tasks.push(tokio::spawn(async move {
            let mut stored = Vec::new();
            for n in 0..10_i64 {
                let events =
                    vec![event_at(n, "doc.edited", &format!("u{client}"), &[("doc", "d")]); 1 + (n as usize % 3)];
                match node.append_events(organization, events, None).await.unwrap() {
                    AppendOutcome::Appended(events) => stored.extend(events),
                    other => panic!("{other:?}"),
                }
            }
            stored
        }));
    }
    let mut positions = Vec::new();
    for task in tasks {
        for event in task.await.unwrap() {
            positions.push(event.log_index);
            // What was acknowledged is there, at the position acknowledged, on every node.
            let read = nodes[2].get_event(event.id).await.unwrap();
            assert_eq!(read.log_index, event.log_index);
        }
    }
    positions.sort_unstable();
    let expected: Vec<u64> = (0..positions.len() as u64).collect();
    assert_eq!(positions, expected, "one sequence, no gap, no duplicate");

    // Every node composes the same head from what is stored, and it agrees with the events.
    let head = nodes[0].log_tree_head(organization).await.unwrap();
    for node in &nodes {
        assert_eq!(node.log_tree_head(organization).await.unwrap(), head);
        assert_eq!(node.log_first_inconsistent_node(organization).await.unwrap(), None);
    }
    let events = nodes[1].log_entries(organization, 0, head.size).await.unwrap();
    let leaves: Vec<_> = events
        .iter()
        .map(|entry| match entry {
            crate::LogEntry::Event(event) => crate::conformance::leaf_of(event),
            crate::LogEntry::Purged(position) => position.leaf,
        })
        .collect();
    assert_eq!(vellum_core::merkle::root_of(&leaves), head.root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_raced_from_every_node_stores_once() {
    let (nodes, _database) = three_nodes().await;
    let organization = nodes[0].create_organization(new_organization("Keys")).await.unwrap().id;
    let claim = IdempotencyClaim {
        key_hash: [7; 16],
        request_hash: [8; 16],
        record: None,
    };
    let mut tasks = Vec::new();
    for attempt in 0..30 {
        let node = Arc::clone(&nodes[attempt % 3]);
        let claim = claim.clone();
        tasks.push(tokio::spawn(async move {
            node.append_events(organization, vec![event_at(1, "a", "u", &[])], Some(claim))
                .await
                .unwrap()
        }));
    }
    let mut appended = Vec::new();
    let mut replayed = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            AppendOutcome::Appended(events) => appended.push(events),
            AppendOutcome::Replayed { event_ids, .. } => replayed.push(event_ids),
            AppendOutcome::KeyReused => panic!("the same request is never a reuse"),
        }
    }
    assert_eq!(appended.len(), 1, "exactly one append stored the events");
    let ids: Vec<_> = appended[0].iter().map(|event| event.id).collect();
    assert!(replayed.iter().all(|replay| *replay == ids));
    assert_eq!(nodes[0].log_tree_head(organization).await.unwrap().size, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_signed_by_every_node_are_consistent() {
    use vellum_core::checkpoint::{NoteSigner, NoteVerifier};
    let (nodes, _database) = three_nodes().await;
    let organization = nodes[0]
        .create_organization(new_organization("Signed"))
        .await
        .unwrap()
        .id;
    let signer = Arc::new(NoteSigner::new("vellum-test", &[9; 32]).unwrap());
    let verifier = NoteVerifier::from_public_key(signer.name(), &signer.public_key()).unwrap();
    let mut tasks = Vec::new();
    for round in 0..30_usize {
        let node = Arc::clone(&nodes[round % 3]);
        let signer = Arc::clone(&signer);
        tasks.push(tokio::spawn(async move {
            node.append_events(organization, vec![event_at(round as i64, "a", "u", &[])], None)
                .await
                .unwrap();
            node.log_checkpoint(organization, signer, "test.example/log".into())
                .await
                .unwrap()
        }));
    }
    let mut checkpoints = Vec::new();
    for task in tasks {
        checkpoints.push(task.await.unwrap());
    }
    checkpoints.sort_by_key(|signed| signed.checkpoint.size);
    let newest = checkpoints.last().unwrap().checkpoint.clone();
    for signed in &checkpoints {
        assert_eq!(verifier.verify(&signed.note).unwrap(), signed.checkpoint);
        let proof = nodes[signed.checkpoint.size as usize % 3]
            .log_consistency_proof(organization, signed.checkpoint.size, newest.size)
            .await
            .unwrap();
        assert!(vellum_core::merkle::verify_consistency(
            signed.checkpoint.size,
            newest.size,
            &signed.checkpoint.root,
            &newest.root,
            &proof
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_organization_refuses_appends_but_answers_its_stored_keys() {
    let (store, _database) = open_fresh().await;
    let organization = store.create_organization(new_organization("Gone")).await.unwrap().id;
    let claim = IdempotencyClaim {
        key_hash: [1; 16],
        request_hash: [2; 16],
        record: Some("kept".into()),
    };
    store
        .append_events(organization, vec![event_at(1, "a", "u", &[])], Some(claim.clone()))
        .await
        .unwrap();
    store.delete_organization(organization).await.unwrap();
    assert!(matches!(
        store
            .append_events(organization, vec![event_at(1, "a", "u", &[])], Some(claim.clone()))
            .await
            .unwrap(),
        AppendOutcome::Replayed { record: Some(_), .. }
    ));
    assert!(matches!(
        store
            .append_events(organization, vec![event_at(1, "a", "u", &[])], None)
            .await,
        Err(crate::StoreError::NotFound { .. })
    ));
}

/// Purges give the space of a month back by dropping its partitions once they are empty and the
/// month is over; a month that still holds a row, and the current months, stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emptied_past_partitions_are_dropped() {
    let (store, _database) = open_fresh().await;
    let year_ago = vellum_core::Timestamp::from_unix_millis(crate::now().unix_millis() - 400 * 24 * 3_600_000).unwrap();
    super::partitions::create_months(&store.pool, year_ago, year_ago, 1)
        .await
        .unwrap();
    let client = store.pool.get().await.unwrap();
    let partitions = async || -> Vec<String> {
        client
            .query(
                "select c.relname::text from pg_inherits i join pg_class c on c.oid = i.inhrelid
                 join pg_class p on p.oid = i.inhparent where p.relname = 'events' order by 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    let before = partitions().await;
    assert!(
        before.len() >= 5,
        "the default, two old months and the current ones: {before:?}"
    );
    // One old month keeps a row (as a purge would have left one behind).
    let kept = before.iter().find(|name| name.starts_with("events_p")).unwrap().clone();
    client
        .batch_execute(&format!(
            "insert into {kept} (organization_id, received_at, id, log_index, occurred_at, action, actor_id,
                 schema_version, payload, target_count)
             select '\\x00', (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''?(-?[0-9]+)'))[1]::bigint,
                 '\\x01', 0, 0, 'a', 'b', 1, '{{}}', 0
             from pg_class c where c.relname = '{kept}'"
        ))
        .await
        .unwrap();
    let freed = store.reclaim_space().await.unwrap();
    assert!(freed > 0);
    let after = partitions().await;
    assert!(after.contains(&kept), "a month with a row stays: {after:?}");
    assert_eq!(
        before.len() - after.len(),
        1,
        "the other old month is gone: {before:?} -> {after:?}"
    );
    let now = time::OffsetDateTime::now_utc();
    let current = format!("events_p{:04}{:02}", now.year(), u8::from(now.month()));
    assert!(after.contains(&current), "the current month stays: {after:?}");
    assert_eq!(store.reclaim_space().await.unwrap(), 0, "nothing more to give back");
}
