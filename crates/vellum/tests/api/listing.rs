//! `GET /audit_logs/events`: every filter and both cursor directions.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_ok, json_status};

struct Fixture {
    app: TestApp,
    organization: String,
    /// Event ids in the order they were sent.
    ids: Vec<String>,
}

/// Twelve events, several sharing one `occurred_at`, across actions, actors and targets.
async fn fixture() -> Fixture {
    let app = TestApp::spawn().await;
    let organization = app.organization("Listing").await;
    for action in ["user.signed_in", "invoice.paid"] {
        app.create_schema(
            action,
            &json!({"targets": [{"type": "team"}, {"type": "invoice"}, {"type": "user"}]}),
        )
        .await;
    }
    let mut events = Vec::new();
    for index in 0..12 {
        // Four distinct instants, three events each: pages must cross ties.
        let second = index / 3;
        let (action, actor, actor_name) = match index % 3 {
            0 => ("user.signed_in", "alice", "Alice Smith"),
            1 => ("invoice.paid", "bob", "Bob, Jr."),
            _ => ("user.signed_in", "carol", "Carol"),
        };
        let mut targets = vec![json!({"id": format!("team_{}", index % 2), "type": "team"})];
        if index % 4 == 0 {
            targets.push(json!({"id": format!("inv_{index}"), "type": "invoice"}));
        }
        events.push(json!({
            "action": action,
            "occurred_at": format!("2026-03-01T10:00:0{second}.000Z"),
            "actor": {"id": actor, "type": "user", "name": actor_name},
            "targets": targets,
            "context": {"location": "198.51.100.4"},
            "metadata": {"note": format!("event number {index}")},
        }));
    }
    let ids = app.ingest_batch(&organization, events).await;
    Fixture { app, organization, ids }
}

impl Fixture {
    async fn page(&self, query: &str) -> (Vec<String>, Value) {
        let body = json_ok(
            self.app
                .get(&format!(
                    "/audit_logs/events?organization_id={}&{query}",
                    self.organization
                ))
                .await,
        )
        .await;
        let ids = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["id"].as_str().unwrap().to_owned())
            .collect();
        (ids, body["list_metadata"].clone())
    }

    /// Follows `after` (or `before`) from the first page to the end.
    async fn walk(&self, query: &str, follow: &str) -> Vec<String> {
        let mut all = Vec::new();
        let mut next = query.to_owned();
        loop {
            let (ids, metadata) = self.page(&next).await;
            all.extend(ids);
            match metadata[follow].as_str() {
                Some(cursor) => next = format!("{query}&{follow}={cursor}"),
                None => return all,
            }
        }
    }

    /// Ids newest first: later instants first, and within one instant the later arrival first.
    fn newest_first(&self, keep: impl Fn(usize) -> bool) -> Vec<String> {
        (0..12)
            .rev()
            .filter(|index| keep(*index))
            .map(|index| self.ids[index].clone())
            .collect()
    }
}

#[tokio::test]
async fn pages_cross_equal_timestamps_in_both_directions() {
    let fixture = fixture().await;
    let all = fixture.newest_first(|_| true);
    assert_eq!(fixture.walk("limit=2", "after").await, all, "desc, following after");
    let mut oldest_first = all.clone();
    oldest_first.reverse();
    assert_eq!(
        fixture.walk("order=asc&limit=5", "after").await,
        oldest_first,
        "asc, following after"
    );
    assert_eq!(
        fixture.walk("order=normal&limit=4", "before").await,
        all,
        "normal, following before"
    );

    // From the last page, walk back with `before`.
    let (last, metadata) = fixture.page(&format!("limit=4&after={}", all[7])).await;
    assert_eq!(last, all[8..]);
    let (previous, metadata) = fixture
        .page(&format!("limit=4&before={}", metadata["before"].as_str().unwrap()))
        .await;
    assert_eq!(previous, all[4..8]);
    let (first, metadata) = fixture
        .page(&format!("limit=4&before={}", metadata["before"].as_str().unwrap()))
        .await;
    assert_eq!(first, all[..4]);
    assert_eq!(metadata["before"], Value::Null);
    let (default_page, _) = fixture.page("").await;
    assert_eq!(default_page, all[..10], "10 per page by default");
}

#[tokio::test]
async fn every_filter_narrows_the_list() {
    let fixture = fixture().await;
    let by_actor = |actor: usize| fixture.newest_first(move |index| index % 3 == actor);
    assert_eq!(
        fixture.walk("limit=3&actions[]=invoice.paid", "after").await,
        by_actor(1)
    );
    assert_eq!(
        fixture.walk("limit=3&actions=invoice.paid", "after").await,
        by_actor(1),
        "unbracketed form"
    );
    assert_eq!(
        fixture
            .walk("limit=3&actor_ids[]=alice&actor_ids[]=carol", "after")
            .await,
        fixture.newest_first(|i| i % 3 != 1)
    );
    assert_eq!(
        fixture.walk("limit=3&actor_names[]=Bob,%20Jr.", "after").await,
        by_actor(1),
        "names may hold commas"
    );
    assert_eq!(
        fixture.walk("limit=3&targets[]=invoice", "after").await,
        fixture.newest_first(|i| i % 4 == 0)
    );
    assert_eq!(
        fixture.walk("limit=3&target_ids[]=team_1", "after").await,
        fixture.newest_first(|i| i % 2 == 1)
    );
    assert_eq!(
        fixture
            .walk("limit=3&targets[]=invoice&target_ids[]=team_0", "after")
            .await,
        fixture.newest_first(|i| i % 4 == 0)
    );
    assert_eq!(
        fixture
            .walk(
                "limit=3&range_start=2026-03-01T10:00:01Z&range_end=2026-03-01T10:00:03Z",
                "after"
            )
            .await,
        fixture.newest_first(|i| (3..9).contains(&i))
    );
    assert_eq!(
        fixture.walk("limit=3&search=NUMBER%2011", "after").await,
        fixture.newest_first(|i| i == 11)
    );
    assert_eq!(
        fixture.walk("limit=3&search=inv_8", "after").await,
        fixture.newest_first(|i| i == 8)
    );
    assert_eq!(
        fixture
            .walk("limit=3&actions[]=user.signed_in&targets[]=invoice&order=asc", "after")
            .await,
        {
            let mut ids = fixture.newest_first(|i| i % 4 == 0 && i % 3 != 1);
            ids.reverse();
            ids
        }
    );
    assert!(
        fixture
            .walk("limit=3&actions[]=nothing.matches", "after")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn bad_list_requests_are_refused() {
    let fixture = fixture().await;
    let app = &fixture.app;
    let other = app.organization("Other").await;
    json_status(app.get("/audit_logs/events").await, StatusCode::UNPROCESSABLE_ENTITY).await;
    json_status(
        app.get("/audit_logs/events?organization_id=org_01EHWNCE74X7JSDV0X3SZ3KJNY")
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("order=up", "order"),
        ("after=evt_123", "after"),
        ("range_start=soon", "range_start"),
        (
            "range_start=2026-03-02T00:00:00Z&range_end=2026-03-01T00:00:00Z",
            "range_end",
        ),
    ] {
        let path = format!("/audit_logs/events?organization_id={}&{query}", fixture.organization);
        let error = json_status(app.get(&path).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            error["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|item| item["field"] == field),
            "{query}: {error}"
        );
    }
    // A cursor from another organization's list.
    let path = format!("/audit_logs/events?organization_id={other}&before={}", fixture.ids[0]);
    let error = json_status(app.get(&path).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(error["errors"][0]["field"], "before");
}
