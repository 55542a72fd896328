//! Log streams, black-box: the real server delivers to receivers running in this process that
//! speak each destination's protocol (Datadog's logs intake, Splunk's HEC, a generic endpoint
//! checking Standard Webhooks signatures), scripted to fail, throttle and refuse.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::helpers::{TestApp, json_ok, json_status};

/// One request a receiver took.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
    /// When the answer was sent.
    pub answered: Instant,
}

/// A scripted answer.
#[derive(Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn with_body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }
}

#[derive(Default)]
struct Log {
    requests: Vec<Received>,
    script: VecDeque<Reply>,
}

/// An HTTP receiver on loopback that records every request and answers from its script, then
/// with its default reply.
pub struct Receiver {
    pub address: String,
    log: Arc<Mutex<Log>>,
    arrived: Arc<Notify>,
}

impl Receiver {
    async fn start(default: Reply) -> Self {
        Self::start_answering_after(default, Duration::ZERO).await
    }

    /// A receiver that takes `delay` over each answer (so that deliveries in parallel would
    /// overlap).
    pub async fn start_answering_after(default: Reply, delay: Duration) -> Self {
        let log = Arc::new(Mutex::new(Log::default()));
        let arrived = Arc::new(Notify::new());
        let (handler_log, handler_arrived) = (Arc::clone(&log), Arc::clone(&arrived));
        let handler = move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let (log, arrived, default) = (Arc::clone(&handler_log), Arc::clone(&handler_arrived), default.clone());
            async move {
                let at = Instant::now();
                tokio::time::sleep(delay).await;
                let reply = {
                    let mut log = log.lock().unwrap();
                    log.requests.push(Received {
                        path: uri.path().to_owned(),
                        headers,
                        body,
                        at,
                        answered: Instant::now(),
                    });
                    log.script.pop_front().unwrap_or(default)
                };
                arrived.notify_waiters();
                let mut response = axum::response::Response::builder().status(reply.status);
                for (name, value) in reply.headers {
                    response = response.header(name, value);
                }
                response.body(axum::body::Body::from(reply.body)).unwrap()
            }
        };
        let router = axum::Router::new().fallback(axum::routing::post(handler));
        let address = serve_on_loopback(router).await;
        Self { address, log, arrived }
    }

    fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.log.lock().unwrap().script.extend(replies);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().requests.clone()
    }

    /// Waits (at most a minute) until the requests received satisfy `done`.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let arrived = self.arrived.notified();
            let requests = self.requests();
            if done(&requests) {
                return requests;
            }
            assert!(
                tokio::time::timeout_at(deadline, arrived).await.is_ok(),
                "{what}: never happened ({} requests)",
                requests.len()
            );
        }
    }
}

/// Serves `router` on an ephemeral loopback port for the rest of the test; its base URL.
async fn serve_on_loopback(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    address
}

/// The events of a generic HTTPS delivery (a JSON array, or NDJSON).
pub fn generic_events(received: &Received) -> Vec<Value> {
    match serde_json::from_slice::<Value>(&received.body) {
        Ok(Value::Array(events)) => events,
        _ => serde_json::Deserializer::from_slice(&received.body)
            .into_iter::<Value>()
            .map(Result::unwrap)
            .collect(),
    }
}

pub fn log_indexes(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|event| event["log_index"].as_u64().unwrap())
        .collect()
}

async fn app_allowing_loopback() -> TestApp {
    TestApp::spawn_with(|settings| settings.stream_allow_private_destinations = true).await
}

async fn organization_with_schema(app: &TestApp, name: &str) -> String {
    let organization = app.organization(name).await;
    app.create_schema("user.signed_in", &json!({"targets": [{"type": "team"}]}))
        .await;
    organization
}

pub fn event(index: usize) -> Value {
    json!({
        "action": "user.signed_in",
        "occurred_at": format!("2026-01-01T00:00:{:02}.{:03}Z", index / 1000 % 60, index % 1000),
        "actor": {"id": format!("user_{index}"), "type": "user", "name": format!("User {index}")},
        "targets": [{"id": "team_1", "type": "team"}],
        "context": {"location": "192.0.2.9", "user_agent": "test"},
        "metadata": {"index": index.to_string()},
    })
}

async fn ingest(app: &TestApp, organization: &str, range: std::ops::Range<usize>) {
    let events: Vec<Value> = range.map(event).collect();
    for chunk in events.chunks(500) {
        app.ingest_batch(organization, chunk.to_vec()).await;
    }
}

async fn create_stream(app: &TestApp, body: &Value) -> Value {
    json_status(app.post_json("/audit_logs/streams", body).await, StatusCode::CREATED).await
}

async fn stream(app: &TestApp, id: &str) -> Value {
    json_ok(app.get(&format!("/audit_logs/streams/{id}")).await).await
}

/// Polls the stream (at most a minute) until `done` holds of it.
async fn stream_until(app: &TestApp, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let current = stream(app, id).await;
        if done(&current) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never happened; the stream is {current}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks a Standard Webhooks signature independently of Vellum's code.
fn signed_by(received: &Received, secret: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let header = |name: &str| received.headers[name].to_str().unwrap().to_owned();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", header("webhook-id"), header("webhook-timestamp")).as_bytes());
    mac.update(&received.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    header("webhook-signature")
        .split(' ')
        .any(|signature| signature == expected)
}

#[tokio::test]
async fn a_generic_stream_delivers_every_event_in_order_as_the_api_returns_it_signed() {
    let receiver = Receiver::start(Reply::status(200)).await;
    let app = app_allowing_loopback().await;
    let organization = organization_with_schema(&app, "Streamed").await;
    let other = organization_with_schema(&app, "Quiet").await;
    // Events before the stream are not sent (a replay sends them).
    ingest(&app, &organization, 0..5).await;
    let created = create_stream(
        &app,
        &json!({
            "organization_id": organization,
            "type": "GenericHttps",
            "config": {"url": format!("{}/hook", receiver.address), "headers": {"X-Team": "team-secret-value"}},
        }),
    )
    .await;
    let secret = created["signing_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    assert_eq!(created["object"], "audit_log_stream");
    assert_eq!(created["state"], "active");
    assert_eq!(created["next_log_index"], 5);
    assert_eq!(
        created["config"],
        json!({"url": format!("{}/hook", receiver.address), "format": "json", "header_names": ["X-Team"]})
    );
    let id = created["id"].as_str().unwrap().to_owned();
    // The secret is shown once; the header's value never.
    let shown = stream(&app, &id).await;
    assert!(shown.get("signing_secret").is_none(), "{shown}");
    assert!(!shown.to_string().contains("team-secret-value"));

    ingest(&app, &other, 0..3).await;
    ingest(&app, &organization, 5..1_205).await;
    let requests = receiver
        .wait_for("1,200 events delivered", |requests| {
            requests
                .iter()
                .map(|request| generic_events(request).len())
                .sum::<usize>()
                >= 1_200
        })
        .await;
    let delivered: Vec<Value> = requests.iter().flat_map(generic_events).collect();
    assert_eq!(log_indexes(&delivered), (5..1_205).collect::<Vec<u64>>());
    assert!(
        delivered
            .iter()
            .all(|event| event["organization_id"] == organization.as_str())
    );
    for request in &requests {
        assert!(
            signed_by(request, &secret),
            "a request not signed with the stream's secret"
        );
        assert_eq!(request.headers["x-team"], "team-secret-value");
        assert_eq!(request.headers["content-type"], "application/json");
        assert!(generic_events(request).len() <= 500);
    }
    // Exactly as the API returns it.
    let sample = &delivered[17];
    let from_api = json_ok(
        app.get(&format!("/audit_logs/events/{}", sample["id"].as_str().unwrap()))
            .await,
    )
    .await;
    assert_eq!(sample, &from_api);

    let synced = stream_until(&app, &id, "the cursor reached the end", |stream| {
        stream["next_log_index"] == 1_205
    })
    .await;
    assert!(synced["last_synced_at"].is_string(), "{synced}");
    assert_eq!(synced["lag"], json!({"events": 0, "seconds": 0.0}));
    assert_eq!(synced["counters"]["events_delivered"], 1_200);
    assert_eq!(synced["counters"]["failed_attempts"], 0);
    assert!(synced["counters"]["deliveries"].as_u64().unwrap() >= 3);
    let configuration = json_ok(
        app.get(&format!("/organizations/{organization}/audit_log_configuration"))
            .await,
    )
    .await;
    assert_eq!(configuration["log_stream"]["id"], id.as_str());
    assert_eq!(configuration["log_stream"]["type"], "GenericHttps");
    assert_eq!(configuration["log_stream"]["state"], "active");
    assert!(configuration["log_stream"]["last_synced_at"].is_string());
    let quiet = json_ok(
        app.get(&format!("/organizations/{other}/audit_log_configuration"))
            .await,
    )
    .await;
    assert!(quiet.get("log_stream").is_none(), "{quiet}");

    // Rotation: the new secret signs, the old one still does beside it.
    let rotated = json_ok(
        app.send_json(
            Method::PUT,
            &format!("/audit_logs/streams/{id}"),
            &json!({"rotate_signing_secret": true}),
        )
        .await,
    )
    .await;
    let new_secret = rotated["signing_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    // A delivery under way when the rotation lands may still sign with the old secret alone;
    // the next one signs with both.
    let mut next_event = 1_205;
    let rotated_request = loop {
        let before = receiver.requests().len();
        ingest(&app, &organization, next_event..next_event + 1).await;
        next_event += 1;
        let after = receiver
            .wait_for("the event after rotation", |requests| requests.len() > before)
            .await;
        if let Some(request) = after[before..].iter().find(|request| signed_by(request, &new_secret)) {
            break request.clone();
        }
        assert!(next_event < 1_210, "no request was signed with the new secret");
    };
    assert!(
        signed_by(&rotated_request, &secret),
        "the old secret signs beside the new one"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_failing_destination_is_retried_after_retry_after_and_the_state_goes_error_then_active() {
    let receiver = Receiver::start(Reply::status(200)).await;
    receiver.script([
        Reply::status(503)
            .with_header("retry-after", "2")
            .with_body("down for maintenance"),
        Reply::status(500),
    ]);
    let app = app_allowing_loopback().await;
    let organization = organization_with_schema(&app, "Flaky").await;
    let created = create_stream(
        &app,
        &json!({"organization_id": organization, "type": "GenericHttps",
                "config": {"url": format!("{}/hook", receiver.address), "format": "ndjson"}}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    ingest(&app, &organization, 0..20).await;
    let errored = stream_until(&app, &id, "the stream went to error", |stream| {
        stream["state"] == "error"
    })
    .await;
    assert!(errored["error"].as_str().unwrap().contains("503"), "{errored}");
    assert!(errored["next_attempt_at"].is_string(), "{errored}");
    let requests = receiver
        .wait_for("three attempts", |requests| requests.len() >= 3)
        .await;
    // Retry-After: 2 was honoured before the second attempt.
    assert!(
        requests[1].at - requests[0].at >= Duration::from_millis(1_900),
        "retried after {:?}",
        requests[1].at - requests[0].at
    );
    let recovered = stream_until(&app, &id, "the stream recovered", |stream| {
        stream["state"] == "active" && stream["next_log_index"] == 20
    })
    .await;
    assert_eq!(recovered["error"], Value::Null);
    assert_eq!(
        recovered["counters"],
        json!({"deliveries": 1, "events_delivered": 20, "failed_attempts": 2})
    );
    // The same batch each time, in NDJSON; then nothing was lost or reordered.
    let last = receiver.requests();
    assert_eq!(last[0].body, last[2].body);
    assert_eq!(last[0].headers["webhook-id"], last[2].headers["webhook-id"]);
    assert_eq!(last[2].headers["content-type"], "application/x-ndjson");
    assert_eq!(log_indexes(&generic_events(&last[2])), (0..20).collect::<Vec<u64>>());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn refused_credentials_make_a_stream_invalid_until_it_is_updated() {
    let receiver = Receiver::start(Reply::status(200)).await;
    receiver.script([Reply::status(401).with_body("bad key")]);
    let app = app_allowing_loopback().await;
    let organization = organization_with_schema(&app, "Refused").await;
    let created = create_stream(
        &app,
        &json!({"organization_id": organization, "type": "GenericHttps",
                "config": {"url": format!("{}/hook", receiver.address)}}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    ingest(&app, &organization, 0..3).await;
    let invalid = stream_until(&app, &id, "the stream became invalid", |stream| {
        stream["state"] == "invalid"
    })
    .await;
    assert!(invalid["error"].as_str().unwrap().contains("401"), "{invalid}");
    assert_eq!(invalid["next_log_index"], 0);
    assert_eq!(invalid["lag"]["events"], 3);
    assert!(invalid["lag"]["seconds"].as_f64().unwrap() >= 0.0);
    // More events do not wake an invalid stream; an update does, and it delivers from where it
    // stopped.
    ingest(&app, &organization, 3..6).await;
    let updated = json_ok(
        app.send_json(
            Method::PUT,
            &format!("/audit_logs/streams/{id}"),
            &json!({"config": {"url": format!("{}/hook", receiver.address), "headers": {"Authorization": "Bearer new"}}}),
        )
        .await,
    )
    .await;
    assert_eq!(updated["state"], "active");
    stream_until(&app, &id, "delivery resumed", |stream| stream["next_log_index"] == 6).await;
    let requests = receiver.requests();
    let delivered: Vec<Value> = requests[1..].iter().flat_map(generic_events).collect();
    assert_eq!(log_indexes(&delivered), (0..6).collect::<Vec<u64>>());
    assert!(
        requests[1..]
            .iter()
            .all(|request| request.headers["authorization"] == "Bearer new")
    );

    // Disabled by hand: `inactive`, and it stays so across updates that do not say otherwise.
    let disabled = json_ok(
        app.send_json(
            Method::PUT,
            &format!("/audit_logs/streams/{id}"),
            &json!({"state": "inactive"}),
        )
        .await,
    )
    .await;
    assert_eq!(disabled["state"], "inactive");
    let still = json_ok(
        app.send_json(
            Method::PUT,
            &format!("/audit_logs/streams/{id}"),
            &json!({"config": {"url": format!("{}/other", receiver.address)}}),
        )
        .await,
    )
    .await;
    assert_eq!(still["state"], "inactive");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn datadog_and_splunk_receive_their_own_formats_and_their_refusals_are_read() {
    let datadog = Receiver::start(Reply::status(202).with_body("{}")).await;
    let splunk = Receiver::start(Reply::status(200).with_body(r#"{"text":"Success","code":0}"#)).await;
    let app = app_allowing_loopback().await;
    let organization = organization_with_schema(&app, "Siem").await;
    create_stream(
        &app,
        &json!({"organization_id": organization, "type": "Datadog",
                "config": {"region": "EU1", "api_key": "dd-key", "url": format!("{}/api/v2/logs", datadog.address)}}),
    )
    .await;
    let hec = create_stream(
        &app,
        &json!({"organization_id": organization, "type": "Splunk",
                "config": {"url": splunk.address, "token": "hec-token", "index": "audit"}}),
    )
    .await;
    assert!(hec.get("signing_secret").is_none());
    assert_eq!(
        hec["config"],
        json!({"url": splunk.address, "index": "audit", "source": "vellum"})
    );
    ingest(&app, &organization, 0..1_500).await;

    let count = |requests: &[Received], read: fn(&Received) -> usize| requests.iter().map(read).sum::<usize>();
    // Datadog's requests are gzip-compressed.
    fn gunzip(request: &Received) -> Vec<u8> {
        use std::io::Read as _;
        assert_eq!(request.headers["content-encoding"], "gzip");
        let mut body = Vec::new();
        flate2::read::GzDecoder::new(&request.body[..])
            .read_to_end(&mut body)
            .unwrap();
        body
    }
    let datadog_entries = |request: &Received| serde_json::from_slice::<Vec<Value>>(&gunzip(request)).unwrap().len();
    let received = datadog
        .wait_for("Datadog got every event", |requests| {
            count(requests, datadog_entries) >= 1_500
        })
        .await;
    let mut indexes = Vec::new();
    for request in &received {
        assert_eq!(request.headers["dd-api-key"], "dd-key");
        let entries: Vec<Value> = serde_json::from_slice(&gunzip(request)).unwrap();
        assert!(entries.len() <= 1_000);
        for entry in entries {
            assert_eq!(
                (&entry["ddsource"], &entry["service"]),
                (&json!("vellum"), &json!("audit-logs"))
            );
            indexes.push(entry["message"]["log_index"].as_u64().unwrap());
        }
    }
    assert_eq!(indexes, (0..1_500).collect::<Vec<u64>>());

    let envelopes = |request: &Received| {
        serde_json::Deserializer::from_slice(&request.body)
            .into_iter::<Value>()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    let received = splunk
        .wait_for("Splunk got every event", |requests| {
            requests.iter().map(|request| envelopes(request).len()).sum::<usize>() >= 1_500
        })
        .await;
    let mut indexes = Vec::new();
    for request in &received {
        assert_eq!(request.headers["authorization"], "Splunk hec-token");
        for envelope in envelopes(request) {
            assert_eq!(envelope["index"], "audit");
            assert_eq!(envelope["sourcetype"], "_json");
            let occurred = envelope["event"]["occurred_at"].as_str().unwrap().to_owned();
            let seconds = envelope["time"].as_f64().unwrap();
            let millis = vellum_core::event::parse_occurred_at(&occurred).unwrap().unix_millis();
            assert!((millis as f64 / 1e3 - seconds).abs() < 0.0005, "{envelope}");
            indexes.push(envelope["event"]["log_index"].as_u64().unwrap());
        }
    }
    assert_eq!(indexes, (0..1_500).collect::<Vec<u64>>());

    // HEC's codes: an invalid token (403, code 4) makes the stream invalid.
    splunk.script([Reply::status(403).with_body(r#"{"text":"Invalid token","code":4}"#)]);
    ingest(&app, &organization, 1_500..1_501).await;
    let id = hec["id"].as_str().unwrap();
    let invalid = stream_until(&app, id, "the Splunk stream became invalid", |stream| {
        stream["state"] == "invalid"
    })
    .await;
    assert!(invalid["error"].as_str().unwrap().contains("code 4"), "{invalid}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn private_destinations_are_refused_without_the_operator_setting() {
    let receiver = Receiver::start(Reply::status(200)).await;
    let app = TestApp::spawn().await;
    let organization = organization_with_schema(&app, "Guarded").await;
    // Plain http is refused outright.
    let refused = json_status(
        app.post_json(
            "/audit_logs/streams",
            &json!({"organization_id": organization, "type": "GenericHttps", "config": {"url": format!("{}/hook", receiver.address)}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(refused.to_string().contains("https"), "{refused}");
    // https to loopback, by address and by name, and to the cloud metadata address: accepted as
    // settings, refused at connect time, so the stream is invalid and nothing is sent.
    let port = receiver.address.rsplit(':').next().unwrap().to_owned();
    for url in [
        format!("https://127.0.0.1:{port}/hook"),
        format!("https://localhost:{port}/hook"),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        format!("https://[::ffff:127.0.0.1]:{port}/hook"),
    ] {
        let created = create_stream(
            &app,
            &json!({"organization_id": organization, "type": "GenericHttps", "config": {"url": url}}),
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        ingest(&app, &organization, 0..1).await;
        let invalid = stream_until(&app, &id, "the stream was refused", |stream| {
            stream["state"] == "invalid"
        })
        .await;
        assert!(
            invalid["error"].as_str().unwrap().contains("private"),
            "{url}: {invalid}"
        );
        let deleted = app
            .request(Method::DELETE, &format!("/audit_logs/streams/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    }
    // Object storage too: an endpoint at the metadata address, by address and by name.
    for endpoint in [
        "https://169.254.169.254".to_owned(),
        format!("https://localhost:{port}"),
    ] {
        let created = create_stream(
            &app,
            &json!({"organization_id": organization, "type": "S3",
                    "config": {"bucket": "audit", "endpoint": endpoint, "access_key_id": "a", "secret_access_key": "s"}}),
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        ingest(&app, &organization, 0..1).await;
        let invalid = stream_until(&app, &id, "the bucket was refused", |stream| {
            stream["state"] == "invalid"
        })
        .await;
        assert!(
            invalid["error"].as_str().unwrap().contains("private"),
            "{endpoint}: {invalid}"
        );
    }
    assert!(receiver.requests().is_empty());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_connection_test_sends_one_event_and_changes_nothing_of_the_stream() {
    let receiver = Receiver::start(Reply::status(200)).await;
    let app = app_allowing_loopback().await;
    let organization = organization_with_schema(&app, "Tested").await;
    ingest(&app, &organization, 0..3).await;
    // Inactive: nothing but the test reaches the receiver.
    let created = create_stream(
        &app,
        &json!({
            "organization_id": organization, "type": "GenericHttps", "state": "inactive",
            "config": {"url": format!("{}/hook", receiver.address)},
        }),
    )
    .await;
    let secret = created["signing_secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let before = stream(&app, &id).await;

    let outcome = json_ok(
        app.post_json(&format!("/audit_logs/streams/{id}/test"), &json!({}))
            .await,
    )
    .await;
    assert_eq!(
        outcome,
        json!({"object": "audit_log_stream_test", "stream_id": id, "success": true, "message": ""})
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert!(signed_by(&requests[0], &secret));
    let events = generic_events(&requests[0]);
    assert_eq!(events.len(), 1);
    let test = &events[0];
    assert_eq!(test["action"], "vellum.stream.test");
    assert_eq!(test["organization_id"], organization.as_str());
    assert_eq!(test["metadata"]["stream_id"], id.as_str());
    assert!(test.get("log_index").is_none(), "a test event has no position: {test}");
    // Not in the log, and the stream is as it was.
    assert!(
        app.all_events(&organization)
            .await
            .iter()
            .all(|event| event["action"] != "vellum.stream.test")
    );
    let mut after = stream(&app, &id).await;
    let mut before = before;
    for shown in [&mut before, &mut after] {
        shown["lag"]["seconds"] = Value::Null;
    }
    assert_eq!(after, before);

    // A refusal is told, and still changes nothing (the stream does not become invalid).
    receiver.script([Reply::status(401).with_body("{\"error\":\"bad token\"}")]);
    let refused = json_ok(
        app.post_json(&format!("/audit_logs/streams/{id}/test"), &json!({}))
            .await,
    )
    .await;
    assert_eq!(refused["success"], false);
    assert!(refused["message"].as_str().unwrap().contains("401"), "{refused}");
    assert_eq!(stream(&app, &id).await["state"], "inactive");
    // An unreachable destination, likewise.
    let gone = create_stream(
        &app,
        &json!({
            "organization_id": organization, "type": "GenericHttps", "state": "inactive",
            "config": {"url": "http://127.0.0.1:9/hook"},
        }),
    )
    .await;
    let gone_id = gone["id"].as_str().unwrap();
    let unreachable = json_ok(
        app.post_json(&format!("/audit_logs/streams/{gone_id}/test"), &json!({}))
            .await,
    )
    .await;
    assert_eq!(unreachable["success"], false, "{unreachable}");
    assert!(!unreachable["message"].as_str().unwrap().is_empty());
    json_status(
        app.post_json(
            "/audit_logs/streams/audit_log_stream_01EHWNCE74X7JSDV0X3SZ3KJNY/test",
            &json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn replay_redelivers_from_the_position_or_time_asked() {
    let receiver = Receiver::start(Reply::status(200)).await;
    let app = app_allowing_loopback().await;
    let organization = organization_with_schema(&app, "Replayed").await;
    ingest(&app, &organization, 0..10).await;
    let created = create_stream(
        &app,
        &json!({"organization_id": organization, "type": "GenericHttps",
                "config": {"url": format!("{}/hook", receiver.address)}}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let replay = |body: Value| {
        let app = &app;
        let id = id.clone();
        async move { app.post_json(&format!("/audit_logs/streams/{id}/replay"), &body).await }
    };
    let moved = json_ok(replay(json!({"from_log_index": 3})).await).await;
    assert_eq!(moved["next_log_index"], 3);
    receiver
        .wait_for("positions 3 to 9", |requests| {
            log_indexes(&requests.iter().flat_map(generic_events).collect::<Vec<_>>()) == (3..10).collect::<Vec<u64>>()
        })
        .await;
    // Event 7 occurred at 00:00:00.007.
    let moved = json_ok(replay(json!({"since": "2026-01-01T00:00:00.007Z"})).await).await;
    assert_eq!(moved["next_log_index"], 7);
    receiver
        .wait_for("positions 7 to 9 again", |requests| {
            log_indexes(&requests.iter().flat_map(generic_events).collect::<Vec<_>>())
                == (3..10).chain(7..10).collect::<Vec<u64>>()
        })
        .await;
    for (body, field) in [
        (json!({}), "since"),
        (json!({"since": "yesterday"}), "since"),
        (json!({"from_log_index": -1}), "from_log_index"),
        (json!({"from_log_index": 11}), "from_log_index"),
        (json!({"since": "2026-01-01T00:00:00Z", "from_log_index": 1}), "since"),
    ] {
        let refused = json_status(replay(body.clone()).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(refused["errors"][0]["field"], field, "{body}: {refused}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn stream_requests_are_checked_and_belong_to_their_organization() {
    let app = app_allowing_loopback().await;
    let organization = organization_with_schema(&app, "Checked").await;
    for (body, field) in [
        (
            json!({"type": "GenericHttps", "config": {"url": "https://example.com/"}}),
            "organization_id",
        ),
        (json!({"organization_id": organization, "config": {}}), "type"),
        (json!({"organization_id": organization, "type": "Kafka"}), "type"),
        (
            json!({"organization_id": organization, "type": "Snowflake", "config": {}}),
            "config.account",
        ),
        (
            json!({"organization_id": organization, "type": "S3",
                   "config": {"bucket": "Bad_Bucket", "access_key_id": "a", "secret_access_key": "s"}}),
            "config.bucket",
        ),
        (
            json!({"organization_id": organization, "type": "Datadog", "config": {"region": "US1"}}),
            "config.api_key",
        ),
        (
            json!({"organization_id": organization, "type": "Datadog", "config": {"api_key": "k", "region": "Moon"}}),
            "config.region",
        ),
        (
            json!({"organization_id": organization, "type": "Splunk", "config": {"token": "t"}}),
            "config.url",
        ),
        (
            json!({"organization_id": organization, "type": "GenericHttps", "config": {"url": "ftp://x.test/"}}),
            "config.url",
        ),
        (
            json!({"organization_id": organization, "type": "GenericHttps", "config": {"url": "https://x.test/", "extra": 1}}),
            "config.extra",
        ),
        (
            json!({"organization_id": organization, "type": "GenericHttps", "config": {"url": "https://x.test/", "headers": {"Content-Length": "1"}}}),
            "config.headers.Content-Length",
        ),
        (
            json!({"organization_id": organization, "type": "GenericHttps", "config": "https://x.test/"}),
            "config",
        ),
        (
            json!({"organization_id": organization, "type": "GenericHttps", "config": {"url": "https://x.test/"}, "state": "error"}),
            "state",
        ),
    ] {
        let refused = json_status(
            app.post_json("/audit_logs/streams", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], field, "{body}: {refused}");
    }
    let missing = json_status(
        app.post_json(
            "/audit_logs/streams",
            &json!({"organization_id": "org_01EHWNCE74X7JSDV0X3SZ3KJNY", "type": "GenericHttps", "config": {"url": "https://x.test/"}}),
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(
        missing["message"].as_str().unwrap().contains("Organization"),
        "{missing}"
    );
    for _ in 0..10 {
        create_stream(
            &app,
            &json!({"organization_id": organization, "type": "GenericHttps", "config": {"url": "https://x.test/"}, "state": "inactive"}),
        )
        .await;
    }
    let limited = json_status(
        app.post_json(
            "/audit_logs/streams",
            &json!({"organization_id": organization, "type": "GenericHttps", "config": {"url": "https://x.test/"}}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(limited["code"], "stream_limit");
    let listed = json_ok(
        app.get(&format!("/audit_logs/streams?organization_id={organization}"))
            .await,
    )
    .await;
    assert_eq!(listed["object"], "list");
    assert_eq!(listed["data"].as_array().unwrap().len(), 10);
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|stream| stream["state"] == "inactive")
    );
    json_status(app.get("/audit_logs/streams").await, StatusCode::UNPROCESSABLE_ENTITY).await;
    json_status(
        app.get("/audit_logs/streams/audit_log_stream_nope").await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // A deleted organization's streams are gone with it.
    let id = listed["data"][0]["id"].as_str().unwrap().to_owned();
    let deleted = app
        .request(Method::DELETE, &format!("/organizations/{organization}"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    json_status(
        app.get(&format!("/audit_logs/streams/{id}")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await.unwrap();
}

const CRASH_EVENTS: usize = 100_000;
const CRASH_BATCH: usize = 1_000;

/// Sends batches `from..` of the crash test's events with their idempotency keys until one is
/// not acknowledged; returns the first batch not acknowledged.
async fn send_batches(client: reqwest::Client, url: String, key: String, organization: String, from: usize) -> usize {
    for batch in from..CRASH_EVENTS / CRASH_BATCH {
        let events: Vec<Value> = (batch * CRASH_BATCH..(batch + 1) * CRASH_BATCH).map(event).collect();
        let sent = client
            .post(&url)
            .bearer_auth(&key)
            .header("Idempotency-Key", format!("crash-batch-{batch}"))
            .json(&json!({"organization_id": organization, "events": events}))
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == StatusCode::OK => {}
            _ => return batch,
        }
    }
    CRASH_EVENTS / CRASH_BATCH
}

/// kill -9 while a stream delivers (and clients ingest): after a restart every event arrives,
/// in order, and the only duplicates are the batch that was in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_delivery_loses_nothing_and_repeats_only_the_batch_in_flight() {
    use crate::helpers::{ServerProcess, fresh_secret};
    let receiver = Receiver::start(Reply::status(200)).await;
    let data_dir = tempfile::tempdir().unwrap();
    let secret = fresh_secret();
    let envs = [
        ("VELLUM_API_KEY", secret.expose()),
        ("VELLUM_STREAM_ALLOW_PRIVATE_DESTINATIONS", "true"),
    ];
    let mut server = ServerProcess::start(data_dir.path(), &[], &envs);
    let client = reqwest::Client::new();
    let key = secret.expose().to_owned();
    let post = |server: &ServerProcess, path: &str, body: Value| {
        client.post(server.url(path)).bearer_auth(&key).json(&body).send()
    };
    let organization = post(&server, "/organizations", json!({"name": "Crashing"}))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let schema = post(
        &server,
        "/audit_logs/actions/user.signed_in/schemas",
        json!({"targets": [{"type": "team"}]}),
    )
    .await
    .unwrap();
    assert_eq!(schema.status(), StatusCode::CREATED);
    let created = post(
        &server,
        "/audit_logs/streams",
        json!({"organization_id": organization, "type": "GenericHttps",
               "config": {"url": format!("{}/hook", receiver.address), "format": "ndjson"}}),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let delivered = |requests: &[Received]| {
        requests
            .iter()
            .map(|request| generic_events(request).len())
            .sum::<usize>()
    };
    let ingest = tokio::spawn(send_batches(
        client.clone(),
        server.url("/audit_logs/events/batch"),
        key.clone(),
        organization.clone(),
        0,
    ));
    receiver
        .wait_for("a fifth of the events delivered", |requests| {
            delivered(requests) >= CRASH_EVENTS / 5
        })
        .await;
    server.kill_hard();
    let before_kill = receiver.requests().len();
    let resume_from = ingest.await.unwrap();

    let server = ServerProcess::start(data_dir.path(), &[], &envs);
    let sent_all = send_batches(
        client.clone(),
        server.url("/audit_logs/events/batch"),
        key.clone(),
        organization.clone(),
        resume_from,
    )
    .await;
    assert_eq!(
        sent_all,
        CRASH_EVENTS / CRASH_BATCH,
        "the restarted server refused a batch"
    );
    let requests = receiver
        .wait_for("every event delivered after the restart", |requests| {
            requests
                .iter()
                .flat_map(generic_events)
                .filter_map(|event| event["log_index"].as_u64())
                .max()
                == Some(CRASH_EVENTS as u64 - 1)
        })
        .await;

    // Every position exactly once, in order, except a repeat of what was in flight at the kill.
    let batches: Vec<Vec<u64>> = requests
        .iter()
        .map(|request| log_indexes(&generic_events(request)))
        .collect();
    let mut expected = 0_u64;
    let mut repeated = 0;
    for (position, batch) in batches.iter().enumerate() {
        let first = batch[0];
        if first != expected {
            assert!(
                position == before_kill && first < expected,
                "request {position} starts at {first}, expected {expected} (the kill was before request {before_kill})"
            );
            repeated = expected - first;
        }
        assert_eq!(batch, &(first..first + batch.len() as u64).collect::<Vec<_>>());
        expected = first + batch.len() as u64;
    }
    assert_eq!(expected, CRASH_EVENTS as u64);
    assert!(
        repeated <= 500,
        "{repeated} events repeated: more than the batch in flight"
    );
    drop(server);
}

/// The objects under `dir`, by key relative to it, with their lines (NDJSON) or items (JSON).
fn objects_under(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<Value>> {
    let mut found = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let key = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if !(key.ends_with(".ndjson") || key.ends_with(".json")) {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let events = match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Array(events)) => events,
                _ => serde_json::Deserializer::from_slice(&bytes)
                    .into_iter::<Value>()
                    .map(Result::unwrap)
                    .collect(),
            };
            found.insert(key, events);
        }
    }
    found
}

#[tokio::test]
async fn object_storage_streams_write_one_object_per_window_and_replays_replace_them() {
    use crate::export_s3::{ACCESS_KEY, BUCKET, SECRET_KEY, start_s3};
    let root = tempfile::tempdir().unwrap();
    let s3 = start_s3(root.path()).await;
    let app = app_allowing_loopback().await;
    let organization = organization_with_schema(&app, "Bucketed").await;
    let created = create_stream(
        &app,
        &json!({"organization_id": organization, "type": "S3",
                "config": {"bucket": BUCKET, "region": "us-east-1", "prefix": "audit", "endpoint": format!("http://{s3}"),
                           "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}}),
    )
    .await;
    assert_eq!(
        created["config"],
        json!({"bucket": BUCKET, "region": "us-east-1", "prefix": "audit/", "endpoint": format!("http://{s3}"), "format": "ndjson"})
    );
    assert!(!created.to_string().contains(SECRET_KEY));
    let id = created["id"].as_str().unwrap().to_owned();
    ingest(&app, &organization, 0..2_500).await;
    stream_until(&app, &id, "2,500 events in the bucket", |stream| {
        stream["next_log_index"] == 2_500
    })
    .await;
    let under = root.path().join(BUCKET).join("audit").join(&organization);
    let objects = objects_under(&under);
    let windows: Vec<(String, Vec<u64>)> = objects
        .iter()
        .map(|(key, events)| (key.rsplit('/').next().unwrap().to_owned(), log_indexes(events)))
        .collect();
    assert_eq!(
        windows,
        vec![
            ("00000000000000000000.ndjson".to_owned(), (0..1_000).collect()),
            ("00000000000000001000.ndjson".to_owned(), (1_000..2_000).collect()),
            ("00000000000000002000.ndjson".to_owned(), (2_000..2_500).collect()),
        ],
        "{:?}",
        objects.keys().collect::<Vec<_>>()
    );
    let sample = &objects.values().next().unwrap()[3];
    let from_api = json_ok(
        app.get(&format!("/audit_logs/events/{}", sample["id"].as_str().unwrap()))
            .await,
    )
    .await;
    assert_eq!(sample, &from_api);

    // A window that grows is written again, whole; a replay rewrites the same objects.
    ingest(&app, &organization, 2_500..2_510).await;
    stream_until(&app, &id, "the last window grew", |stream| {
        stream["next_log_index"] == 2_510
    })
    .await;
    let grown = objects_under(&under);
    assert_eq!(grown.len(), 3);
    assert_eq!(
        log_indexes(grown.values().last().unwrap()),
        (2_000..2_510).collect::<Vec<u64>>()
    );
    json_ok(
        app.post_json(
            &format!("/audit_logs/streams/{id}/replay"),
            &json!({"from_log_index": 1_500}),
        )
        .await,
    )
    .await;
    stream_until(&app, &id, "the replay", |stream| {
        stream["next_log_index"] == 2_510 && stream["last_synced_at"].is_string()
    })
    .await;
    assert_eq!(objects_under(&under), grown, "a replay leaves the same objects");

    // Google Cloud Storage (its XML API, as an S3-compatible endpoint): JSON objects.
    let gcs = create_stream(
        &app,
        &json!({"organization_id": organization, "type": "GoogleCloudStorage",
                "config": {"bucket": BUCKET, "prefix": "gcs", "endpoint": format!("http://{s3}"), "format": "json",
                           "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}}),
    )
    .await;
    let gcs_id = gcs["id"].as_str().unwrap().to_owned();
    ingest(&app, &organization, 2_510..2_520).await;
    stream_until(&app, &gcs_id, "the GCS stream delivered", |stream| {
        stream["next_log_index"] == 2_520
    })
    .await;
    let written = objects_under(&root.path().join(BUCKET).join("gcs").join(&organization));
    assert_eq!(written.len(), 1, "{:?}", written.keys().collect::<Vec<_>>());
    assert!(written.keys().next().unwrap().ends_with("/00000000000000002000.json"));
    assert_eq!(
        log_indexes(written.values().next().unwrap()),
        (2_000..2_520).collect::<Vec<u64>>()
    );
    // A connection test writes an object of its own, beside the windows, and none of them.
    let tested = json_ok(
        app.post_json(&format!("/audit_logs/streams/{gcs_id}/test"), &json!({}))
            .await,
    )
    .await;
    assert_eq!(tested["success"], true, "{tested}");
    let mut after = objects_under(&root.path().join(BUCKET).join("gcs").join(&organization));
    let test_key = after
        .keys()
        .find(|key| key.ends_with("/vellum-connection-test.json"))
        .cloned()
        .expect("the test object");
    let test_events = after.remove(&test_key).unwrap();
    assert_eq!(test_events.len(), 1);
    assert_eq!(test_events[0]["action"], "vellum.stream.test");
    assert_eq!(after, written, "the windows are untouched");

    // A wrong secret makes the stream invalid.
    let refused = create_stream(
        &app,
        &json!({"organization_id": organization, "type": "S3",
                "config": {"bucket": BUCKET, "prefix": "wrong", "endpoint": format!("http://{s3}"),
                           "access_key_id": ACCESS_KEY, "secret_access_key": "not-the-secret"}}),
    )
    .await;
    ingest(&app, &organization, 2_520..2_521).await;
    let invalid = stream_until(
        &app,
        refused["id"].as_str().unwrap(),
        "the wrong secret refused",
        |stream| stream["state"] == "invalid",
    )
    .await;
    assert!(invalid["error"].as_str().unwrap().contains("credentials"), "{invalid}");
    // Tested, it says so.
    let tested = json_ok(
        app.post_json(
            &format!("/audit_logs/streams/{}/test", refused["id"].as_str().unwrap()),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(tested["success"], false, "{tested}");
    assert!(tested["message"].as_str().unwrap().contains("credentials"), "{tested}");
    app.stop().await.unwrap();
}

/// Microsoft Entra ID's token endpoint and Azure Monitor's Logs Ingestion API, as documented:
/// client credentials for a bearer token, then JSON arrays of rows posted to a rule's stream,
/// answered 204.
#[derive(Clone, Default)]
struct FakeAzure {
    tokens_issued: Arc<Mutex<usize>>,
    rows: Arc<Mutex<Vec<Value>>>,
    arrived: Arc<Notify>,
}

impl FakeAzure {
    async fn start(&self) -> String {
        use axum::extract::{Path, Query, State};
        use axum::response::IntoResponse;
        async fn token(
            State(fake): State<FakeAzure>,
            Path(_tenant): Path<String>,
            headers: HeaderMap,
            body: Bytes,
        ) -> axum::response::Response {
            // The form, read as a query string (the same encoding).
            let uri: axum::http::Uri = format!("/?{}", String::from_utf8_lossy(&body)).parse().unwrap();
            let Ok(Query(form)) = Query::<std::collections::HashMap<String, String>>::try_from_uri(&uri) else {
                return AxumStatus::BAD_REQUEST.into_response();
            };
            if headers.get("content-type").and_then(|value| value.to_str().ok())
                != Some("application/x-www-form-urlencoded")
            {
                return AxumStatus::UNSUPPORTED_MEDIA_TYPE.into_response();
            }
            let valid = form.get("grant_type").map(String::as_str) == Some("client_credentials")
                && form.get("scope").map(String::as_str) == Some("https://monitor.azure.com//.default")
                && form.get("client_id").map(String::as_str) == Some("app-1");
            if !valid || form.get("client_secret").map(String::as_str) != Some("entra-secret") {
                return (
                    AxumStatus::UNAUTHORIZED,
                    axum::Json(json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})),
                )
                    .into_response();
            }
            *fake.tokens_issued.lock().unwrap() += 1;
            axum::Json(json!({"token_type": "Bearer", "expires_in": 3599, "access_token": "azure-token-1"}))
                .into_response()
        }
        async fn upload(
            State(fake): State<FakeAzure>,
            Path((rule, stream)): Path<(String, String)>,
            Query(query): Query<std::collections::HashMap<String, String>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> AxumStatus {
            if headers.get("authorization").and_then(|value| value.to_str().ok()) != Some("Bearer azure-token-1") {
                return AxumStatus::UNAUTHORIZED;
            }
            if rule != "dcr-0a1b"
                || stream != "Custom-AuditLogs_CL"
                || query.get("api-version").map(String::as_str) != Some("2023-01-01")
            {
                return AxumStatus::NOT_FOUND;
            }
            let Ok(Value::Array(rows)) = serde_json::from_slice::<Value>(&body) else {
                return AxumStatus::BAD_REQUEST;
            };
            if body.len() > 1_000_000 {
                return AxumStatus::PAYLOAD_TOO_LARGE;
            }
            fake.rows.lock().unwrap().extend(rows);
            fake.arrived.notify_waiters();
            AxumStatus::NO_CONTENT
        }
        let router = axum::Router::new()
            .route("/{tenant}/oauth2/v2.0/token", axum::routing::post(token))
            .route(
                "/dataCollectionRules/{rule}/streams/{stream}",
                axum::routing::post(upload),
            )
            .with_state(self.clone());
        serve_on_loopback(router).await
    }
}

#[tokio::test]
async fn microsoft_sentinel_gets_a_token_once_and_every_row_in_order() {
    let azure = FakeAzure::default();
    let address = azure.start().await;
    let app = app_allowing_loopback().await;
    let organization = organization_with_schema(&app, "Sentinel").await;
    let config = |secret: &str| {
        json!({"endpoint": address, "authority": address, "rule_id": "dcr-0a1b", "stream_name": "Custom-AuditLogs_CL",
               "tenant_id": "tenant-1", "client_id": "app-1", "client_secret": secret})
    };
    let created = create_stream(
        &app,
        &json!({"organization_id": organization, "type": "MicrosoftSentinel", "config": config("entra-secret")}),
    )
    .await;
    assert!(!created.to_string().contains("entra-secret"));
    let id = created["id"].as_str().unwrap().to_owned();
    ingest(&app, &organization, 0..1_500).await;
    stream_until(&app, &id, "every row delivered", |stream| {
        stream["next_log_index"] == 1_500
    })
    .await;
    let rows = azure.rows.lock().unwrap().clone();
    assert_eq!(
        rows.iter()
            .map(|row| row["log_index"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (0..1_500).collect::<Vec<u64>>()
    );
    let row = &rows[42];
    assert_eq!(row["id"], row["data"]["id"]);
    assert_eq!(row["event_type"], "user.signed_in");
    assert_eq!(row["TimeGenerated"], row["data"]["occurred_at"]);
    assert_eq!(row["organization_id"], organization.as_str());
    assert_eq!(
        *azure.tokens_issued.lock().unwrap(),
        1,
        "the token is reused until it nears its expiry"
    );

    // A wrong client secret: Entra's refusal makes the stream invalid, with its reason.
    let refused = create_stream(
        &app,
        &json!({"organization_id": organization, "type": "MicrosoftSentinel", "config": config("wrong")}),
    )
    .await;
    ingest(&app, &organization, 1_500..1_501).await;
    let invalid = stream_until(
        &app,
        refused["id"].as_str().unwrap(),
        "the wrong secret refused",
        |stream| stream["state"] == "invalid",
    )
    .await;
    assert!(
        invalid["error"].as_str().unwrap().contains("AADSTS7000215"),
        "{invalid}"
    );
    app.stop().await.unwrap();
}

/// Snowflake's SQL API as documented: a key-pair JWT (RS256, issuer `ACCOUNT.USER.SHA256:<key
/// fingerprint>`), statements posted to `/api/v2/statements` with their bindings, 200 when done,
/// 422 for a SQL compilation error.
#[derive(Clone)]
struct FakeSnowflake {
    /// The user's public key (PKCS #1 DER) and its fingerprint.
    public_key: Vec<u8>,
    fingerprint: String,
    rows: Arc<Mutex<Vec<Value>>>,
}

impl FakeSnowflake {
    async fn start(&self) -> String {
        use axum::response::IntoResponse;
        async fn statements(
            axum::extract::State(fake): axum::extract::State<FakeSnowflake>,
            headers: HeaderMap,
            body: Bytes,
        ) -> axum::response::Response {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
            };
            let unauthorized = || {
                (
                    AxumStatus::UNAUTHORIZED,
                    axum::Json(json!({"code": "390144", "message": "JWT token is invalid."})),
                )
                    .into_response()
            };
            if header("x-snowflake-authorization-token-type") != "KEYPAIR_JWT" {
                return unauthorized();
            }
            let Some(jwt) = header("authorization").strip_prefix("Bearer ") else {
                return unauthorized();
            };
            let parts: Vec<&str> = jwt.split('.').collect();
            let decode = |part: &str| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(part)
                    .unwrap_or_default()
            };
            let (Ok(jwt_header), Ok(claims)) = (
                serde_json::from_slice::<Value>(&decode(parts[0])),
                serde_json::from_slice::<Value>(&decode(parts.get(1).copied().unwrap_or_default())),
            ) else {
                return unauthorized();
            };
            let signed = aws_lc_rs::signature::UnparsedPublicKey::new(
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                &fake.public_key,
            )
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &decode(parts.get(2).copied().unwrap_or_default()),
            )
            .is_ok();
            let now = i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
            )
            .unwrap();
            if !signed
                || jwt_header["alg"] != "RS256"
                || claims["sub"] != "MYORG-ACCT1.VELLUM_LOADER"
                || claims["iss"] != format!("MYORG-ACCT1.VELLUM_LOADER.{}", fake.fingerprint).as_str()
                || claims["exp"].as_i64().unwrap_or(0) <= now
                || claims["exp"].as_i64().unwrap_or(0) > now + 3_600
            {
                return unauthorized();
            }
            let Ok(request) = serde_json::from_slice::<Value>(&body) else {
                return AxumStatus::BAD_REQUEST.into_response();
            };
            let statement = request["statement"].as_str().unwrap_or_default();
            if !statement.starts_with("INSERT INTO AUDIT.PUBLIC.EVENTS (") {
                return (
                    AxumStatus::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({"code": "002003", "message": "SQL compilation error: Object does not exist or not authorized."})),
                )
                    .into_response();
            }
            let binding = &request["bindings"]["1"];
            let Some(Ok(Value::Array(rows))) = (binding["type"] == "TEXT")
                .then(|| binding["value"].as_str().map(serde_json::from_str::<Value>))
                .flatten()
            else {
                return AxumStatus::BAD_REQUEST.into_response();
            };
            fake.rows.lock().unwrap().extend(rows);
            axum::Json(json!({"statementHandle": "01b2c3d4-0000-0001-0000-000000000001", "message": "Statement executed successfully."}))
                .into_response()
        }
        let router = axum::Router::new()
            .route("/api/v2/statements", axum::routing::post(statements))
            .with_state(self.clone());
        serve_on_loopback(router).await
    }
}

#[tokio::test]
async fn snowflake_gets_every_event_in_order_through_key_pair_authenticated_inserts() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    let key = aws_lc_rs::signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der = key.as_der().unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let mut pem = "-----BEGIN PRIVATE KEY-----\n".to_owned();
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let spki: aws_lc_rs::encoding::PublicKeyX509Der = key.public_key().as_der().unwrap();
    let fingerprint = format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki.as_ref()))
    );
    let fake = FakeSnowflake {
        public_key: key.public_key().as_ref().to_vec(),
        fingerprint,
        rows: Arc::default(),
    };
    let address = fake.start().await;
    let app = app_allowing_loopback().await;
    let organization = organization_with_schema(&app, "Warehouse").await;
    let config = |table: &str, private_key: &str| {
        json!({"account": "myorg-acct1", "user": "vellum_loader", "database": "AUDIT", "schema": "PUBLIC",
               "table": table, "url": address, "private_key": private_key})
    };
    // A key Vellum cannot sign with is refused at once.
    let refused = json_status(
        app.post_json(
            "/audit_logs/streams",
            &json!({"organization_id": organization, "type": "Snowflake",
                    "config": config("EVENTS", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(refused["errors"][0]["field"], "config.private_key", "{refused}");
    let created = create_stream(
        &app,
        &json!({"organization_id": organization, "type": "Snowflake", "config": config("EVENTS", &pem)}),
    )
    .await;
    assert!(!created.to_string().contains("PRIVATE KEY"));
    let id = created["id"].as_str().unwrap().to_owned();
    ingest(&app, &organization, 0..1_500).await;
    stream_until(&app, &id, "every row inserted", |stream| {
        stream["next_log_index"] == 1_500
    })
    .await;
    let rows = fake.rows.lock().unwrap().clone();
    assert_eq!(log_indexes(&rows), (0..1_500).collect::<Vec<u64>>());
    let from_api = json_ok(
        app.get(&format!("/audit_logs/events/{}", rows[9]["id"].as_str().unwrap()))
            .await,
    )
    .await;
    assert_eq!(rows[9], from_api);

    // A table the warehouse does not know: a SQL compilation error makes the stream invalid.
    let missing = create_stream(
        &app,
        &json!({"organization_id": organization, "type": "Snowflake", "config": config("NO_SUCH_TABLE", &pem)}),
    )
    .await;
    ingest(&app, &organization, 1_500..1_501).await;
    let invalid = stream_until(
        &app,
        missing["id"].as_str().unwrap(),
        "the missing table refused",
        |stream| stream["state"] == "invalid",
    )
    .await;
    assert!(invalid["error"].as_str().unwrap().contains("422"), "{invalid}");
    app.stop().await.unwrap();
}
