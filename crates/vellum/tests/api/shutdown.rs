use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{ServerProcess, TestApp, fresh_secret};

#[tokio::test]
async fn a_graceful_stop_keeps_everything_acknowledged() {
    let app = TestApp::spawn().await;
    let created = app.create_organization(&json!({"name": "Survivor"})).await;
    let data_dir = app.stop_keeping_data().await;

    let store = crate::helpers::open_store_of(data_dir.path()).await;
    let id = vellum_core::OrganizationId::parse(created["id"].as_str().unwrap()).unwrap();
    assert_eq!(store.get_organization(id).await.unwrap().name, "Survivor");
    store.close().await.unwrap();
}

/// Sends a whole request on a fresh connection and returns the raw response.
fn raw_request(host: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_and_exits_cleanly() {
    let data_dir = tempfile::tempdir().unwrap();
    let secret = fresh_secret();
    let mut server = ServerProcess::start(data_dir.path(), &[], &[("VELLUM_API_KEY", secret.expose())]);
    let host = server.address.trim_start_matches("http://").to_owned();

    // Start a request and send only half of its body.
    let body = json!({"name": "In flight"}).to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut stream = TcpStream::connect(&host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        stream,
        "POST /organizations HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{head}",
        secret.expose(),
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    // The server accepts connections in order, so once a later connection is answered, ours
    // has been accepted and its request is being read.
    let health = raw_request(
        &host,
        &format!("GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    server.signal("TERM");
    stream.write_all(tail.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "the in-flight request completed: {response}"
    );
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit status {status:?}");

    // What was acknowledged is there after a restart.
    let server = ServerProcess::start(data_dir.path(), &[], &[("VELLUM_API_KEY", secret.expose())]);
    let host = server.address.trim_start_matches("http://").to_owned();
    let listing = raw_request(
        &host,
        &format!(
            "GET /organizations HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            secret.expose()
        ),
    );
    assert!(
        listing.starts_with("HTTP/1.1 200") && listing.contains("\"name\":\"In flight\""),
        "{listing}"
    );
}

#[test]
fn sigint_stops_an_idle_server_with_exit_code_zero() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data_dir.path(), &[], &[]);
    server.signal("INT");
    assert!(server.wait_exit(Duration::from_secs(30)).success());
}
