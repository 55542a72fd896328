//! Retention that deletes: `vellum purge` and the periodic pass remove the events past an
//! organization's retention from every read path, the log still verifies (a checkpoint pinned
//! before the purge included), deletions by hand are still caught, and a legal hold blocks it all.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::exports::{download, finished_export, verify_export};
use crate::helpers::{TestApp, backend_env, database_url_for, json_ok, json_status, run_vellum};
use crate::verify::verify;

const DAY_MILLIS: i64 = 24 * 60 * 60 * 1000;

fn days_ago(days: i64) -> String {
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    vellum_core::Timestamp::from_unix_millis(now - days * DAY_MILLIS)
        .unwrap()
        .to_wire()
}

/// An organization keeping 30 days, with `old` events from 60 days ago interleaved with `new`
/// ones from today (so purged positions leave holes between kept ones).
async fn organization_with_history(app: &TestApp, name: &str, old: usize, new: usize) -> String {
    let organization = app.organization(name).await;
    json_ok(
        app.send_json(
            Method::PUT,
            &format!("/organizations/{organization}/audit_logs_retention"),
            &json!({"retention_period_in_days": 30}),
        )
        .await,
    )
    .await;
    app.create_schema("doc.edited", &json!({"targets": [{"type": "doc"}]}))
        .await;
    let (old_at, new_at) = (days_ago(60), days_ago(1));
    let total = old + new;
    let events: Vec<Value> = (0..total)
        .map(|index| {
            // Old events spread evenly among the new ones.
            let is_old = index * old / total != (index + 1) * old / total;
            let (who, when, title) = if is_old {
                (format!("old_user_{index}"), &old_at, format!("ancient draft {index}"))
            } else {
                (format!("new_user_{index}"), &new_at, format!("fresh draft {index}"))
            };
            json!({
                "action": "doc.edited",
                "occurred_at": when,
                "actor": {"id": who, "type": "user", "name": format!("Name {who}")},
                "targets": [{"id": format!("doc_{index}"), "type": "doc"}],
                "context": {"location": "192.0.2.9"},
                "metadata": {"title": title},
            })
        })
        .collect();
    app.ingest_batch(&organization, events).await;
    organization
}

fn purge(data_dir: &Path) -> (bool, String) {
    run_vellum(
        &["purge", "--data-dir", data_dir.to_str().unwrap()],
        &backend_env(data_dir),
    )
}

fn verify_store(data_dir: &Path) -> (bool, String) {
    verify(&["verify", "store", "--data-dir", data_dir.to_str().unwrap()])
}

async fn events_of(app: &TestApp, organization: &str) -> Vec<Value> {
    crate::helpers::all_events_at(&app.client, &app.api_key, &app.address, organization).await
}

fn actors(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| event["actor"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Deletes a stored event by hand, outside Vellum.
fn delete_event_by_hand(data_dir: &Path, event_id: &str) {
    let ulid = vellum_core::EventId::parse(event_id).unwrap().ulid();
    let hex: String = ulid.to_bytes().iter().map(|byte| format!("{byte:02x}")).collect();
    match database_url_for(data_dir) {
        Some(url) => {
            for table in ["event_targets", "audit_trail_events"] {
                vellum_store::postgres::testing::execute(
                    &url,
                    &format!(
                        "delete from {table} where (received_at, event_seq) in \
                         (select received_at, seq from events where id = '\\x{hex}'::bytea)"
                    ),
                );
            }
            assert_eq!(
                vellum_store::postgres::testing::execute(
                    &url,
                    &format!("delete from events where id = '\\x{hex}'::bytea")
                ),
                1
            );
        }
        None => {
            let connection = rusqlite::Connection::open(data_dir.join("vellum.sqlite3")).unwrap();
            connection.busy_timeout(Duration::from_secs(10)).unwrap();
            connection
                .execute_batch(&format!(
                    "delete from event_targets where event_seq = (select seq from events where id = x'{hex}');
                     delete from events where id = x'{hex}';"
                ))
                .unwrap();
        }
    }
}

#[tokio::test]
async fn vellum_purge_removes_what_is_past_retention_from_every_read_and_the_log_still_verifies() {
    let app = TestApp::spawn().await;
    let organization = organization_with_history(&app, "Thirty days", 30, 12).await;
    let other = app.organization("Keeps everything").await;
    app.ingest_batch(
        &other,
        vec![
            json!({"action": "doc.edited", "occurred_at": days_ago(60), "actor": {"id": "old_user_x", "type": "user"},
            "targets": [{"id": "d", "type": "doc"}], "context": {"location": "x"}}),
        ],
    )
    .await;
    let before = events_of(&app, &organization).await;
    assert_eq!(before.len(), 42);
    let old_ids: Vec<String> = before
        .iter()
        .filter(|event| event["actor"]["id"].as_str().unwrap().starts_with("old_"))
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(old_ids.len(), 30);

    // An auditor pins the log before the purge.
    let key = json_ok(app.get("/audit_logs/log/public_key").await).await;
    let pinned = key["verifier_key"].as_str().unwrap().to_owned();
    let state = app.data_dir.path().join("auditor-state.json");
    let verify_log = {
        let (address, api_key, organization, pinned, state) = (
            app.address.clone(),
            app.api_key.clone(),
            organization.clone(),
            pinned.clone(),
            state.clone(),
        );
        move || {
            verify(&[
                "verify",
                "log",
                "--url",
                &address,
                "--api-key",
                &api_key,
                "--organization",
                &organization,
                "--public-key",
                &pinned,
                "--state",
                state.to_str().unwrap(),
            ])
        }
    };
    let (ok, output) = tokio::task::spawn_blocking(verify_log.clone()).await.unwrap();
    assert!(ok && output.contains("42 entries"), "{output}");

    let data_dir = app.data_dir.path().to_owned();
    let (ok, output) = tokio::task::spawn_blocking(move || purge(&data_dir)).await.unwrap();
    assert!(ok, "{output}");
    assert!(
        output.contains(&organization) && output.contains("purged 30 events"),
        "{output}"
    );
    assert!(
        output.contains("365"),
        "the other organization keeps the default: {output}"
    );

    // Gone from the listing, get-by-id, search and exports; the rest stays, with the record.
    let after = events_of(&app, &organization).await;
    let mut remaining = actors(&after);
    remaining.sort();
    assert_eq!(after.len(), 13, "{remaining:?}");
    assert!(
        remaining.iter().all(|actor| !actor.starts_with("old_")),
        "{remaining:?}"
    );
    let record = after
        .iter()
        .find(|event| event["action"] == "vellum.retention.purged")
        .expect("the purge is in the trail");
    assert_eq!(record["metadata"]["events_purged"], 30);
    assert_eq!(record["metadata"]["retention_period_in_days"], 30);
    assert_eq!(record["actor"]["type"], "vellum");
    for id in &old_ids {
        json_status(
            app.get(&format!("/audit_logs/events/{id}")).await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    let searched = json_ok(
        app.get(&format!(
            "/audit_logs/events?organization_id={organization}&search=ancient"
        ))
        .await,
    )
    .await;
    assert_eq!(searched["data"].as_array().unwrap().len(), 0, "{searched}");
    let searched = json_ok(
        app.get(&format!(
            "/audit_logs/events?organization_id={organization}&search=fresh&limit=100"
        ))
        .await,
    )
    .await;
    assert_eq!(searched["data"].as_array().unwrap().len(), 12);
    let everything = json!({"organization_id": organization, "range_start": days_ago(400), "range_end": days_ago(-1)});
    let csv = download(finished_export(&app, everything.clone()).await["url"].as_str().unwrap()).await;
    assert!(!csv.contains("old_user") && !csv.contains("ancient"), "{csv}");
    assert_eq!(
        csv.matches("new_user_").count(),
        12 * 2,
        "actor id and name of each kept event"
    );
    let mut ndjson = everything;
    ndjson["format"] = json!("ndjson");
    let text = download(finished_export(&app, ndjson).await["url"].as_str().unwrap()).await;
    assert_eq!(text.matches("\"type\":\"purged\"").count(), 30);
    assert!(!text.contains("old_user"));
    let file = app.data_dir.path().join("after-purge.ndjson");
    std::fs::write(&file, &text).unwrap();
    let (ok, output) = verify_export(&file, &pinned);
    assert!(ok && output.contains("30 entries removed by purges"), "{output}");
    // The other organization (default retention) lost nothing.
    assert_eq!(events_of(&app, &other).await.len(), 1);

    // The auditor's pinned checkpoint is consistent with the new one, and every kept entry and
    // purged leaf still hashes to the signed root.
    let (ok, output) = tokio::task::spawn_blocking(verify_log.clone()).await.unwrap();
    assert!(ok, "{output}");
    assert!(output.contains("43 entries (30 removed by 1 purge records"), "{output}");
    let data_dir = app.data_dir.path().to_owned();
    let (ok, output) = tokio::task::spawn_blocking(move || verify_store(&data_dir))
        .await
        .unwrap();
    assert!(ok, "{output}");

    // A second pass finds nothing more to do.
    let data_dir = app.data_dir.path().to_owned();
    let (ok, output) = tokio::task::spawn_blocking(move || purge(&data_dir)).await.unwrap();
    assert!(ok && output.contains("purged 0 events"), "{output}");

    // A kept event deleted by hand is still tampering, named with its position.
    let victim = after
        .iter()
        .find(|event| event["actor"]["id"].as_str().unwrap().starts_with("new_"))
        .unwrap();
    let position = json_ok(
        app.get(&format!(
            "/audit_logs/log/proof/inclusion?organization_id={organization}&event_id={}",
            victim["id"].as_str().unwrap()
        ))
        .await,
    )
    .await["leaf_index"]
        .as_u64()
        .unwrap();
    delete_event_by_hand(app.data_dir.path(), victim["id"].as_str().unwrap());
    let data_dir = app.data_dir.path().to_owned();
    let (ok, output) = tokio::task::spawn_blocking(move || verify_store(&data_dir))
        .await
        .unwrap();
    assert!(!ok, "{output}");
    assert!(
        output.contains(&format!("position {position}")) && output.contains("deleted"),
        "{output}"
    );
    let (ok, output) = tokio::task::spawn_blocking(verify_log).await.unwrap();
    assert!(!ok && output.contains(&format!("position {position}")), "{output}");
    app.stop().await.unwrap();
}

/// Polls until `done` holds, for at most 60 seconds.
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_periodic_pass_purges_and_a_legal_hold_blocks_it_until_lifted() {
    let app = TestApp::spawn_with(|settings| settings.purge_interval = Some(Duration::from_millis(300))).await;
    let held = app.organization("Held").await;
    let path = format!("/organizations/{held}/audit_logs_legal_hold");
    let unset = json_ok(app.get(&path).await).await;
    assert_eq!(
        unset,
        json!({"object": "audit_logs_legal_hold", "organization_id": held, "legal_hold": false, "reason": null, "since": null})
    );
    let set = json_ok(
        app.send_json(
            Method::PUT,
            &path,
            &json!({"legal_hold": true, "reason": "Litigation 2026-114"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (set["legal_hold"].as_bool(), set["reason"].as_str()),
        (Some(true), Some("Litigation 2026-114"))
    );
    assert_eq!(set["recorded_at_log_index"], 0);
    assert_eq!(json_ok(app.get(&path).await).await["since"], set["since"]);
    // Setting it again changes nothing and records nothing.
    let again = json_ok(app.send_json(Method::PUT, &path, &json!({"legal_hold": true})).await).await;
    assert_eq!(
        (again["reason"].as_str(), again.get("recorded_at_log_index")),
        (Some("Litigation 2026-114"), None)
    );

    // Refused requests change nothing.
    for (body, field) in [
        (json!({"reason": "no flag"}), "legal_hold"),
        (json!({"legal_hold": true, "reason": "x".repeat(501)}), "reason"),
        (json!({"legal_hold": "yes"}), "legal_hold"),
    ] {
        let response = app.send_json(Method::PUT, &path, &body).await;
        assert!(response.status().is_client_error(), "{body}");
        let error = response.json::<Value>().await.unwrap();
        assert!(error.to_string().contains(field), "{error}");
    }
    json_status(
        app.send_json(
            Method::PUT,
            "/organizations/org_01EHWNCE74X7JSDV0X3SZ3KJNY/audit_logs_legal_hold",
            &json!({"legal_hold": true}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // Vellum's own namespace is closed to clients.
    let reserved = app
        .post_json(
            "/audit_logs/events",
            &json!({"organization_id": held, "event": {"action": "vellum.retention.purged", "occurred_at": days_ago(0),
                "actor": {"id": "a", "type": "user"}, "targets": [], "context": {"location": "x"}}}),
        )
        .await;
    assert_eq!(reserved.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reserved.text().await.unwrap().contains("reserved"));
    let schema = app
        .post_json(
            "/audit_logs/actions/vellum.retention.purged/schemas",
            &json!({"targets": []}),
        )
        .await;
    assert!(schema.status().is_client_error());

    // Events in both organizations; the periodic pass purges the free one only.
    let free = organization_with_history(&app, "Free", 10, 5).await;
    let held_events: Vec<Value> = (0..6)
        .map(|index| {
            json!({"action": "doc.edited", "occurred_at": days_ago(if index < 4 { 90 } else { 0 }),
            "actor": {"id": format!("held_user_{index}"), "type": "user"}, "targets": [{"id": "d", "type": "doc"}],
            "context": {"location": "x"}})
        })
        .collect();
    app.ingest_batch(&held, held_events).await;
    json_ok(
        app.send_json(
            Method::PUT,
            &format!("/organizations/{held}/audit_logs_retention"),
            &json!({"retention_period": "1_MONTH"}),
        )
        .await,
    )
    .await;
    eventually("the periodic purge of the free organization", || async {
        !actors(&events_of(&app, &free).await)
            .iter()
            .any(|actor| actor.starts_with("old_"))
    })
    .await;
    // Another pass for good measure: the held organization keeps everything.
    let free_size = events_of(&app, &free).await.len();
    assert_eq!(free_size, 6, "5 kept events and the record");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let kept = events_of(&app, &held).await;
    assert_eq!(kept.len(), 7, "six events and the hold's record");
    let record = kept
        .iter()
        .find(|event| event["action"] == "vellum.legal_hold.set")
        .unwrap();
    assert_eq!(record["metadata"]["reason"], "Litigation 2026-114");
    assert_eq!(record["actor"]["type"], "api_key");

    // Lifting the hold is recorded too, and the next pass purges.
    let lifted = json_ok(app.send_json(Method::PUT, &path, &json!({"legal_hold": false})).await).await;
    assert_eq!(
        (lifted["legal_hold"].as_bool(), lifted["reason"].clone()),
        (Some(false), Value::Null)
    );
    assert!(lifted["recorded_at_log_index"].as_u64().is_some());
    eventually("the purge of the organization once its hold is lifted", || async {
        !actors(&events_of(&app, &held).await)
            .iter()
            .any(|actor| ["held_user_0", "held_user_1", "held_user_2", "held_user_3"].contains(&actor.as_str()))
    })
    .await;
    let actions: Vec<String> = events_of(&app, &held)
        .await
        .iter()
        .map(|event| event["action"].as_str().unwrap().to_owned())
        .collect();
    for action in [
        "vellum.legal_hold.set",
        "vellum.legal_hold.lifted",
        "vellum.retention.purged",
    ] {
        assert!(actions.contains(&action.to_owned()), "{actions:?}");
    }
    let data_dir = app.data_dir.path().to_owned();
    let (ok, output) = tokio::task::spawn_blocking(move || verify_store(&data_dir))
        .await
        .unwrap();
    assert!(ok, "{output}");
    app.stop().await.unwrap();
}
