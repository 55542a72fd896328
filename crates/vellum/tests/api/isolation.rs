//! Tenant isolation: a request scoped to organization A never answers with organization B's
//! objects, whatever of B's it names (ids in paths, queries and bodies, cursors from B's lists,
//! B's events in A's proofs, B's signed links, B's idempotency keys), through the public API
//! and through the dashboard's mirror of it.
//!
//! API keys are environment-wide, as in WorkOS: a key reads every organization, and routes that
//! take only an object's id (`GET /audit_logs/events/{id}`, `GET /audit_logs/exports/{id}`,
//! `GET /organizations/{id}`) are not scoped to an organization. Isolation is about the routes
//! that are: every list, proof, entry range, checkpoint and export of one organization, and
//! every write aimed at one. Each of B's objects carries unique marker strings; a marker in an
//! answer to A is a leak unless the request itself sent it (an error may echo the id it refuses).

use std::time::Duration;

use serde_json::{Value, json};

use crate::exports::wait_for_export;
use crate::helpers::TestApp;
use crate::malformed::{Raw, Reply, send_raw, sign_in, spawn_with_operator};

/// One organization and what was stored for it.
#[derive(Clone, Debug, Default)]
struct Tenant {
    id: String,
    external_id: String,
    /// `audit_log_event_` ids, newer API and legacy alike, in log order.
    events: Vec<String>,
    /// `evt_` ids of its legacy events.
    legacy: Vec<String>,
    actor_ids: Vec<String>,
    actor_names: Vec<String>,
    export: String,
    /// `expires=…&signature=…` of its export's link.
    download_query: String,
    /// The base64 root hash of its signed checkpoint.
    root: String,
    /// Its log stream (inactive: nothing is delivered).
    stream: String,
    /// Every string that belongs to this tenant alone.
    secrets: Vec<String>,
}

/// How requests are made: the public API with the key, or the dashboard's mirror with a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    ApiKey,
    Dashboard,
}

struct World {
    app: TestApp,
    cookie: String,
    csrf: String,
    a: Tenant,
    b: Tenant,
    /// Failures, all reported at the end.
    failures: Vec<String>,
    checked: usize,
}

impl World {
    fn prefix(via: Via) -> &'static str {
        match via {
            Via::ApiKey => "",
            Via::Dashboard => "/dashboard/api",
        }
    }

    async fn send(&self, via: Via, method: &str, path: &str, body: Option<&Value>) -> (Raw, Reply) {
        let mut raw = Raw::new(method, format!("{}{path}", Self::prefix(via)));
        if let Some(body) = body {
            raw = raw.json(body);
        }
        raw = match via {
            Via::ApiKey => raw.header("authorization", format!("Bearer {}", self.app.api_key)),
            Via::Dashboard => {
                let raw = raw.header("cookie", &self.cookie);
                if method == "GET" {
                    raw
                } else {
                    raw.header("x-csrf-token", &self.csrf)
                }
            }
        };
        let reply = send_raw(&self.app, &raw).await.expect("answered");
        (raw, reply)
    }

    /// Sends, checks the status, and checks that no secret of B the request did not carry is in
    /// the answer. Returns the answer's JSON (or `Null`).
    async fn probe(&mut self, via: Via, method: &str, path: &str, body: Option<&Value>, status: u16) -> Value {
        let (raw, reply) = self.send(via, method, path, body).await;
        self.check(&raw, &reply, status);
        reply.json().unwrap_or(Value::Null)
    }

    fn check(&mut self, raw: &Raw, reply: &Reply, status: u16) {
        self.checked += 1;
        let label = format!("{} {}", raw.method, raw.target);
        if reply.status != status {
            self.failures.push(format!(
                "{label}: expected {status}, got {} {}",
                reply.status,
                excerpt(&reply.text())
            ));
        }
        self.no_leak(&label, raw, &reply.text());
    }

    fn no_leak(&mut self, label: &str, raw: &Raw, answer: &str) {
        let request = format!("{} {}", raw.target, String::from_utf8_lossy(&raw.body));
        for secret in &self.b.secrets {
            if answer.contains(secret.as_str()) && !request.contains(secret.as_str()) {
                self.failures
                    .push(format!("{label}: the answer holds B's {secret:?}: {}", excerpt(answer)));
            }
        }
    }

    fn fail(&mut self, failure: String) {
        self.failures.push(failure);
    }

    fn finish(self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} failures in {} checks:\n{}",
            self.failures.len(),
            self.checked,
            self.failures
                .iter()
                .map(|failure| format!("- {failure}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Everything B has, read with B's own scope, to compare before and after.
    async fn b_state(&self) -> Value {
        let b = &self.b;
        let mut state = serde_json::Map::new();
        for path in [
            format!("/organizations/{}", b.id),
            format!("/organizations/{}/audit_logs_retention", b.id),
            format!("/organizations/{}/audit_logs_legal_hold", b.id),
            format!("/audit_logs/log/entries?organization_id={}&start=0", b.id),
            format!("/audit_logs/events?organization_id={}&limit=100", b.id),
            format!("/events?group={}&limit=100", b.external_id),
            format!("/audit_logs/exports/{}", b.export),
            format!("/audit_logs/streams/{}", b.stream),
            format!("/audit_logs/streams?organization_id={}", b.id),
        ] {
            let (_, reply) = self.send(Via::ApiKey, "GET", &path, None).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.text());
            let mut body = reply.json().expect("json");
            if path.starts_with("/audit_logs/exports/") {
                body["url"] = Value::Null;
            }
            // A stream's lag in seconds grows with the clock, not with anything asked of A.
            if let Some(lag) = body.get_mut("lag") {
                lag["seconds"] = Value::Null;
            }
            state.insert(path, body);
        }
        Value::Object(state)
    }
}

fn excerpt(text: &str) -> String {
    let mut excerpt: String = text.chars().take(300).collect();
    if text.len() > 300 {
        excerpt.push('…');
    }
    excerpt
}

fn ids(listing: &Value) -> Vec<String> {
    listing["data"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Creates one tenant: its organization, events of both APIs, an export and a checkpoint.
async fn tenant(app: &TestApp, label: &str, marker: &str, events: usize, legacy: usize) -> Tenant {
    let external_id = format!("{label}-ext-{marker}");
    let created = app
        .create_organization(&json!({
            "name": format!("Tenant {label} {marker}"),
            "external_id": external_id,
            "metadata": {"owner": format!("{label}-owner-{marker}")},
        }))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let mut tenant = Tenant {
        id: id.clone(),
        external_id: external_id.clone(),
        ..Tenant::default()
    };
    let bodies: Vec<Value> = (0..events)
        .map(|index| {
            let actor_id = format!("{label}-actor-{marker}-{index}");
            let actor_name = format!("{label} Person {marker} {index}");
            tenant.actor_ids.push(actor_id.clone());
            tenant.actor_names.push(actor_name.clone());
            json!({
                "action": if index % 2 == 0 { "shared.did".to_owned() } else { format!("{label}.did") },
                "occurred_at": format!("2026-01-{:02}T00:00:{:02}.000Z", index + 1, if label == "b" { 30 } else { 0 }),
                "actor": {"id": actor_id, "type": "user", "name": actor_name, "metadata": {"tag": format!("{label}-actor-meta-{marker}")}},
                "targets": [{"id": format!("{label}-target-{marker}"), "type": "doc", "name": format!("{label}-target-name-{marker}")}],
                "context": {"location": format!("{label}-location-{marker}"), "user_agent": format!("{label}-agent-{marker}")},
                "metadata": {"secret": format!("{label}-meta-{marker}")},
            })
        })
        .collect();
    tenant.events = app.ingest_batch(&id, bodies).await;
    for index in 0..legacy {
        let actor_name = format!("{label}-legacy-actor-{marker}-{index}");
        tenant.actor_names.push(actor_name.clone());
        let response = app
            .post_json(
                "/events",
                &json!({
                    "group": external_id, "location": format!("{label}-legacy-location-{marker}"),
                    "action": "document.updated", "action_type": "U",
                    "actor_name": actor_name, "actor_id": format!("{label}-legacy-actor-id-{marker}"),
                    "target_name": format!("{label}-legacy-target-{marker}"), "target_id": format!("{label}-legacy-target-id-{marker}"),
                    "occurred_at": format!("2026-02-{:02}T00:00:00Z", index + 1),
                    "metadata": {"legacy": format!("{label}-legacy-meta-{marker}")},
                }),
            )
            .await;
        assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    }
    let listed: Value = app
        .get(&format!("/events?group={external_id}&limit=100&order=asc"))
        .await
        .json()
        .await
        .expect("json");
    for event in listed["data"].as_array().expect("data") {
        tenant.legacy.push(event["id"].as_str().expect("evt id").to_owned());
        tenant
            .events
            .push(event["audit_log_event_id"].as_str().expect("event id").to_owned());
    }
    assert_eq!(tenant.legacy.len(), legacy);

    let created = app
        .post_json(
            "/audit_logs/exports",
            &json!({"organization_id": id, "range_start": "2026-01-01T00:00:00Z", "range_end": "2027-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let created: Value = created.json().await.expect("json");
    let export = wait_for_export(app, created["id"].as_str().expect("id")).await;
    assert_eq!(export["state"], "ready", "{export}");
    tenant.export = export["id"].as_str().expect("id").to_owned();
    tenant.download_query = export["url"]
        .as_str()
        .and_then(|url| url.split_once('?'))
        .expect("a signed link")
        .1
        .to_owned();

    let note = app
        .get(&format!("/audit_logs/log/checkpoint?organization_id={id}"))
        .await
        .text()
        .await
        .expect("note");
    tenant.root = note.lines().nth(2).expect("a root line").to_owned();
    let entries: Value = app
        .get(&format!("/audit_logs/log/entries?organization_id={id}&start=0"))
        .await
        .json()
        .await
        .expect("json");

    let stream: Value = app
        .post_json(
            "/audit_logs/streams",
            &json!({"organization_id": id, "type": "GenericHttps", "state": "inactive",
                    "config": {"url": format!("https://{label}-stream-{marker}.example/hook")}}),
        )
        .await
        .json()
        .await
        .expect("json");
    tenant.stream = stream["id"].as_str().expect("a stream id").to_owned();

    // What only this tenant has.
    let mut secrets = vec![
        tenant.stream.clone(),
        format!("{label}-stream-{marker}"),
        tenant.id.clone(),
        tenant.external_id.clone(),
        marker.to_owned(),
        tenant.export.clone(),
        tenant.root.clone(),
    ];
    secrets.extend(tenant.events.iter().cloned());
    secrets.extend(tenant.legacy.iter().cloned());
    secrets.extend(tenant.actor_ids.iter().cloned());
    secrets.extend(tenant.actor_names.iter().cloned());
    if let Some(signature) = tenant.download_query.split("signature=").nth(1) {
        secrets.push(signature.to_owned());
    }
    for entry in entries["data"].as_array().expect("data") {
        secrets.push(entry["canonical"].as_str().expect("canonical").to_owned());
    }
    tenant.secrets = secrets;
    tenant
}

async fn world() -> World {
    let app = spawn_with_operator().await;
    let (cookie, csrf) = sign_in(&app).await;
    for action in ["shared.did", "a.did", "b.did"] {
        app.create_schema(action, &json!({"targets": [{"type": "doc"}]})).await;
    }
    // Markers differ per run and between the tenants, and neither is a substring of the other.
    let run = ulid_suffix(&app.organization("marker source").await);
    let a = tenant(&app, "a", &format!("amark{run}"), 3, 1).await;
    let b = tenant(&app, "b", &format!("bmark{run}"), 5, 2).await;
    World {
        app,
        cookie,
        csrf,
        a,
        b,
        failures: Vec::new(),
        checked: 0,
    }
}

fn ulid_suffix(id: &str) -> String {
    id.rsplit('_').next().unwrap_or_default().to_ascii_lowercase()
}

/// Every list, proof, entry range, checkpoint and export scoped to A, given B's ids and values
/// in every position, answers with A's objects only: through the API and the dashboard.
#[tokio::test]
async fn requests_scoped_to_one_organization_never_answer_with_another_s_objects() {
    let mut world = world().await;
    let b_before = world.b_state().await;
    let a = world.a.clone();
    let b = world.b.clone();

    for via in [Via::ApiKey, Via::Dashboard] {
        // Listing: A's events only, all of them.
        let listing = world
            .probe(
                via,
                "GET",
                &format!("/audit_logs/events?organization_id={}&limit=100", a.id),
                None,
                200,
            )
            .await;
        let mut listed = ids(&listing);
        listed.sort();
        let mut expected = a.events.clone();
        expected.sort();
        if listed != expected {
            world.fail(format!(
                "{via:?}: A's listing {listed:?} is not A's events {expected:?}"
            ));
        }
        // Filters naming B's values find nothing in A.
        let mut filters: Vec<String> = Vec::new();
        for actor in &b.actor_ids {
            filters.push(format!("actor_ids[]={actor}"));
        }
        for name in &b.actor_names {
            filters.push(format!("actor_names[]={}", name.replace(' ', "%20")));
        }
        filters.push(format!("target_ids[]=b-target-{}", marker_of(&b)));
        filters.push("actions[]=b.did".to_owned());
        filters.push(format!("search=b-meta-{}", marker_of(&b)));
        filters.push(format!("search={}", marker_of(&b)));
        for event in &b.events {
            filters.push(format!("search={event}"));
        }
        for filter in filters {
            let found = world
                .probe(
                    via,
                    "GET",
                    &format!("/audit_logs/events?organization_id={}&limit=100&{filter}", a.id),
                    None,
                    200,
                )
                .await;
            if !ids(&found).is_empty() {
                world.fail(format!("{via:?}: A's listing with {filter} lists {:?}", ids(&found)));
            }
        }
        // Naming B beside A is refused, or ignored when it is not the parameter.
        world
            .probe(
                via,
                "GET",
                &format!("/audit_logs/events?organization_id={}&organization_id={}", a.id, b.id),
                None,
                422,
            )
            .await;
        let listing = world
            .probe(
                via,
                "GET",
                &format!(
                    "/audit_logs/events?organization_id[]={}&organization_id={}&limit=100",
                    b.id, a.id
                ),
                None,
                200,
            )
            .await;
        if ids(&listing).len() != a.events.len() {
            world.fail(format!(
                "{via:?}: A's listing beside organization_id[]=B lists {:?}",
                ids(&listing)
            ));
        }
        // Cursors from B's listings (newer and legacy ids) are refused in A's, in every order.
        for event in b.events.iter().chain(&b.legacy) {
            for order in ["desc", "asc", "normal"] {
                for parameter in ["before", "after"] {
                    let refused = world
                        .probe(
                            via,
                            "GET",
                            &format!(
                                "/audit_logs/events?organization_id={}&order={order}&{parameter}={event}",
                                a.id
                            ),
                            None,
                            422,
                        )
                        .await;
                    if refused["errors"][0]["code"] != "invalid_cursor" {
                        world.fail(format!("{via:?}: B's cursor {parameter}={event} answered {refused}"));
                    }
                }
            }
        }

        // The log: B's events are not in A's log, B's positions are not A's, A's checkpoint is A's.
        for event in &b.events {
            world
                .probe(
                    via,
                    "GET",
                    &format!(
                        "/audit_logs/log/proof/inclusion?organization_id={}&event_id={event}",
                        a.id
                    ),
                    None,
                    404,
                )
                .await;
            world
                .probe(
                    via,
                    "GET",
                    &format!(
                        "/audit_logs/log/proof/inclusion?organization_id={}&event_id={event}&tree_size=1",
                        a.id
                    ),
                    None,
                    404,
                )
                .await;
        }
        let a_size = a.events.len();
        let b_size = b.events.len();
        world
            .probe(
                via,
                "GET",
                &format!(
                    "/audit_logs/log/proof/consistency?organization_id={}&first={}&second={b_size}",
                    a.id,
                    a_size + 1
                ),
                None,
                422,
            )
            .await;
        world
            .probe(
                via,
                "GET",
                &format!(
                    "/audit_logs/log/proof/consistency?organization_id={}&first=1&second={a_size}",
                    a.id
                ),
                None,
                200,
            )
            .await;
        let entries = world
            .probe(
                via,
                "GET",
                &format!("/audit_logs/log/entries?organization_id={}&start=0&end=100", a.id),
                None,
                200,
            )
            .await;
        if entries["tree_size"] != json!(a_size) || ids(&entries).len() != a_size {
            world.fail(format!(
                "{via:?}: A's entries are not A's: {}",
                excerpt(&entries.to_string())
            ));
        }
        let beyond = world
            .probe(
                via,
                "GET",
                &format!(
                    "/audit_logs/log/entries?organization_id={}&start={a_size}&end={b_size}",
                    a.id
                ),
                None,
                200,
            )
            .await;
        if !ids(&beyond).is_empty() {
            world.fail(format!("{via:?}: A's entries past its size list {:?}", ids(&beyond)));
        }
        let (raw, reply) = world
            .send(
                via,
                "GET",
                &format!("/audit_logs/log/checkpoint?organization_id={}", a.id),
                None,
            )
            .await;
        world.check(&raw, &reply, 200);
        let note = reply.text();
        if !note.lines().next().unwrap_or_default().ends_with(&a.id)
            || note.lines().nth(1) != Some(a_size.to_string().as_str())
        {
            world.fail(format!("{via:?}: A's checkpoint is not A's: {note}"));
        }

        // Exports of A never hold B's events, whatever the filter names.
        let range = json!({"organization_id": a.id, "range_start": "2026-01-01T00:00:00Z", "range_end": "2027-01-01T00:00:00Z"});
        for (member, values) in [
            ("actor_ids", json!(b.actor_ids)),
            ("actor_names", json!(b.actor_names)),
            ("actors", json!(b.actor_names)),
            ("actions", json!(["b.did"])),
        ] {
            let mut body = range.clone();
            body[member] = values;
            let refused = world.probe(via, "POST", "/audit_logs/exports", Some(&body), 400).await;
            if refused["code"] != "no_audit_log_events_found" {
                world.fail(format!(
                    "{via:?}: an export of A filtered by B's {member} answered {refused}"
                ));
            }
        }
        for format in ["csv", "ndjson"] {
            let mut body = range.clone();
            body["format"] = json!(format);
            let created = world.probe(via, "POST", "/audit_logs/exports", Some(&body), 201).await;
            let id = created["id"].as_str().unwrap_or_default().to_owned();
            let ready = wait_until_ready(&mut world, via, &id).await;
            let url = ready["url"].as_str().unwrap_or_default().to_owned();
            let path = url
                .split_once("://")
                .and_then(|(_, rest)| rest.split_once('/'))
                .map(|(_, path)| format!("/{path}"));
            let Some(path) = path else {
                world.fail(format!("{via:?}: A's {format} export has no link: {ready}"));
                continue;
            };
            let raw = Raw::new("GET", path);
            let reply = send_raw(&world.app, &raw).await.expect("answered");
            world.check(&raw, &reply, 200);
            let file = reply.text();
            let a_rows = a.events.iter().filter(|event| file.contains(event.as_str())).count();
            if a_rows != a.events.len() {
                world.fail(format!(
                    "{via:?}: A's {format} export holds {a_rows} of A's {} events",
                    a.events.len()
                ));
            }
        }

        // Organization settings: writes to A change A only; B's values are refused or ignored.
        let renamed = world
            .probe(
                via,
                "PUT",
                &format!("/organizations/{}", a.id),
                Some(&json!({"name": "Tenant A renamed", "id": b.id, "organization_id": b.id})),
                200,
            )
            .await;
        if renamed["id"] != json!(a.id) {
            world.fail(format!("{via:?}: updating A answered {renamed}"));
        }
        world
            .probe(
                via,
                "PUT",
                &format!("/organizations/{}", a.id),
                Some(&json!({"external_id": b.external_id})),
                409,
            )
            .await;
        world
            .probe(
                via,
                "PUT",
                &format!("/organizations/{}/audit_logs_retention", a.id),
                Some(&json!({"retention_period": "2_YEARS", "organization_id": b.id})),
                200,
            )
            .await;
        world
            .probe(
                via,
                "PUT",
                &format!("/organizations/{}/audit_logs_legal_hold", a.id),
                Some(&json!({"legal_hold": false, "organization_id": b.id})),
                200,
            )
            .await;
        // An erasure in A of an id B's events hold changes nothing of B (checked after).
        world
            .probe(
                via,
                "POST",
                "/audit_logs/erasures",
                Some(&json!({"organization_id": a.id, "actor_id": "nobody_in_a", "target_id": b.id})),
                201,
            )
            .await;
        // Streams: A's list holds A's stream only; writes to A's stream, naming B, change A's.
        let streams = world
            .probe(
                via,
                "GET",
                &format!("/audit_logs/streams?organization_id={}", a.id),
                None,
                200,
            )
            .await;
        if ids(&streams) != vec![a.stream.clone()] {
            world.fail(format!("{via:?}: A's streams are {:?}", ids(&streams)));
        }
        world
            .probe(
                via,
                "PUT",
                &format!("/audit_logs/streams/{}", a.stream),
                Some(&json!({"state": "inactive", "organization_id": b.id, "id": b.stream})),
                200,
            )
            .await;
        world
            .probe(
                via,
                "POST",
                &format!("/audit_logs/streams/{}/replay", a.stream),
                Some(&json!({"from_log_index": 0, "organization_id": b.id})),
                200,
            )
            .await;
        for path in [
            format!("/organizations/{}", a.id),
            format!("/organizations/{}/audit_logs_retention", a.id),
            format!("/organizations/{}/audit_log_configuration", a.id),
            format!("/organizations/{}/audit_logs_legal_hold", a.id),
            format!("/audit_logs/streams/{}", a.stream),
        ] {
            world.probe(via, "GET", &path, None, 200).await;
        }
    }

    // Signed links: one export's signature never opens another.
    for (export, query) in [(&b.export, &a.download_query), (&a.export, &b.download_query)] {
        let raw = Raw::new("GET", format!("/audit_logs/exports/{export}/download?{query}"));
        let reply = send_raw(&world.app, &raw).await.expect("answered");
        world.check(&raw, &reply, 403);
    }

    // The legacy API: a group's listing holds that group's events only.
    let listing = world
        .probe(
            Via::ApiKey,
            "GET",
            &format!("/events?group={}&limit=100", a.external_id),
            None,
            200,
        )
        .await;
    let mut listed = ids(&listing);
    listed.sort();
    let mut expected = a.legacy.clone();
    expected.sort();
    if listed != expected {
        world.fail(format!("A's group lists {listed:?}, not {expected:?}"));
    }
    for filter in [
        format!("actor_name={}", b.actor_names.last().expect("a legacy actor")),
        format!("search={}", marker_of(&b)),
        format!("target_id=b-legacy-target-id-{}", marker_of(&b)),
    ] {
        let found = world
            .probe(
                Via::ApiKey,
                "GET",
                &format!("/events?group={}&{filter}", a.external_id),
                None,
                200,
            )
            .await;
        if !ids(&found).is_empty() {
            world.fail(format!("A's group with {filter} lists {:?}", ids(&found)));
        }
    }
    for cursor in &b.legacy {
        for parameter in ["before", "after"] {
            // A position in the whole list: allowed, but it moves within A's group only.
            let page = world
                .probe(
                    Via::ApiKey,
                    "GET",
                    &format!("/events?group={}&{parameter}={cursor}", a.external_id),
                    None,
                    200,
                )
                .await;
            if ids(&page).iter().any(|id| !a.legacy.contains(id)) {
                world.fail(format!("A's group paged by B's {cursor} lists {:?}", ids(&page)));
            }
        }
    }

    // Idempotency keys are per organization: B's key on A's request is a new request of A's.
    let batch = |organization: &str, actor: &str| {
        json!({"organization_id": organization, "events": [{
            "action": "shared.did", "occurred_at": "2026-03-01T00:00:00Z",
            "actor": {"id": actor, "type": "user"}, "targets": [], "context": {"location": "192.0.2.1"},
        }]})
    };
    let single = |organization: &str, actor: &str| {
        json!({"organization_id": organization, "event": {
            "action": "shared.did", "occurred_at": "2026-03-02T00:00:00Z",
            "actor": {"id": actor, "type": "user"}, "targets": [], "context": {"location": "192.0.2.1"},
        }})
    };
    let b_batch = world
        .app
        .request(reqwest::Method::POST, "/audit_logs/events/batch")
        .header("idempotency-key", "isolation-key-batch")
        .json(&batch(&b.id, &format!("b-idempotent-{}", marker_of(&b))))
        .send()
        .await
        .expect("sent");
    assert_eq!(b_batch.status(), reqwest::StatusCode::OK);
    let b_batch: Value = b_batch.json().await.expect("json");
    let b_single = world
        .app
        .request(reqwest::Method::POST, "/audit_logs/events")
        .header("idempotency-key", "isolation-key-single")
        .json(&single(&b.id, &format!("b-single-{}", marker_of(&b))))
        .send()
        .await
        .expect("sent");
    assert_eq!(b_single.status(), reqwest::StatusCode::OK);
    world.b.secrets.extend(ids(&b_batch));
    world.b.secrets.push(format!("b-idempotent-{}", marker_of(&b)));
    world.b.secrets.push(format!("b-single-{}", marker_of(&b)));
    let b_after_its_own = world.b_state().await;
    for (path, key, body) in [
        (
            "/audit_logs/events/batch",
            "isolation-key-batch",
            batch(&a.id, "a-idempotent"),
        ),
        ("/audit_logs/events", "isolation-key-single", single(&a.id, "a-single")),
    ] {
        let raw = Raw::new("POST", path)
            .header("authorization", format!("Bearer {}", world.app.api_key))
            .header("idempotency-key", key)
            .json(&body);
        let reply = send_raw(&world.app, &raw).await.expect("answered");
        world.check(&raw, &reply, 200);
        let answer = reply.json().unwrap_or_default();
        if path.ends_with("batch") && (answer["succeeded"] != json!(1) || ids(&answer) == ids(&b_batch)) {
            world.fail(format!("A's batch with B's idempotency key answered {answer}"));
        }
    }
    let a_events = world.app.all_events(&a.id).await;
    for actor in ["a-idempotent", "a-single"] {
        if !a_events.iter().any(|event| event["actor"]["id"] == actor) {
            world.fail(format!(
                "A's request with B's idempotency key stored nothing in A ({actor})"
            ));
        }
    }

    // A legacy event whose group names A by id goes to A.
    let raw = Raw::new("POST", "/events")
        .header("authorization", format!("Bearer {}", world.app.api_key))
        .json(&json!({
            "group": a.id, "location": "192.0.2.8", "action": "document.viewed", "action_type": "R",
            "actor_name": "a-legacy-by-id", "actor_id": "a1", "target_name": "t", "target_id": "t1",
            "occurred_at": "2026-02-10T00:00:00Z",
        }));
    let reply = send_raw(&world.app, &raw).await.expect("answered");
    world.check(&raw, &reply, 201);

    // B is exactly as it was, apart from its own requests above.
    let b_after = world.b_state().await;
    if b_after != b_after_its_own {
        world.fail(format!("B changed: {}", excerpt(&b_after.to_string())));
    }
    if b_before == b_after_its_own {
        world.fail("B's own batch changed nothing in B: the comparison is blind".to_owned());
    }
    world.finish("tenant isolation");
}

/// Routes that take only an object's id are environment-wide (an API key reads every
/// organization, as in WorkOS): an `organization_id` sent along is not a scope, and the answer
/// names the organization the object belongs to, so a client scoping by organization can check.
/// If such scoping is ever added, this test says where.
#[tokio::test]
async fn reads_by_id_are_environment_wide_and_name_their_organization() {
    let mut world = world().await;
    let a = world.a.clone();
    let b = world.b.clone();
    for via in [Via::ApiKey, Via::Dashboard] {
        for event in &b.events {
            let (_, reply) = world
                .send(
                    via,
                    "GET",
                    &format!("/audit_logs/events/{event}?organization_id={}", a.id),
                    None,
                )
                .await;
            let body = reply.json().unwrap_or_default();
            if reply.status != 200 || body["organization_id"] != json!(b.id) {
                world.fail(format!(
                    "{via:?}: B's event {event} read with A's scope answered {} {body}",
                    reply.status
                ));
            }
        }
        let (_, reply) = world
            .send(
                via,
                "GET",
                &format!("/audit_logs/exports/{}?organization_id={}", b.export, a.id),
                None,
            )
            .await;
        if reply.status != 200 || reply.json().unwrap_or_default()["id"] != json!(b.export) {
            world.fail(format!(
                "{via:?}: B's export read with A's scope answered {}",
                reply.status
            ));
        }
    }
    world.finish("reads by id");
}

fn marker_of(tenant: &Tenant) -> &str {
    tenant.external_id.rsplit('-').next().unwrap_or_default()
}

/// Polls an export through the given route until it is ready.
async fn wait_until_ready(world: &mut World, via: Via, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let export = world
            .probe(via, "GET", &format!("/audit_logs/exports/{id}"), None, 200)
            .await;
        if export["state"] != "pending" || std::time::Instant::now() > deadline {
            return export;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A's Admin Portal sessions and viewer tokens: every route they reach, given B's ids and values
/// in every position, answers 404 (or refuses), never with anything of B, and changes nothing
/// of B. Unlike an API key, they do not read B's objects by id either.
#[tokio::test]
async fn portal_sessions_and_viewer_tokens_reach_nothing_of_another_organization() {
    let mut world = world().await;
    let b_before = world.b_state().await;
    let a = world.a.clone();
    let b = world.b.clone();
    let trail = crate::malformed::portal_session(&world.app, &a.id, "audit_logs").await;
    let streams = crate::malformed::portal_session(&world.app, &a.id, "log_streams").await;
    let (_, token) = world
        .send(
            Via::ApiKey,
            "POST",
            "/audit_logs/viewer_tokens",
            Some(&json!({"organization_id": a.id})),
        )
        .await;
    let token = token.json().expect("json")["token"].as_str().expect("token").to_owned();

    // (prefix, credential headers) of each way in that reads the trail.
    let readers: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "/portal/api",
            vec![("cookie", trail.0.clone()), ("x-csrf-token", trail.1.clone())],
        ),
        ("/viewer/api", vec![("authorization", format!("Bearer {token}"))]),
    ];
    let send = |prefix: &str, headers: &[(&str, String)], method: &str, path: &str, body: Option<&Value>| {
        let mut raw = Raw::new(method, format!("{prefix}{path}"));
        if let Some(body) = body {
            raw = raw.json(body);
        }
        for (name, value) in headers {
            raw = raw.header(name, value);
        }
        raw
    };
    for (prefix, headers) in &readers {
        let probe = async |world: &mut World, method: &str, path: &str, body: Option<&Value>, status: u16| {
            let raw = send(prefix, headers, method, path, body);
            let reply = send_raw(&world.app, &raw).await.expect("answered");
            world.check(&raw, &reply, status);
            reply.json().unwrap_or(Value::Null)
        };
        // The listing is A's, without naming A.
        let listing = probe(&mut world, "GET", "/audit_logs/events?limit=100", None, 200).await;
        for id in ids(&listing) {
            if b.events.contains(&id) {
                world.fail(format!("{prefix}: A's listing holds B's {id}"));
            }
        }
        for event in &a.events {
            if !ids(&listing).contains(event) {
                world.fail(format!("{prefix}: A's listing misses A's {event}"));
            }
        }
        // B named anywhere: a 404.
        let mut refused = vec![
            format!("/audit_logs/events?organization_id={}", b.id),
            format!("/audit_logs/events?organization_id={}&organization_id={}", a.id, b.id),
            format!("/audit_logs/events/stream?organization_id={}", b.id),
            format!("/audit_logs/log/checkpoint?organization_id={}", b.id),
            format!("/audit_logs/log/entries?organization_id={}&start=0&end=10", b.id),
            format!(
                "/audit_logs/log/proof/consistency?organization_id={}&first=1&second=2",
                b.id
            ),
            format!("/audit_logs/exports/{}", b.export),
        ];
        for event in b.events.iter().chain(&b.legacy) {
            refused.push(format!("/audit_logs/events/{event}"));
            refused.push(format!("/audit_logs/log/proof/inclusion?event_id={event}"));
            for order in ["desc", "asc"] {
                for parameter in ["before", "after"] {
                    refused.push(format!("/audit_logs/events?order={order}&{parameter}={event}"));
                }
            }
        }
        for path in refused {
            probe(&mut world, "GET", &path, None, 404).await;
        }
        // Filters naming B's values find nothing.
        for filter in b
            .actor_ids
            .iter()
            .map(|actor| format!("actor_ids[]={actor}"))
            .chain([format!("search={}", marker_of(&b)), "actions[]=b.did".to_owned()])
        {
            let found = probe(&mut world, "GET", &format!("/audit_logs/events?{filter}"), None, 200).await;
            if !ids(&found).is_empty() {
                world.fail(format!("{prefix}: A's listing with {filter} lists {:?}", ids(&found)));
            }
        }
        // Exports: B's organization is a 404; A's export holds A's events only.
        let range = json!({"range_start": "2026-01-01T00:00:00Z", "range_end": "2027-01-01T00:00:00Z"});
        let mut theirs = range.clone();
        theirs["organization_id"] = json!(b.id);
        probe(&mut world, "POST", "/audit_logs/exports", Some(&theirs), 404).await;
        let created = probe(&mut world, "POST", "/audit_logs/exports", Some(&range), 201).await;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let ready = loop {
            let export = probe(&mut world, "GET", &format!("/audit_logs/exports/{id}"), None, 200).await;
            if export["state"] != "pending" || std::time::Instant::now() > deadline {
                break export;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let url = ready["url"].as_str().unwrap_or_default();
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(_, path)| format!("/{path}"));
        match path {
            Some(path) => {
                let raw = Raw::new("GET", path);
                let reply = send_raw(&world.app, &raw).await.expect("answered");
                world.check(&raw, &reply, 200);
            }
            None => world.fail(format!("{prefix}: A's export has no link: {ready}")),
        }
        // Streams are out of reach of these two.
        probe(&mut world, "GET", "/audit_logs/streams", None, 403).await;
    }

    // The log_streams session: B's streams are 404s, whatever the method.
    let headers = vec![("cookie", streams.0.clone()), ("x-csrf-token", streams.1.clone())];
    for (method, path, body) in [
        ("GET", format!("/audit_logs/streams/{}", b.stream), None),
        (
            "PUT",
            format!("/audit_logs/streams/{}", b.stream),
            Some(json!({"state": "active"})),
        ),
        ("DELETE", format!("/audit_logs/streams/{}", b.stream), None),
        (
            "POST",
            format!("/audit_logs/streams/{}/replay", b.stream),
            Some(json!({"from_log_index": 0})),
        ),
        ("POST", format!("/audit_logs/streams/{}/test", b.stream), None),
        ("GET", format!("/audit_logs/streams?organization_id={}", b.id), None),
        (
            "POST",
            "/audit_logs/streams".to_owned(),
            Some(json!({"organization_id": b.id, "type": "GenericHttps", "config": {"url": "https://b.example/hook"}})),
        ),
    ] {
        let raw = send("/portal/api", &headers, method, &path, body.as_ref());
        let reply = send_raw(&world.app, &raw).await.expect("answered");
        world.check(&raw, &reply, 404);
    }
    let raw = send("/portal/api", &headers, "GET", "/audit_logs/streams", None);
    let reply = send_raw(&world.app, &raw).await.expect("answered");
    world.check(&raw, &reply, 200);
    if ids(&reply.json().unwrap_or_default()) != vec![a.stream.clone()] {
        world.fail(format!("A's portal lists streams {}", reply.text()));
    }

    if world.b_state().await != b_before {
        world.fail("B changed".to_owned());
    }
    world.finish("portal sessions and viewer tokens");
}
