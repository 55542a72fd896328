//! The connection layer under hostile and careless clients: half-sent requests, idle and slow
//! connections, a full file table, requests hyper cannot parse, oversized bodies and request ids.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{ServerProcess, TestApp};

fn host_and_port(address: &str) -> String {
    address.trim_start_matches("http://").to_owned()
}

async fn connect(app_address: &str) -> TcpStream {
    TcpStream::connect(host_and_port(app_address)).await.expect("connects")
}

/// Reads until the server closes the connection (or `limit` passes), returning what it sent.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut received)).await;
    match read {
        Ok(Ok(_)) => Some(received),
        // A reset also means the server closed it.
        Ok(Err(_)) => Some(received),
        Err(_) => None,
    }
}

/// A raw HTTP response: status, lower-cased header lines, body.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn parse(bytes: &[u8]) -> Self {
        let end = bytes
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete head in {:?}", String::from_utf8_lossy(bytes)));
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Self {
            status,
            headers,
            body: bytes[end + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }

    /// Asserts Vellum's error shape: JSON with `message` and `code`, and an `X-Request-ID`.
    fn assert_json_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", String::from_utf8_lossy(&self.body));
        let body: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {:?}", String::from_utf8_lossy(&self.body)));
        assert!(body["message"].is_string(), "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(
            self.header("x-request-id").is_some_and(|id| id.starts_with("req_")),
            "{:?}",
            self.headers
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
    }
}

/// Sends raw bytes on a new connection and reads the answer until the server closes it.
async fn exchange(app: &TestApp, request: &[u8]) -> RawResponse {
    let mut stream = connect(&app.address).await;
    stream.write_all(request).await.unwrap();
    let received = read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("the server answers and closes");
    RawResponse::parse(&received)
}

async fn app_with_limits(configure: impl FnOnce(&mut vellum_http::ServerLimits)) -> TestApp {
    TestApp::spawn_with(|settings| configure(&mut settings.limits)).await
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let app = app_with_limits(|limits| limits.header_read_timeout = Duration::from_secs(1)).await;
    let mut silent = connect(&app.address).await;
    let mut half = connect(&app.address).await;
    half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    for stream in [&mut silent, &mut half] {
        let received = read_until_closed(stream, Duration::from_secs(10))
            .await
            .expect("closed by the server, not held open");
        assert!(
            received.is_empty(),
            "nothing is sent to a client that never sent a request"
        );
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed only after the timeout: {waited:?}"
    );
    // The server still serves others.
    assert_eq!(
        app.client.get(app.url("/health")).send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let app = app_with_limits(|limits| {
        limits.idle_timeout = Duration::from_secs(1);
        limits.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    let mut stream = connect(&app.address).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = vec![0u8; 4096];
    let read = stream.read(&mut buffer).await.unwrap();
    assert!(
        buffer[..read].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buffer[..read])
    );
    let started = Instant::now();
    let rest = read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("an idle connection is closed");
    assert!(rest.is_empty());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_a_408() {
    let app = app_with_limits(|limits| limits.body_read_timeout = Duration::from_secs(1)).await;
    let before = app.count_organizations().await;
    let request = format!(
        "POST /organizations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\": ",
        app.api_key
    );
    let response = exchange(&app, request.as_bytes()).await;
    response.assert_json_error(408, "request_timeout");
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(app.count_organizations().await, before, "nothing was created");
}

#[tokio::test]
async fn requests_hyper_cannot_parse_get_json_errors_with_a_request_id() {
    let app = TestApp::spawn().await;
    // A URI over 64 KiB.
    let long_uri = format!(
        "GET /organizations?search={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    exchange(&app, long_uri.as_bytes())
        .await
        .assert_json_error(414, "uri_too_long");
    // More headers than accepted.
    let mut many_headers = String::from("GET /health HTTP/1.1\r\nHost: x\r\n");
    for index in 0..150 {
        many_headers.push_str(&format!("X-Header-{index}: value\r\n"));
    }
    many_headers.push_str("\r\n");
    exchange(&app, many_headers.as_bytes())
        .await
        .assert_json_error(431, "request_headers_too_large");
    // Headers over 64 KiB in total, however they arrive (hyper's own bound depends on how the
    // bytes are split into reads).
    for size in [70_000, 500_000] {
        let huge = format!(
            "GET /health HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
            "x".repeat(size)
        );
        exchange(&app, huge.as_bytes())
            .await
            .assert_json_error(431, "request_headers_too_large");
    }
    // Bytes that are not a valid path, header or request line.
    for garbage in [
        &b"GET /organ\x01izations HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /health HTTP/1.1\r\nHo\x7fst: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
    ] {
        exchange(&app, garbage)
            .await
            .assert_json_error(400, "malformed_request");
    }
    // After a good request on the same connection, a bad one is still answered in JSON.
    let mut stream = connect(&app.address).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let received = read_until_closed(&mut stream, Duration::from_secs(10)).await.unwrap();
    let text = String::from_utf8_lossy(&received);
    let second = text.find("HTTP/1.1 400").expect("the second request is answered");
    RawResponse::parse(&received[second..]).assert_json_error(400, "malformed_request");
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_read() {
    let app = TestApp::spawn().await;
    let request = format!(
        "POST /audit_logs/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 5000000000\r\n\r\n",
        app.api_key
    );
    let started = Instant::now();
    let response = exchange(&app, request.as_bytes()).await;
    response.assert_json_error(413, "payload_too_large");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered without waiting for the body"
    );
    // Without credentials too: the body is never read.
    let anonymous =
        b"POST /dashboard/api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000000000\r\n\r\n";
    exchange(&app, anonymous)
        .await
        .assert_json_error(413, "payload_too_large");
}

#[tokio::test]
async fn a_client_request_id_is_echoed_only_when_it_is_reasonable() {
    let app = TestApp::spawn().await;
    let echoed = |value: &str| {
        let request = app
            .client
            .get(app.url("/health"))
            .header("x-request-id", value.to_owned());
        async move {
            let response = request.send().await.unwrap();
            response.headers()["x-request-id"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(echoed("trace-1234.abc:5/6+7=").await, "trace-1234.abc:5/6+7=");
    for unusable in [
        "a".repeat(129),
        "has space".into(),
        "semi;colon".into(),
        "quote\"".into(),
    ] {
        let id = echoed(&unusable).await;
        assert!(
            id.starts_with("req_") && id != unusable,
            "{unusable:?} was replaced by {id}"
        );
    }
}

#[tokio::test]
async fn health_answers_within_a_second_while_300_half_sent_requests_hold_256_file_descriptors() {
    // The default timeouts: the half-sent requests are not closed by time during this test.
    let data_dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_after_shell("ulimit -n 256", data_dir.path(), &[], &[]);
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(host_and_port(&server.address)).await.unwrap();
        // Some may already have been closed to make room; that is the point.
        let _ = stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
        held.push(stream);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    for _ in 0..5 {
        let started = Instant::now();
        let response = client
            .get(format!("{}/health", server.address))
            .send()
            .await
            .expect("/health answers within one second");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    drop(held);
}

#[tokio::test]
async fn at_the_connection_limit_the_longest_waiting_connection_makes_room() {
    let app = app_with_limits(|limits| limits.max_connections = 4).await;
    let mut waiting = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&app.address).await;
        stream.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
        waiting.push(stream);
    }
    // A fifth connection is served, and the oldest half-sent one was closed for it.
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let oldest = read_until_closed(&mut waiting[0], Duration::from_secs(5)).await;
    assert!(oldest.is_some(), "the oldest waiting connection was closed");
}

#[tokio::test]
async fn when_every_connection_is_busy_a_newcomer_gets_a_json_503() {
    let app = app_with_limits(|limits| limits.max_connections = 2).await;
    // One authenticated request first: its key is then cached and the store connected, so that
    // the two requests below reach their handlers (and become busy) at once, before the first
    // probe could find one of them still evictable.
    let warm = app
        .client
        .get(app.url("/organizations"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), StatusCode::OK);
    drop(warm);
    // Two requests whose bodies are still arriving: busy, not evictable.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&app.address).await;
        let head = format!(
            "POST /organizations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
            app.api_key
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        busy.push(stream);
    }
    // Each has reached its handler once the server reads its body; give the accept loop the
    // two connections first by waiting for a third to be refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = exchange(&app, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
        if response.status == 503 {
            response.assert_json_error(503, "too_many_connections");
            break;
        }
        assert_eq!(response.status, 200);
        assert!(Instant::now() < deadline, "a third connection was never refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(busy);
}

#[tokio::test]
async fn bodies_being_read_at_once_stay_within_the_body_budget() {
    // The smallest body limit, 1 KiB: the budget is 64 such bodies.
    let app = TestApp::spawn_with(|settings| settings.max_body_bytes = 1024).await;
    let slow_upload = format!(
        "POST /organizations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1024\r\n\r\n{{",
        app.api_key
    );
    let mut slow = Vec::new();
    for _ in 0..vellum_http::BODY_BUDGET_MULTIPLE {
        let mut stream = connect(&app.address).await;
        stream.write_all(slow_upload.as_bytes()).await.unwrap();
        slow.push(stream);
    }
    let before = app.count_organizations().await;
    // The server takes the uploads in as it accepts them: wait until all of them hold their part
    // of the budget, probing with a body that would change nothing if it were read (a 422).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = app
            .request(reqwest::Method::POST, "/organizations")
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        if probe.status() == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert_eq!(probe.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            Instant::now() < deadline,
            "the slow uploads never filled the body budget"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = app
        .request(reqwest::Method::POST, "/organizations")
        .json(&serde_json::json!({ "name": "Waits For Room" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "server_busy");
    // Once the slow uploads are gone, there is room again.
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = app
            .request(reqwest::Method::POST, "/organizations")
            .json(&serde_json::json!({ "name": "Has Room" }))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::CREATED {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no room after the slow uploads left: {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.count_organizations().await, before + 1);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_write_stall_timeout() {
    let app = app_with_limits(|limits| limits.write_stall_timeout = Duration::from_secs(1)).await;
    let stream = connect(&app.address).await;
    let (_reader, mut writer) = stream.into_split();
    // Pipelined requests whose answers are never read: once the socket buffers are full the
    // server's writes stall, and after the timeout it closes the connection, which fails ours.
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Err(error) = writer.write_all(&request).await {
                return error;
            }
        }
    })
    .await;
    let error = outcome.expect("the server closed the stalled connection");
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{error:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        app.client.get(app.url("/health")).send().await.unwrap().status(),
        StatusCode::OK
    );
}
