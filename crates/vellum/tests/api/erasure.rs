//! Erasure of one person's data (`POST /audit_logs/erasures`): afterwards their ids, names and
//! location are found in no read path (listing, get-by-id, search, both export formats) and
//! nowhere in the store (the SQLite files' bytes, every PostgreSQL row), the events stay marked
//! erased, the log still verifies, and a legal hold refuses the erasure.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::exports::{download, finished_export, verify_export};
use crate::helpers::{TestApp, database_url_for, json_ok, json_status};
use crate::verify::verify;

const PERSON: &str = "erin_rasure_7731";
const NAME: &str = "Erin Uniquesurname";
const ADDRESS: &str = "198.51.100.77";
const SECOND_ID: &str = "member_erin_5512";

fn mentions_the_person(text: &str) -> bool {
    [PERSON, NAME, ADDRESS, SECOND_ID]
        .iter()
        .any(|needle| text.contains(needle))
}

async fn erase(app: &TestApp, body: &Value) -> reqwest::Response {
    app.send_json(Method::POST, "/audit_logs/erasures", body).await
}

/// Every file under `dir`, recursively, with its bytes.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path, bytes));
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn an_erased_person_is_found_nowhere_and_the_log_still_verifies() {
    let app = TestApp::spawn().await;
    let organization = app.organization("Erasures").await;
    let other = app.organization("Another customer").await;
    app.create_schema("doc.shared", &json!({"targets": [{"type": "doc"}, {"type": "user"}]}))
        .await;
    let mut events = Vec::new();
    for index in 0..12 {
        // The person acts in some events, is a target (under either id) in others; someone else
        // acts in the rest.
        let (actor, target) = match index % 4 {
            0 => (
                json!({"id": PERSON, "type": "user", "name": NAME, "metadata": {"email_hash": "h1"}}),
                "keeper_target",
            ),
            1 => (
                json!({"id": "keeper_user", "type": "user", "name": "Kim Keeper"}),
                PERSON,
            ),
            2 => (
                json!({"id": "keeper_user", "type": "user", "name": "Kim Keeper"}),
                SECOND_ID,
            ),
            _ => (
                json!({"id": "keeper_user", "type": "user", "name": "Kim Keeper"}),
                "keeper_target",
            ),
        };
        let location = if index % 4 == 0 { ADDRESS } else { "192.0.2.1" };
        events.push(json!({
            "action": "doc.shared",
            "occurred_at": "2026-11-01T10:00:00.000Z",
            "actor": actor,
            "targets": [
                {"id": format!("doc_{index}"), "type": "doc", "name": format!("Plan {index}")},
                {"id": target, "type": "user", "name": if target == "keeper_target" { "Kept Target" } else { NAME }},
            ],
            "context": {"location": location, "user_agent": "agent/1.0"},
            "metadata": {"note": format!("keep-this-note-{index}")},
        }));
    }
    app.ingest_batch(&organization, events.clone()).await;
    // Another customer's event names the same id (and nothing else of the person): erasure
    // stays within its organization, and the checks of the store below can fail.
    app.ingest_batch(
        &other,
        vec![
            json!({"action": "doc.shared", "occurred_at": "2026-11-01T10:00:00.000Z",
            "actor": {"id": PERSON, "type": "user"}, "context": {"location": "192.0.2.1"},
            "targets": [{"id": "doc_x", "type": "doc"}, {"id": "keeper_target", "type": "user"}]}),
        ],
    )
    .await;
    let before = app.all_events(&organization).await;
    assert_eq!(before.len(), 12);

    // Bad requests change nothing.
    json_status(
        erase(&app, &json!({"organization_id": organization})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    json_status(
        erase(&app, &json!({"organization_id": organization, "actor_id": ""})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    json_status(
        erase(
            &app,
            &json!({"organization_id": "org_01EHWNCE74X7JSDV0X3SZ3KJNY", "actor_id": PERSON}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // An export made before the erasure holds the person; its link ends with the erasure.
    let everything = json!({"organization_id": organization, "range_start": "2026-01-01T00:00:00.000Z",
        "range_end": "2030-01-01T00:00:00.000Z"});
    let early_url = finished_export(&app, everything.clone()).await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(mentions_the_person(&download(&early_url).await));
    // An export filtered by the person's id and name keeps both in its stored filter, until the
    // erasure.
    let mut by_person = everything.clone();
    by_person["actor_ids"] = json!([PERSON]);
    by_person["actor_names"] = json!([NAME]);
    finished_export(&app, by_person).await;

    // A legal hold refuses the erasure, and nothing changes.
    json_ok(
        app.send_json(
            Method::PUT,
            &format!("/organizations/{organization}/audit_logs_legal_hold"),
            &json!({"legal_hold": true, "reason": "litigation"}),
        )
        .await,
    )
    .await;
    let refused = json_status(
        erase(
            &app,
            &json!({"organization_id": organization, "actor_id": PERSON, "target_id": SECOND_ID}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(refused["code"], "legal_hold", "{refused}");
    let held = app.all_events(&organization).await;
    assert_eq!(held.len(), 13, "the hold's record only");
    assert!(mentions_the_person(&serde_json::to_string(&held).unwrap()));
    json_ok(
        app.send_json(
            Method::PUT,
            &format!("/organizations/{organization}/audit_logs_legal_hold"),
            &json!({"legal_hold": false}),
        )
        .await,
    )
    .await;

    let erased = json_status(
        erase(
            &app,
            &json!({"organization_id": organization, "actor_id": PERSON, "target_id": SECOND_ID}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(erased["object"], "audit_log_erasure");
    assert_eq!(erased["events_erased"], 9, "{erased}");
    assert_eq!(erased["records"].as_array().unwrap().len(), 1, "{erased}");

    // Listing and get-by-id: the events stay, without the person; everything else is intact.
    let after = app.all_events(&organization).await;
    assert_eq!(after.len(), 15, "12 events and 3 records");
    let text = serde_json::to_string(&after).unwrap();
    assert!(!mentions_the_person(&text), "{text}");
    for index in 0..12 {
        assert!(
            text.contains(&format!("keep-this-note-{index}")),
            "event metadata stays"
        );
    }
    let record = after
        .iter()
        .find(|event| event["action"] == "vellum.personal_data.erased")
        .expect("the erasure is in the trail");
    assert_eq!(record["metadata"]["events_erased"], 9);
    assert_eq!(record["actor"]["type"], "api_key");
    let erased_event = after
        .iter()
        .find(|event| event["actor"]["erased"] == json!(true))
        .expect("an event the person acted in");
    assert_eq!(erased_event["actor"]["id"], "");
    assert_eq!(erased_event["actor"]["type"], "user");
    assert_eq!(erased_event["context"]["location"], "");
    assert_eq!(erased_event["erased_by"], json!([record["log_index"]]));
    let one = json_ok(
        app.get(&format!("/audit_logs/events/{}", erased_event["id"].as_str().unwrap()))
            .await,
    )
    .await;
    assert!(!mentions_the_person(&one.to_string()), "{one}");
    assert_eq!(
        after
            .iter()
            .filter(|event| event["actor"]["id"] == "keeper_user")
            .count(),
        9,
        "other actors stay"
    );
    // The other organization is untouched.
    assert_eq!(app.all_events(&other).await[0]["actor"]["id"], PERSON);

    // Search finds nothing of the person, and still finds the rest.
    for term in ["erin_rasure", "Uniquesurname", "198.51.100.77", "member_erin"] {
        let found = json_ok(
            app.get(&format!(
                "/audit_logs/events?organization_id={organization}&search={term}"
            ))
            .await,
        )
        .await;
        assert_eq!(found["data"].as_array().unwrap().len(), 0, "{term}: {found}");
    }
    let found = json_ok(
        app.get(&format!(
            "/audit_logs/events?organization_id={organization}&search=Kim%20Keeper&limit=100"
        ))
        .await,
    )
    .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 9);

    // The export made before is gone; new ones in neither format hold the person, and the
    // verifiable one verifies.
    let early = reqwest::get(&early_url).await.unwrap();
    assert!(early.status().is_client_error(), "{}", early.status());
    assert!(!mentions_the_person(&early.text().await.unwrap()));
    let csv = download(finished_export(&app, everything.clone()).await["url"].as_str().unwrap()).await;
    assert!(!mentions_the_person(&csv) && csv.contains("keep-this-note-3"), "{csv}");
    let mut ndjson = everything;
    ndjson["format"] = json!("ndjson");
    let text = download(finished_export(&app, ndjson).await["url"].as_str().unwrap()).await;
    assert!(!mentions_the_person(&text), "{text}");
    let key = json_ok(app.get("/audit_logs/log/public_key").await).await;
    let pinned = key["verifier_key"].as_str().unwrap().to_owned();
    let file = app.data_dir.path().join("after-erasure.ndjson");
    std::fs::write(&file, &text).unwrap();
    let (ok, output) = verify_export(&file, &pinned);
    assert!(ok && output.contains("9 events with personal data erased"), "{output}");
    // Parties are sealed in the leaf: an erased one is withheld, the others disclosed beside it.
    assert!(text.contains("\"disclosed\":{\"actor\":null"), "{text}");
    assert!(text.contains("\"name\":\"Kim Keeper\""), "{text}");
    // Withholding a party of an event that names no erasure is caught.
    let withheld: String = text
        .lines()
        .map(|line| {
            if line.contains("keep-this-note-3\"") {
                line.replacen("\"disclosed\":{\"actor\":{", "\"disclosed\":{\"actor\":null,\"x\":{", 1)
            } else {
                line.to_owned()
            }
        })
        .map(|line| line + "\n")
        .collect();
    assert_ne!(withheld, text);
    let file = app.data_dir.path().join("withheld.ndjson");
    std::fs::write(&file, &withheld).unwrap();
    let (ok, output) = verify_export(&file, &pinned);
    assert!(!ok && output.contains("names no later erasure record"), "{output}");

    // The log verifies over HTTP and in the store, each erased position accounted for.
    let (address, api_key, organization_text) = (app.address.clone(), app.api_key.clone(), organization.clone());
    let (ok, output) = tokio::task::spawn_blocking(move || {
        verify(&[
            "verify",
            "log",
            "--url",
            &address,
            "--api-key",
            &api_key,
            "--organization",
            &organization_text,
            "--public-key",
            &pinned,
        ])
    })
    .await
    .unwrap();
    assert!(
        ok && output.contains("9 with personal data erased by 1 erasure records"),
        "{output}"
    );

    // Erasing again finds nothing more.
    let again = json_status(
        erase(&app, &json!({"organization_id": organization, "actor_id": PERSON})).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(again["events_erased"], 0);

    let data_dir = app.stop_keeping_data().await;
    let (ok, output) = verify(&["verify", "store", "--data-dir", data_dir.path().to_str().unwrap()]);
    assert!(ok && output.contains("erased"), "{output}");
    match database_url_for(data_dir.path()) {
        Some(url) => {
            // No row of any table holds the person, but for the other organization's event.
            for (needle, expected) in [(PERSON, 1), (NAME, 0), (ADDRESS, 0), (SECOND_ID, 0)] {
                let found = vellum_store::postgres::testing::execute(
                    &url,
                    &format!(
                        "select 1 from events e where e::text like '%{needle}%'
                         union all select 1 from event_targets t where t::text like '%{needle}%'
                         union all select 1 from audit_trail_events a where a::text like '%{needle}%'
                         union all select 1 from exports x where x::text like '%{needle}%'"
                    ),
                );
                assert_eq!(
                    found, expected,
                    "{needle}: only the other organization's event holds the id"
                );
            }
        }
        None => {
            // Only the other organization's event holds the id (so the check can fail); nothing
            // else of the person is in any file of the data directory.
            let files = files_under(data_dir.path());
            let holding: Vec<_> = files
                .iter()
                .filter(|(_, bytes)| contains(bytes, PERSON))
                .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            assert_eq!(holding, vec!["vellum.sqlite3".to_owned()], "{holding:?}");
            for needle in [NAME, ADDRESS, SECOND_ID] {
                let holding: Vec<_> = files
                    .iter()
                    .filter(|(_, bytes)| contains(bytes, needle))
                    .map(|(path, _)| path.display().to_string())
                    .collect();
                assert!(holding.is_empty(), "{needle} is still in {holding:?}");
            }
            // A backup taken after the erasure holds none of it either.
            let backup = data_dir.path().join("after-erasure.backup");
            let (ok, output) = crate::helpers::run_vellum(
                &[
                    "backup",
                    "--data-dir",
                    data_dir.path().to_str().unwrap(),
                    "--output",
                    backup.to_str().unwrap(),
                ],
                &[],
            );
            assert!(ok, "{output}");
            let bytes = std::fs::read(&backup).unwrap();
            assert!(
                contains(&bytes, PERSON),
                "the other organization's event is in the backup"
            );
            for needle in [NAME, ADDRESS, SECOND_ID] {
                assert!(!contains(&bytes, needle), "{needle} is in the backup");
            }
        }
    }
}
