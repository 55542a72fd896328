//! Conformance: log streams.

use vellum_core::stream::{BodyFormat, Destination, StreamState};

use super::*;
use crate::{DeliveryOutcome, NewStream, StreamChange};

fn destination(url: &str) -> Destination {
    Destination::GenericHttps {
        url: url.to_owned(),
        format: BodyFormat::Json,
        header_names: vec!["X-Team".to_owned()],
    }
}

fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(millis).unwrap()
}

/// Streams are created, read, listed, updated, replayed and deleted per organization; their
/// sealed secrets come back byte for byte.
pub async fn streams_round_trip(store: Arc<impl Store>) {
    let organization = store.create_organization(new_organization("Streams")).await.unwrap().id;
    let other = store.create_organization(new_organization("Other")).await.unwrap().id;
    for millis in 0..5 {
        store
            .append_events(
                organization,
                vec![event_at(1_000 + millis, "user.signed_in", "user_1", &[])],
                None,
            )
            .await
            .unwrap();
    }
    let created = store
        .create_stream(NewStream {
            organization_id: organization,
            destination: destination("https://a.test/"),
            sealed_secrets: vec![0, 1, 2, 255],
            state: StreamState::Active,
            cursor: 5,
        })
        .await
        .unwrap();
    assert_eq!(
        (created.state, created.cursor, created.failures, created.last_synced_at),
        (StreamState::Active, 5, 0, None)
    );
    assert_eq!(created.sealed_secrets, vec![0, 1, 2, 255]);
    assert_eq!(store.get_stream(created.id).await.unwrap(), created);
    assert_eq!(store.list_streams(organization).await.unwrap(), vec![created.clone()]);
    assert!(store.list_streams(other).await.unwrap().is_empty());
    assert_eq!(store.all_streams(10).await.unwrap(), vec![created.clone()]);
    assert!(store.all_streams(0).await.unwrap().is_empty());

    let updated = store
        .update_stream(
            created.id,
            StreamChange {
                destination: destination("https://b.test/"),
                sealed_secrets: vec![9],
                state: StreamState::Inactive,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (&updated.destination, updated.sealed_secrets.as_slice(), updated.state),
        (&destination("https://b.test/"), [9].as_slice(), StreamState::Inactive)
    );
    let changed_type = store
        .update_stream(
            created.id,
            StreamChange {
                destination: Destination::Splunk {
                    url: "https://s.test".into(),
                    index: None,
                    source: "v".into(),
                },
                sealed_secrets: vec![],
                state: StreamState::Active,
            },
        )
        .await;
    assert!(matches!(changed_type, Err(StoreError::Conflict(_))), "{changed_type:?}");

    // Replay: anywhere up to the log's size.
    assert_eq!(store.replay_stream(created.id, 2).await.unwrap().cursor, 2);
    assert!(matches!(
        store.replay_stream(created.id, 6).await,
        Err(StoreError::InvalidInput { .. })
    ));
    assert_eq!(store.first_position_since(organization, at(1_003)).await.unwrap(), 3);
    assert_eq!(store.first_position_since(organization, at(0)).await.unwrap(), 0);
    assert_eq!(store.first_position_since(organization, at(9_999)).await.unwrap(), 5);

    let events = store.stream_events(organization, 1, 3).await.unwrap();
    assert_eq!(
        events.iter().map(|event| event.log_index).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(store.stream_events(organization, 5, 10).await.unwrap().is_empty());

    store.delete_stream(created.id).await.unwrap();
    assert!(matches!(
        store.get_stream(created.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_stream(created.id).await,
        Err(StoreError::NotFound { .. })
    ));

    // A deleted organization's streams are gone with it.
    let doomed = store
        .create_stream(NewStream {
            organization_id: other,
            destination: destination("https://c.test/"),
            sealed_secrets: vec![],
            state: StreamState::Active,
            cursor: 0,
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .all_streams(10)
            .await
            .unwrap()
            .iter()
            .map(|stream| stream.id)
            .collect::<Vec<_>>(),
        vec![doomed.id]
    );
    store.delete_organization(other).await.unwrap();
    assert!(matches!(
        store.get_stream(doomed.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(
        store.all_streams(10).await.unwrap().is_empty(),
        "a deleted organization's streams are not listed"
    );
    assert!(matches!(
        store
            .create_stream(NewStream {
                organization_id: other,
                destination: destination("https://c.test/"),
                sealed_secrets: vec![],
                state: StreamState::Active,
                cursor: 0,
            })
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Deliveries: a stream is claimed only when it has events past its cursor, by one worker at a
/// time; the cursor moves only under the lease and from where the worker started; failures back
/// off, `invalid` stops deliveries until an update, and a replay wins over a delivery in flight.
pub async fn stream_deliveries_are_leased_and_move_the_cursor_once(store: Arc<impl Store>) {
    let organization = store
        .create_organization(new_organization("Deliveries"))
        .await
        .unwrap()
        .id;
    let now = crate::now();
    let later = |millis: i64| at(now.unix_millis() + millis);
    let stream = store
        .create_stream(NewStream {
            organization_id: organization,
            destination: destination("https://a.test/"),
            sealed_secrets: vec![],
            state: StreamState::Active,
            cursor: 0,
        })
        .await
        .unwrap();
    // Nothing to deliver yet.
    assert_eq!(store.claim_stream("w1", now, later(30_000)).await.unwrap(), None);
    for millis in 0..3 {
        store
            .append_events(
                organization,
                vec![event_at(1_000 + millis, "user.signed_in", "user_1", &[])],
                None,
            )
            .await
            .unwrap();
    }
    let claimed = store.claim_stream("w1", now, later(30_000)).await.unwrap().unwrap();
    assert_eq!(claimed.id, stream.id);
    // Held: nobody else gets it.
    assert_eq!(store.claim_stream("w2", now, later(30_000)).await.unwrap(), None);
    // Another worker cannot record an outcome, nor can the holder from the wrong position.
    let delivered = |next: u64| DeliveryOutcome::Delivered {
        next,
        events: next.saturating_sub(1),
        lease_until: later(30_000),
    };
    assert!(matches!(
        store.finish_delivery(stream.id, "w2", 0, delivered(2), now).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.finish_delivery(stream.id, "w1", 1, delivered(2), now).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .finish_delivery(stream.id, "w1", 0, delivered(2), now)
        .await
        .unwrap();
    let after = store.get_stream(stream.id).await.unwrap();
    assert_eq!((after.cursor, after.last_synced_at), (2, Some(now)));

    // A retryable failure: `error`, a backoff, and the lease let go.
    store
        .finish_delivery(
            stream.id,
            "w1",
            2,
            DeliveryOutcome::Failed {
                state: StreamState::Error,
                reason: "HTTP 503".into(),
                next_attempt_at: Some(later(10_000)),
            },
            now,
        )
        .await
        .unwrap();
    let failed = store.get_stream(stream.id).await.unwrap();
    assert_eq!(
        (
            failed.state,
            failed.failures,
            failed.error.as_deref(),
            failed.next_attempt_at
        ),
        (StreamState::Error, 1, Some("HTTP 503"), Some(later(10_000)))
    );
    assert_eq!(
        store.claim_stream("w2", later(5_000), later(35_000)).await.unwrap(),
        None
    );
    let retried = store
        .claim_stream("w2", later(10_000), later(40_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retried.cursor, 2);
    // Recovery: back to `active`, the error cleared.
    store
        .finish_delivery(stream.id, "w2", 2, delivered(3), later(10_000))
        .await
        .unwrap();
    let recovered = store.get_stream(stream.id).await.unwrap();
    assert_eq!(
        (
            recovered.state,
            recovered.failures,
            recovered.error.as_deref(),
            recovered.cursor
        ),
        (StreamState::Active, 0, None, 3)
    );
    assert_eq!(
        recovered.counters,
        crate::StreamCounters {
            deliveries: 2,
            events_delivered: 3,
            failed_attempts: 1,
        }
    );
    store.release_stream(stream.id, "w2", later(10_000)).await.unwrap();

    // Caught up: not claimed until a new event arrives.
    assert_eq!(
        store.claim_stream("w1", later(20_000), later(50_000)).await.unwrap(),
        None
    );
    store
        .append_events(
            organization,
            vec![event_at(2_000, "user.signed_in", "user_1", &[])],
            None,
        )
        .await
        .unwrap();
    store
        .claim_stream("w1", later(20_000), later(50_000))
        .await
        .unwrap()
        .unwrap();

    // A replay while w1 delivers: w1's outcome no longer applies; it lets go; the next claim
    // starts from the replayed position.
    store.replay_stream(stream.id, 1).await.unwrap();
    assert!(matches!(
        store
            .finish_delivery(stream.id, "w1", 3, delivered(4), later(20_000))
            .await,
        Err(StoreError::Conflict(_))
    ));
    store.release_stream(stream.id, "w1", later(20_000)).await.unwrap();
    let again = store
        .claim_stream("w2", later(20_000), later(50_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.cursor, 1);

    // Invalid: no claims until the stream is updated.
    store
        .finish_delivery(
            stream.id,
            "w2",
            1,
            DeliveryOutcome::Failed {
                state: StreamState::Invalid,
                reason: "HTTP 401".into(),
                next_attempt_at: None,
            },
            later(20_000),
        )
        .await
        .unwrap();
    assert_eq!(
        store.claim_stream("w1", later(60_000), later(90_000)).await.unwrap(),
        None
    );
    store
        .update_stream(
            stream.id,
            StreamChange {
                destination: destination("https://a.test/"),
                sealed_secrets: vec![],
                state: StreamState::Active,
            },
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_stream("w1", later(60_000), later(90_000))
            .await
            .unwrap()
            .is_some()
    );

    // A lease that ran out is taken over.
    assert!(
        store
            .claim_stream("w2", later(90_000), later(120_000))
            .await
            .unwrap()
            .is_some()
    );
}

/// Claims racing on every connection never hand one stream to two workers.
pub async fn concurrent_stream_claims_never_share_a_stream(store: Arc<impl Store>) {
    let organization = store.create_organization(new_organization("Races")).await.unwrap().id;
    store
        .append_events(
            organization,
            vec![event_at(1_000, "user.signed_in", "user_1", &[])],
            None,
        )
        .await
        .unwrap();
    for _ in 0..3 {
        store
            .create_stream(NewStream {
                organization_id: organization,
                destination: destination("https://a.test/"),
                sealed_secrets: vec![],
                state: StreamState::Active,
                cursor: 0,
            })
            .await
            .unwrap();
    }
    let now = crate::now();
    let until = at(now.unix_millis() + 60_000);
    let claims = (0..8).map(|worker| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.claim_stream(&format!("w{worker}"), now, until).await.unwrap() })
    });
    let mut claimed: Vec<_> = Vec::new();
    for claim in claims {
        if let Some(stream) = claim.await.unwrap() {
            claimed.push(stream.id);
        }
    }
    claimed.sort();
    let count = claimed.len();
    claimed.dedup();
    assert_eq!((count, claimed.len()), (3, 3));
}
