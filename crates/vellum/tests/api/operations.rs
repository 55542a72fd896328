//! Operations: Prometheus metrics, the live tail, and online backup and restore, tested as an
//! operator and a client meet them (the real binary where a process of its own matters: its
//! metrics are its own, and signals stop it).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp, fresh_secret, json_ok, json_status, run_vellum};

// ---------------------------------------------------------------------------------------------
// Live tail
// ---------------------------------------------------------------------------------------------

/// One server-sent event.
#[derive(Debug)]
struct Message {
    id: Option<u64>,
    event: Option<String>,
    data: String,
}

/// A live tail, read message by message.
struct Tail {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Tail {
    async fn open(client: &reqwest::Client, url: &str, key: &str, last_event_id: Option<u64>) -> Self {
        let mut request = client.get(url).bearer_auth(key);
        if let Some(last) = last_event_id {
            request = request.header("last-event-id", last.to_string());
        }
        let response = request.send().await.expect("the tail answers");
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["cache-control"], "no-cache");
        Self {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next message, or `None` when the stream ended; fails after `within`.
    async fn next(&mut self, within: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.windows(2).position(|window| window == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let text = String::from_utf8(block).expect("UTF-8");
                let mut message = Message {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                for line in text.lines() {
                    if let Some(value) = line.strip_prefix("id: ") {
                        message.id = Some(value.parse().expect("a numeric id"));
                    } else if let Some(value) = line.strip_prefix("event: ") {
                        message.event = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        message.data.push_str(value);
                    }
                }
                return Some(message);
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => panic!("no message within {within:?}"),
                Ok(Ok(Some(chunk))) => self.buffer.extend_from_slice(&chunk),
                Ok(Ok(None) | Err(_)) => return None,
            }
        }
    }

    /// The next event (skipping comments and the opening message).
    async fn next_event(&mut self) -> Value {
        loop {
            let message = self.next(Duration::from_secs(30)).await.expect("the tail goes on");
            if message.data.is_empty() {
                continue;
            }
            assert_eq!(message.event.as_deref(), Some("audit_log_event"));
            let event: Value = serde_json::from_str(&message.data).expect("JSON data");
            assert_eq!(
                Some(event["log_index"].as_u64().unwrap()),
                message.id,
                "the id is the log index"
            );
            return event;
        }
    }

    /// Asserts that no event arrives before one that `trigger` makes arrive: what arrives next
    /// is that event, whose actor is `marker`.
    async fn next_is(&mut self, marker: &str) {
        let event = self.next_event().await;
        assert_eq!(event["actor"]["id"], marker, "{event}");
    }
}

/// A new organization, through the API of the server at `address`, and the `user.signed_in`
/// action's schema (targets of type `team`).
async fn organization_with_schema(client: &reqwest::Client, address: &str, key: &str, name: &str) -> String {
    let created: Value = client
        .post(format!("{address}/organizations"))
        .bearer_auth(key)
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schema = client
        .post(format!("{address}/audit_logs/actions/user.signed_in/schemas"))
        .bearer_auth(key)
        .json(&json!({"targets": [{"type": "team"}]}))
        .send()
        .await
        .unwrap();
    assert!(schema.status().is_success(), "{}", schema.status());
    created["id"].as_str().expect("an organization id").to_owned()
}

/// The JSON answer of a GET with an API key.
async fn get_json(client: &reqwest::Client, url: &str, key: &str) -> Value {
    let response = client.get(url).bearer_auth(key).send().await.unwrap();
    assert!(response.status().is_success(), "GET {url}: {}", response.status());
    response.json().await.unwrap()
}

fn event(actor: &str, action: &str) -> Value {
    json!({
        "action": action,
        "occurred_at": "2026-03-01T00:00:00Z",
        "actor": {"id": actor, "type": "user", "name": format!("Name {actor}")},
        "targets": [{"id": "team_1", "type": "team"}],
        "context": {"location": "192.0.2.1"},
    })
}

/// Sends one event to the server at `address` and expects it stored.
async fn post_event(client: &reqwest::Client, address: &str, key: &str, organization: &str, event: Value) {
    let response = client
        .post(format!("{address}/audit_logs/events"))
        .bearer_auth(key)
        .json(&json!({"organization_id": organization, "event": event}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
}

async fn post_one(app: &TestApp, organization: &str, actor: &str) {
    json_status(
        app.post_json(
            "/audit_logs/events",
            &json!({"organization_id": organization, "event": event(actor, "user.signed_in")}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

async fn tail_app() -> (TestApp, String, String) {
    let app = TestApp::spawn().await;
    for action in ["user.signed_in", "user.signed_out"] {
        app.create_schema(action, &json!({"targets": [{"type": "team"}]})).await;
    }
    let a = app.organization("Tail A").await;
    let b = app.organization("Tail B").await;
    (app, a, b)
}

#[tokio::test]
async fn the_live_tail_sends_new_events_in_order_and_resumes_exactly_after_last_event_id() {
    let (app, a, b) = tail_app().await;
    // Events from before the tail opens are not sent: it starts at the head.
    post_one(&app, &a, "before").await;
    let url = app.url(&format!("/audit_logs/events/stream?organization_id={a}"));
    let mut tail = Tail::open(&app.client, &url, &app.api_key, None).await;
    let opening = tail.next(Duration::from_secs(10)).await.expect("an opening message");
    assert!(opening.data.is_empty() && opening.id.is_none(), "{opening:?}");

    post_one(&app, &a, "a1").await;
    post_one(&app, &b, "b1").await;
    post_one(&app, &a, "a2").await;
    app.ingest_batch(&a, (3..8).map(|n| event(&format!("a{n}"), "user.signed_in")).collect())
        .await;
    let mut received = Vec::new();
    for _ in 0..7 {
        received.push(tail.next_event().await);
    }
    let actors: Vec<&str> = received
        .iter()
        .map(|event| event["actor"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        actors,
        ["a1", "a2", "a3", "a4", "a5", "a6", "a7"],
        "A's events only, in order"
    );
    let indexes: Vec<u64> = received
        .iter()
        .map(|event| event["log_index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, (1..8).collect::<Vec<_>>());
    // Each is the event as the API returns it.
    let first_id = received[0]["id"].as_str().unwrap();
    assert_eq!(
        json_ok(app.get(&format!("/audit_logs/events/{first_id}")).await).await,
        received[0]
    );

    // Disconnect; what is stored meanwhile comes first on reconnecting, exactly once.
    drop(tail);
    for n in 8..12 {
        post_one(&app, &a, &format!("a{n}")).await;
    }
    let mut resumed = Tail::open(&app.client, &url, &app.api_key, Some(7)).await;
    for n in 8..12 {
        resumed.next_is(&format!("a{n}")).await;
    }
    post_one(&app, &a, "a12").await;
    resumed.next_is("a12").await;

    // `last_event_id` in the query does the same (a page that cannot set headers).
    let mut by_query = Tail::open(&app.client, &format!("{url}&last_event_id=10"), &app.api_key, None).await;
    by_query.next_is("a11").await;
    by_query.next_is("a12").await;
}

#[tokio::test]
async fn the_live_tail_takes_the_listings_filters_and_refuses_what_it_cannot_serve() {
    let (app, a, _b) = tail_app().await;
    let base = format!("/audit_logs/events/stream?organization_id={a}");
    let mut signed_out = Tail::open(
        &app.client,
        &app.url(&format!("{base}&actions=user.signed_out")),
        &app.api_key,
        None,
    )
    .await;
    let mut one_actor = Tail::open(
        &app.client,
        &app.url(&format!("{base}&actor_ids[]=ann&search=NAME%20ANN")),
        &app.api_key,
        None,
    )
    .await;
    for (actor, action) in [
        ("bob", "user.signed_in"),
        ("ann", "user.signed_in"),
        ("bob", "user.signed_out"),
        ("ann", "user.signed_out"),
    ] {
        json_status(
            app.post_json(
                "/audit_logs/events",
                &json!({"organization_id": a, "event": event(actor, action)}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
    }
    let first = signed_out.next_event().await;
    let second = signed_out.next_event().await;
    assert_eq!(
        [&first["actor"]["id"], &second["actor"]["id"]],
        [&json!("bob"), &json!("ann")]
    );
    assert!(
        [&first, &second]
            .iter()
            .all(|event| event["action"] == "user.signed_out")
    );
    let first = one_actor.next_event().await;
    let second = one_actor.next_event().await;
    assert_eq!(
        [&first["action"], &second["action"]],
        [&json!("user.signed_in"), &json!("user.signed_out")]
    );
    assert!([&first, &second].iter().all(|event| event["actor"]["id"] == "ann"));

    // Refusals are JSON errors, as everywhere.
    let refused = |path: String, status: StatusCode| {
        let app = &app;
        async move {
            let response = app.get(&path).await;
            json_status(response, status).await
        }
    };
    refused("/audit_logs/events/stream".into(), StatusCode::UNPROCESSABLE_ENTITY).await;
    refused(
        "/audit_logs/events/stream?organization_id=org_01M95X9B8FCSECAA2MJ20419JV".into(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let beyond = refused(format!("{base}&last_event_id=99"), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(beyond.to_string().contains("4 entries"), "{beyond}");
    refused(format!("{base}&last_event_id=-1"), StatusCode::UNPROCESSABLE_ENTITY).await;
    refused(
        format!("{base}&range_start=yesterday"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let unauthenticated = app.client.get(app.url(&base)).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

/// The value of one sample of `/metrics` (0 when absent), read with Prometheus's own parser.
struct Scrape(Vec<Value>);

impl Scrape {
    async fn of(client: &reqwest::Client, url: &str) -> Self {
        let response = client.get(url).send().await.expect("GET /metrics");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4"),
            "{:?}",
            response.headers()["content-type"]
        );
        let text = response.text().await.unwrap();
        Self(parse_exposition(&text))
    }

    fn value(&self, sample: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .flat_map(|family| family["samples"].as_array().unwrap())
            .filter(|found| found["name"] == sample)
            .filter(|found| labels.iter().all(|(name, value)| found["labels"][*name] == *value))
            .map(|found| found["value"].as_f64().unwrap())
            .sum()
    }
}

/// Parses an exposition with the Prometheus project's Python parser (in the test Python
/// environment), failing on anything it cannot read, and checks the conventions Vellum keeps.
fn parse_exposition(text: &str) -> Vec<Value> {
    let python = crate::sdk_python::python_with_sdk("VELLUM_TEST_PYTHON", ".sdk/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/operations/parse_metrics.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the Prometheus parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let families: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let id_prefixes = [
        "org_",
        "audit_log_event_",
        "audit_log_export_",
        "log_stream_",
        "portal_link_",
        "key_",
    ];
    for family in &families {
        let name = family["name"].as_str().unwrap();
        assert!(name.starts_with("vellum_"), "{name}: every metric is Vellum's");
        assert!(
            name.bytes().all(|byte| byte.is_ascii_lowercase() || byte == b'_'),
            "{name}: snake case"
        );
        assert!(!family["help"].as_str().unwrap().is_empty(), "{name} has a HELP line");
        assert_ne!(family["type"], "untyped", "{name} has a TYPE line");
        for sample in family["samples"].as_array().unwrap() {
            if family["type"] == "counter" {
                let sample_name = sample["name"].as_str().unwrap();
                assert!(sample_name.ends_with("_total"), "{sample_name}: counters end in _total");
            }
            for (label, value) in sample["labels"].as_object().unwrap() {
                let value = value.as_str().unwrap();
                assert!(
                    !id_prefixes.iter().any(|prefix| value.starts_with(prefix)),
                    "{name}: label {label}={value} is an object id (unbounded cardinality)"
                );
            }
        }
    }
    families
}

/// A free port on loopback (for a listener whose address must be known before it starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within a minute");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_move_with_ingest_exports_streams_and_purges_in_valid_prometheus_text() {
    let data_dir = tempfile::tempdir().unwrap();
    let secret = fresh_secret();
    let metrics_port = free_port();
    let metrics_address = format!("127.0.0.1:{metrics_port}");
    // On the suite's backend (`ServerProcess` follows it): on PostgreSQL, the figures read from
    // the store come from the database.
    let envs = [("VELLUM_API_KEY", secret.expose())];
    let server = ServerProcess::start(
        data_dir.path(),
        &[
            "--stream-allow-private-destinations",
            "--purge-interval",
            "1",
            "--metrics-listen",
            &metrics_address,
        ],
        &envs,
    );
    let client = reqwest::Client::new();
    let metrics_url = format!("http://{metrics_address}/metrics");
    let api = |method: Method, path: &str| client.request(method, server.url(path)).bearer_auth(secret.expose());
    // With a listener of its own, the API's listener does not serve /metrics.
    assert_eq!(
        client.get(server.url("/metrics")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let before = Scrape::of(&client, &metrics_url).await;
    assert_eq!(
        before.value("vellum_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );

    // Ingest: single, batch and legacy events, and one refused.
    let organization = organization_with_schema(&client, &server.address, secret.expose(), "Metrics").await;
    post_event(
        &client,
        &server.address,
        secret.expose(),
        &organization,
        event("m1", "user.signed_in"),
    )
    .await;
    let batch = api(Method::POST, "/audit_logs/events/batch")
        .json(&json!({"organization_id": organization,
            "events": (0..5).map(|n| event(&format!("b{n}"), "user.signed_in")).collect::<Vec<_>>()}))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), StatusCode::OK);
    let refused = api(Method::POST, "/audit_logs/events")
        .json(&json!({"organization_id": organization, "event": event("m2", "no.schema")}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let legacy = api(Method::POST, "/events")
        .json(
            &json!({"group": organization, "location": "192.0.2.8", "action": "document.viewed",
            "action_type": "R", "actor_name": "Jane", "actor_id": "user_1", "target_name": "doc",
            "target_id": "doc_1", "occurred_at": "2026-03-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), StatusCode::CREATED, "{}", legacy.text().await.unwrap());
    let checkpoint = api(
        Method::GET,
        &format!("/audit_logs/log/checkpoint?organization_id={organization}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(checkpoint.status(), StatusCode::OK);

    // An export, to its end.
    let export = api(Method::POST, "/audit_logs/exports")
        .json(
            &json!({"organization_id": organization, "range_start": "2026-01-01T00:00:00Z",
            "range_end": "2027-01-01T00:00:00Z"}),
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let export_id = export["id"].as_str().expect("an export id").to_owned();
    wait_until("the export is ready", || async {
        let export: Value = api(Method::GET, &format!("/audit_logs/exports/{export_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        export["state"] == "ready"
    })
    .await;

    // A stream delivering to a receiver.
    let receiver =
        crate::streams::Receiver::start_answering_after(crate::streams::Reply::status(200), Duration::ZERO).await;
    let stream = api(Method::POST, "/audit_logs/streams")
        .json(&json!({"organization_id": organization, "type": "GenericHttps",
            "config": {"url": format!("{}/hook", receiver.address)}}))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::CREATED, "{}", stream.text().await.unwrap());
    // A stream starts at the log's head: the next event is its first.
    post_event(
        &client,
        &server.address,
        secret.expose(),
        &organization,
        event("m3", "user.signed_in"),
    )
    .await;
    receiver.wait_for("a delivery", |requests| !requests.is_empty()).await;

    // A purge: a retention of 30 days, and events from long ago; the periodic pass removes them.
    let retention = api(
        Method::PUT,
        &format!("/organizations/{organization}/audit_logs_retention"),
    )
    .json(&json!({"retention_period_in_days": 30}))
    .send()
    .await
    .unwrap();
    assert_eq!(retention.status(), StatusCode::OK);
    let mut old = event("ancient", "user.signed_in");
    old["occurred_at"] = json!("2020-01-01T00:00:00Z");
    post_event(&client, &server.address, secret.expose(), &organization, old).await;

    // Everything shows: counters that moved, and the gauges refreshed from the store (every
    // 15 seconds) seeing the log, the stream and the store's size.
    wait_until("every figure moved", || async {
        let now = Scrape::of(&client, &metrics_url).await;
        now.value("vellum_purge_events_removed_total", &[]) >= 1.0
            && now.value("vellum_log_entries", &[]) >= 8.0
            && now.value("vellum_streams", &[("state", "active")]) == 1.0
            && now.value("vellum_stream_events_delivered_total", &[]) >= 1.0
    })
    .await;
    let after = Scrape::of(&client, &metrics_url).await;
    let moved = |sample: &str, labels: &[(&str, &str)]| {
        let (was, is) = (before.value(sample, labels), after.value(sample, labels));
        assert!(is > was, "{sample}{labels:?} did not move: {was} → {is}");
    };
    moved(
        "vellum_http_requests_total",
        &[("method", "POST"), ("route", "/audit_logs/events"), ("status", "200")],
    );
    moved(
        "vellum_http_requests_total",
        &[("route", "/audit_logs/exports/{id}"), ("status", "200")],
    );
    moved(
        "vellum_http_request_duration_seconds_count",
        &[("method", "POST"), ("route", "/audit_logs/events/batch")],
    );
    assert_eq!(
        after.value("vellum_events_ingested_total", &[("source", "single")]),
        3.0
    );
    assert_eq!(after.value("vellum_events_ingested_total", &[("source", "batch")]), 5.0);
    assert_eq!(
        after.value("vellum_events_ingested_total", &[("source", "legacy")]),
        1.0
    );
    assert_eq!(
        after.value(
            "vellum_events_rejected_total",
            &[("source", "single"), ("reason", "schema")]
        ),
        1.0
    );
    moved("vellum_store_commits_total", &[]);
    moved("vellum_store_commit_batch_size_count", &[]);
    moved("vellum_store_commit_duration_seconds_bucket", &[("le", "+Inf")]);
    moved("vellum_log_checkpoints_signed_total", &[]);
    moved("vellum_logs", &[]);
    assert_eq!(after.value("vellum_exports_created_total", &[]), 1.0);
    assert_eq!(
        after.value("vellum_exports_finished_total", &[("outcome", "ready")]),
        1.0
    );
    moved("vellum_export_duration_seconds_count", &[]);
    moved("vellum_stream_deliveries_total", &[("outcome", "delivered")]);
    moved("vellum_purge_passes_total", &[]);
    moved("vellum_store_size_bytes", &[]);
    assert!(after.value("vellum_store_size_bytes", &[]) > 100_000.0);
    // The stream caught up: no lag.
    wait_until("the stream caught up", || async {
        Scrape::of(&client, &metrics_url)
            .await
            .value("vellum_stream_lag_events", &[])
            == 0.0
    })
    .await;
    // No series names an organization.
    let rendered = client.get(&metrics_url).send().await.unwrap().text().await.unwrap();
    assert!(!rendered.contains(&organization), "an organization id is in /metrics");
}

#[tokio::test]
async fn the_api_listener_serves_metrics_unless_they_have_their_own() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let scrape = parse_exposition(&response.text().await.unwrap());
    assert!(
        scrape.iter().any(|family| family["name"] == "vellum_build_info"),
        "{scrape:?}"
    );
    // An address that cannot be bound stops the start with a clear error.
    let data_dir = tempfile::tempdir().unwrap();
    let (ok, output) = run_vellum(
        &[
            "serve",
            "--data-dir",
            data_dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "not-an-address",
        ],
        &[],
    );
    assert!(!ok && output.contains("invalid metrics listen address"), "{output}");
}

#[tokio::test]
async fn a_tail_that_stops_reading_is_dropped_and_shutdown_ends_every_tail() {
    let data_dir = tempfile::tempdir().unwrap();
    let secret = fresh_secret();
    let mut server = ServerProcess::start(data_dir.path(), &[], &[("VELLUM_API_KEY", secret.expose())]);
    let client = reqwest::Client::new();
    let api = |method: Method, path: &str| client.request(method, server.url(path)).bearer_auth(secret.expose());
    let organization = organization_with_schema(&client, &server.address, secret.expose(), "Slow").await;

    // A client that asks for the tail and never reads.
    let host = server.address.trim_start_matches("http://").to_owned();
    // Its receive buffer is small and fixed (the kernel would otherwise grow it to tens of MB).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let mut slow = socket.connect(host.parse().unwrap()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut slow,
        format!(
            "GET /audit_logs/events/stream?organization_id={organization} HTTP/1.1\r\nHost: {host}\r\n\
             Authorization: Bearer {}\r\n\r\n",
            secret.expose()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let metrics_url = server.url("/metrics");
    wait_until("the tail is open", || async {
        Scrape::of(&client, &metrics_url)
            .await
            .value("vellum_live_tail_subscribers", &[])
            == 1.0
    })
    .await;
    // Far more than the socket's buffers and the tail's hold: ~2 KB events, 24 MB in all.
    let filler = "x".repeat(500);
    for batch in 0..12 {
        let events: Vec<Value> = (0..1000)
            .map(|n| {
                let mut event = event(&format!("u{batch}_{n}"), "user.signed_in");
                event["metadata"] = json!({"a": filler, "b": filler, "c": filler, "d": filler});
                event
            })
            .collect();
        let response = api(Method::POST, "/audit_logs/events/batch")
            .json(&json!({"organization_id": organization, "events": events}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.json::<Value>().await.unwrap()["succeeded"], 1000);
    }
    wait_until("the slow client is dropped", || async {
        let scrape = Scrape::of(&client, &metrics_url).await;
        scrape.value("vellum_live_tail_disconnected_total", &[("reason", "slow")]) == 1.0
            && scrape.value("vellum_live_tail_subscribers", &[]) == 0.0
    })
    .await;
    // What it was sent is a prefix of the log, in order; then the connection ends.
    let mut received = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(60),
        tokio::io::AsyncReadExt::read_to_end(&mut slow, &mut received),
    )
    .await
    .expect("the server closed the connection")
    .unwrap();
    let text = String::from_utf8_lossy(&received);
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|line| line.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
        .collect();
    assert!(!ids.is_empty());
    assert_eq!(
        ids,
        (0..ids.len() as u64).collect::<Vec<_>>(),
        "a prefix of the log, in order"
    );
    assert!(ids.len() < 12_000, "it did not get everything: it was dropped");

    // Shutdown ends a tail at once rather than waiting out the grace period.
    let mut open = Tail::open(
        &client,
        &server.url(&format!("/audit_logs/events/stream?organization_id={organization}")),
        secret.expose(),
        Some(11_990),
    )
    .await;
    for _ in 0..9 {
        open.next_event().await;
    }
    let started = std::time::Instant::now();
    server.signal("TERM");
    while open.next(Duration::from_secs(20)).await.is_some() {}
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the tail held shutdown for {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Backup and restore
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_backup_taken_while_eight_clients_ingest_restores_verifies_and_holds_every_acknowledged_event() {
    let data_dir = tempfile::tempdir().unwrap();
    let secret = fresh_secret();
    // `vellum backup` is the embedded store's, whichever backend the suite runs on.
    let embedded = [("VELLUM_API_KEY", secret.expose()), ("VELLUM_DATABASE_URL", "")];
    let server = ServerProcess::start(data_dir.path(), &[], &embedded);
    let client = reqwest::Client::new();
    let key = secret.expose().to_owned();
    let organization = organization_with_schema(&client, &server.address, &key, "Backed up").await;
    // A checkpoint signed (and remembered by a verifier) before the backup.
    let state = data_dir.path().join("verify-state.json");
    let verify_log = |address: String, state: std::path::PathBuf| {
        let (key, organization) = (key.clone(), organization.clone());
        tokio::task::spawn_blocking(move || {
            run_vellum(
                &[
                    "verify",
                    "log",
                    "--url",
                    &address,
                    "--api-key",
                    &key,
                    "--organization",
                    &organization,
                    "--state",
                    state.to_str().unwrap(),
                ],
                &[],
            )
        })
    };

    // Eight clients ingest without pause; each remembers what was acknowledged, and when.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for worker in 0..8 {
        let (client, url, key, organization, stop) = (
            client.clone(),
            server.url("/audit_logs/events"),
            key.clone(),
            organization.clone(),
            std::sync::Arc::clone(&stop),
        );
        clients.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let response = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"organization_id": organization,
                        "event": event(&format!("w{worker}_{n}"), "user.signed_in")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                acknowledged.push((format!("w{worker}_{n}"), std::time::Instant::now()));
                n += 1;
            }
            acknowledged
        }));
    }
    // Let them get going, and pin a checkpoint in the middle of it.
    wait_until("clients ingest", || async {
        let page: Value = client
            .get(server.url(&format!("/audit_logs/events?organization_id={organization}&limit=100")))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["data"].as_array().unwrap().len() >= 100
    })
    .await;
    let (ok, output) = verify_log(server.address.clone(), state.clone()).await.unwrap();
    assert!(ok, "{output}");

    let backup_file = tempfile::tempdir().unwrap();
    let backup_path = backup_file.path().join("vellum.backup");
    let began = std::time::Instant::now();
    let (ok, output) = {
        let (data, path) = (data_dir.path().to_owned(), backup_path.clone());
        tokio::task::spawn_blocking(move || {
            run_vellum(
                &[
                    "backup",
                    "--data-dir",
                    data.to_str().unwrap(),
                    "--output",
                    path.to_str().unwrap(),
                ],
                &[],
            )
        })
        .await
        .unwrap()
    };
    assert!(ok, "{output}");
    assert!(
        output.contains("log-signing-key, export-link-key, stream-secrets-key"),
        "{output}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut before_backup = Vec::new();
    let mut total = 0;
    for client in clients {
        let acknowledged = client.await.unwrap();
        total += acknowledged.len();
        before_backup.extend(
            acknowledged
                .into_iter()
                .filter(|(_, at)| *at < began)
                .map(|(actor, _)| actor),
        );
    }
    assert!(
        before_backup.len() >= 100 && total > before_backup.len(),
        "clients ingested throughout"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the backup holds keys: private");
    }

    // Restored elsewhere: verify store passes, with the original's public key.
    let restored = tempfile::tempdir().unwrap();
    let restored_dir = restored.path().join("data");
    let (ok, output) = run_vellum(
        &[
            "restore",
            backup_path.to_str().unwrap(),
            "--data-dir",
            restored_dir.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{output}");
    let public_key = get_json(&client, &server.url("/audit_logs/log/public_key"), &key).await;
    let (ok, output) = run_vellum(
        &[
            "verify",
            "store",
            "--data-dir",
            restored_dir.to_str().unwrap(),
            "--public-key",
            public_key["verifier_key"].as_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{output}");
    drop(server);

    // Served again: every event acknowledged before the backup began is there, and the
    // checkpoint remembered before it is consistent with the restored log.
    let restored_server = ServerProcess::start(&restored_dir, &[], &embedded);
    let events = crate::helpers::all_events_at(&client, &key, &restored_server.address, &organization).await;
    let actors: std::collections::HashSet<&str> = events
        .iter()
        .map(|event| event["actor"]["id"].as_str().unwrap())
        .collect();
    let missing: Vec<&String> = before_backup
        .iter()
        .filter(|actor| !actors.contains(actor.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup, missing from it: {missing:?}"
    );
    let (ok, output) = verify_log(restored_server.address.clone(), state).await.unwrap();
    assert!(ok, "{output}");
    let restored_key = get_json(&client, &restored_server.url("/audit_logs/log/public_key"), &key).await;
    assert_eq!(restored_key, public_key, "the signing key came with the backup");
}

#[test]
fn backup_and_restore_refuse_what_would_lose_or_mix_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    // PostgreSQL has its own backups.
    let (ok, output) = run_vellum(
        &["backup", "--output", &path("b0")],
        &[("VELLUM_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none".to_owned())],
    );
    assert!(
        !ok && output.contains("back PostgreSQL up with its own tools"),
        "{output}"
    );
    // No store to back up.
    let (ok, output) = run_vellum(&["backup", "--data-dir", &path("none"), "--output", &path("b1")], &[]);
    assert!(!ok && output.contains("holds no store"), "{output}");
    // A store: its first backup works, a second onto the same file is refused.
    let (ok, output) = run_vellum(&["migrate", "--data-dir", &path("data")], &[]);
    assert!(ok, "{output}");
    let (ok, output) = run_vellum(&["backup", "--data-dir", &path("data"), "--output", &path("b1")], &[]);
    assert!(ok, "{output}");
    let (ok, output) = run_vellum(&["backup", "--data-dir", &path("data"), "--output", &path("b1")], &[]);
    assert!(!ok && output.contains("never overwrites"), "{output}");
    // Restoring: never over a store, never from something that is not a backup.
    let (ok, output) = run_vellum(&["restore", &path("b1"), "--data-dir", &path("data")], &[]);
    assert!(!ok && output.contains("not empty"), "{output}");
    std::fs::write(dir.path().join("junk"), b"not a database").unwrap();
    let (ok, output) = run_vellum(&["restore", &path("junk"), "--data-dir", &path("r1")], &[]);
    assert!(!ok && output.contains("not a Vellum backup"), "{output}");
    assert!(!dir.path().join("r1").exists(), "a refused restore creates nothing");
    // A plain store file is not a backup either.
    let (ok, output) = run_vellum(
        &["restore", &path("data/vellum.sqlite3"), "--data-dir", &path("r2")],
        &[],
    );
    assert!(!ok && output.contains("not a Vellum backup"), "{output}");
    // A damaged backup is caught before anything is written.
    let mut damaged = std::fs::read(dir.path().join("b1")).unwrap();
    let middle = damaged.len() / 2;
    for byte in &mut damaged[middle..middle + 4096] {
        *byte ^= 0x5a;
    }
    std::fs::write(dir.path().join("damaged"), &damaged).unwrap();
    let (ok, output) = run_vellum(&["restore", &path("damaged"), "--data-dir", &path("r3")], &[]);
    assert!(!ok, "{output}");
    assert!(!dir.path().join("r3").join("vellum.sqlite3").exists(), "{output}");
    // And the good one restores into a new directory.
    let (ok, output) = run_vellum(&["restore", &path("b1"), "--data-dir", &path("r4")], &[]);
    assert!(ok, "{output}");
    let names: BTreeMap<String, ()> = std::fs::read_dir(dir.path().join("r4"))
        .unwrap()
        .map(|entry| (entry.unwrap().file_name().to_string_lossy().into_owned(), ()))
        .collect();
    assert!(names.contains_key("vellum.sqlite3"), "{names:?}");
}

// ---------------------------------------------------------------------------------------------
// Behind a proxy
// ---------------------------------------------------------------------------------------------

/// Five failed sign-ins of one email from one client address, as the server sees it.
async fn fail_five_times(client: &reqwest::Client, address: &str, forwarded_for: &str) {
    for _ in 0..5 {
        let status = client
            .post(format!("{address}/dashboard/api/session"))
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({"email": "ops@example.com", "password": "wrong password!"}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

async fn sign_in_from(client: &reqwest::Client, address: &str, forwarded_for: &str) -> StatusCode {
    client
        .post(format!("{address}/dashboard/api/session"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"email": "ops@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_sign_in_throttle_counts_each_forwarded_client_apart() {
    let admin = [
        ("VELLUM_ADMIN_EMAIL", "ops@example.com"),
        ("VELLUM_ADMIN_PASSWORD", "correct horse battery"),
    ];
    let client = reqwest::Client::new();

    // The proxy (loopback here) is trusted: the client it names is the one throttled.
    let data_dir = tempfile::tempdir().unwrap();
    let proxied = ServerProcess::start(data_dir.path(), &["--trusted-proxies", "127.0.0.0/8"], &admin);
    fail_five_times(&client, &proxied.address, "203.0.113.7").await;
    assert_eq!(
        sign_in_from(&client, &proxied.address, "203.0.113.7").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        sign_in_from(&client, &proxied.address, "198.51.100.4").await,
        StatusCode::OK,
        "another client behind the same proxy is not locked out"
    );
    // A client cannot pick its own address: what it writes on the left is not believed.
    assert_eq!(
        sign_in_from(&client, &proxied.address, "198.51.100.4, 203.0.113.7").await,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Trusting nobody (the default), the header is ignored: the connection is the client.
    let data_dir = tempfile::tempdir().unwrap();
    let direct = ServerProcess::start(data_dir.path(), &[], &admin);
    fail_five_times(&client, &direct.address, "203.0.113.7").await;
    assert_eq!(
        sign_in_from(&client, &direct.address, "198.51.100.4").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let (ok, output) = run_vellum(
        &[
            "serve",
            "--data-dir",
            data_dir.path().to_str().unwrap(),
            "--trusted-proxies",
            "10.0.0.0/33",
        ],
        &[],
    );
    assert!(!ok && output.contains("invalid trusted proxies"), "{output}");
}

// ---------------------------------------------------------------------------------------------
// Traces
// ---------------------------------------------------------------------------------------------

/// The spans of OTLP/HTTP JSON export requests: (resource's service name, span).
fn exported_spans(requests: &[crate::streams::Received]) -> Vec<(String, Value)> {
    let mut spans = Vec::new();
    for request in requests.iter().filter(|request| request.path == "/v1/traces") {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            continue;
        };
        for resource in body["resourceSpans"].as_array().into_iter().flatten() {
            let service = attribute(&resource["resource"], "service.name").unwrap_or_default();
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    spans.push((service.clone(), span.clone()));
                }
            }
        }
    }
    spans
}

fn attribute(holder: &Value, key: &str) -> Option<String> {
    holder["attributes"]
        .as_array()?
        .iter()
        .find(|attribute| attribute["key"] == key)
        .and_then(|attribute| attribute["value"]["stringValue"].as_str())
        .map(str::to_owned)
}

#[tokio::test]
async fn spans_reach_an_opentelemetry_collector_over_otlp_http() {
    let collector = crate::streams::Receiver::start_answering_after(
        crate::streams::Reply::status(200)
            .with_header("content-type", "application/json")
            .with_body("{}"),
        Duration::ZERO,
    )
    .await;
    let data_dir = tempfile::tempdir().unwrap();
    let secret = fresh_secret();
    let server = ServerProcess::start(
        data_dir.path(),
        &[],
        &[
            ("VELLUM_API_KEY", secret.expose()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.address),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "vellum-under-test"),
        ],
    );
    let client = reqwest::Client::new();
    let organization = organization_with_schema(&client, &server.address, secret.expose(), "Traced").await;
    post_event(
        &client,
        &server.address,
        secret.expose(),
        &organization,
        event("traced", "user.signed_in"),
    )
    .await;

    // The request's span, the ingest span inside it, and the group commit's span all arrive.
    let requests = collector
        .wait_for("the ingest's spans", |requests| {
            let spans = exported_spans(requests);
            ["request", "ingest", "commit"]
                .iter()
                .all(|name| spans.iter().any(|(_, span)| span["name"] == *name))
        })
        .await;
    let spans = exported_spans(&requests);
    assert!(spans.iter().all(|(service, _)| service == "vellum-under-test"));
    let request = spans
        .iter()
        .map(|(_, span)| span)
        .find(|span| span["name"] == "request" && attribute(span, "route").as_deref() == Some("/audit_logs/events"))
        .expect("the ingest request's span");
    assert_eq!(
        attribute(request, "organization").as_deref(),
        Some(organization.as_str())
    );
    assert_eq!(attribute(request, "method").as_deref(), Some("POST"));
    let ingest = spans
        .iter()
        .map(|(_, span)| span)
        .find(|span| span["name"] == "ingest" && span["traceId"] == request["traceId"])
        .expect("an ingest span in the request's trace");
    assert_eq!(
        ingest["parentSpanId"], request["spanId"],
        "ingest runs inside the request"
    );
    // Nothing secret travels with them.
    let everything: String = requests
        .iter()
        .map(|request| String::from_utf8_lossy(&request.body).into_owned())
        .collect();
    assert!(!everything.contains(secret.expose()), "the API key was exported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vellum_events_tail_prints_each_new_matching_event_as_a_json_line() {
    let (app, a, _b) = tail_app().await;
    post_one(&app, &a, "first").await;
    let mut child = Command::new(crate::helpers::vellum_binary())
        .args(["events", "tail", "--url", &app.address, "--organization", &a])
        .args(["--action", "user.signed_in", "--after", "0"])
        .env("VELLUM_API_KEY", &app.api_key)
        .env_remove("VELLUM_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("vellum runs");
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    post_one(&app, &a, "second").await;
    json_status(
        app.post_json(
            "/audit_logs/events",
            &json!({"organization_id": a, "event": event("left_out", "user.signed_out")}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    post_one(&app, &a, "third").await;
    let mut actors = Vec::new();
    for _ in 0..2 {
        let line =
            tokio::task::block_in_place(|| received.recv_timeout(Duration::from_secs(30))).expect("a line within 30 s");
        let event: Value = serde_json::from_str(&line).expect("each line is one JSON event");
        actors.push(event["actor"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        actors,
        ["second", "third"],
        "after position 0, the matching ones, in order"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
