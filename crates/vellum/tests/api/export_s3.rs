//! Exports kept in S3-compatible storage: a real S3 server (s3s-fs, in this process) behind the
//! real binary, downloads from presigned S3 URLs, and those URLs refused when altered or expired.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, fresh_secret};

pub const ACCESS_KEY: &str = "vellum-test-access";
pub const SECRET_KEY: &str = "vellum-test-secret-key-0123456789";
pub const BUCKET: &str = "audit-exports";

/// Serves an S3-compatible API over the files under `root`, with signature checks.
pub async fn start_s3(root: &Path) -> SocketAddr {
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let file_system = s3s_fs::FileSystem::new(root).unwrap();
    let service = {
        let mut builder = s3s::service::S3ServiceBuilder::new(file_system);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        builder.build()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let http = ConnectionBuilder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let connection = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    });
    address
}

async fn call(
    http: &reqwest::Client,
    server: &ServerProcess,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let mut request = http.request(method.clone(), server.url(path)).bearer_auth(key);
    if method != reqwest::Method::GET {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status}: {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_in_s3_compatible_storage_download_from_presigned_urls() {
    let s3_root = tempfile::tempdir().unwrap();
    let s3 = start_s3(s3_root.path()).await;
    let endpoint = format!("http://{s3}");
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("vellum.toml");
    std::fs::write(&config, "export_link_seconds = 2\nexport_s3_prefix = \"tenant-a\"\n").unwrap();
    let secret = fresh_secret();
    let secret = secret.expose().to_owned();
    let server = ServerProcess::start(
        data.path(),
        &["--export-s3-bucket", BUCKET, "--export-s3-endpoint", &endpoint],
        &[
            ("VELLUM_API_KEY", secret.as_str()),
            ("VELLUM_CONFIG", config.to_str().unwrap()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", "us-east-1"),
        ],
    );
    let http = reqwest::Client::new();
    let organization = call(
        &http,
        &server,
        &secret,
        reqwest::Method::POST,
        "/organizations",
        json!({"name": "S3"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        &http,
        &server,
        &secret,
        reqwest::Method::POST,
        "/audit_logs/actions/doc.signed/schemas",
        json!({"targets": [{"type": "doc"}]}),
    )
    .await;
    let events: Vec<Value> = (0..250)
        .map(|index| {
            json!({
                "action": "doc.signed", "occurred_at": format!("2026-06-01T00:00:{:02}Z", index % 60),
                "actor": {"id": format!("user_{}", index % 7), "type": "user"},
                "targets": [{"id": format!("doc_{index}"), "type": "doc"}],
                "context": {"location": "192.0.2.44"},
            })
        })
        .collect();
    call(
        &http,
        &server,
        &secret,
        reqwest::Method::POST,
        "/audit_logs/events/batch",
        json!({"organization_id": organization, "events": events}),
    )
    .await;

    for format in ["csv", "ndjson"] {
        let created = call(
            &http,
            &server,
            &secret,
            reqwest::Method::POST,
            "/audit_logs/exports",
            json!({
                "organization_id": organization, "format": format,
                "range_start": "2026-01-01T00:00:00Z", "range_end": "2027-01-01T00:00:00Z",
            }),
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        let path = format!("/audit_logs/exports/{id}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut export = created;
        while export["state"] == "pending" {
            assert!(Instant::now() < deadline, "the export stayed pending");
            tokio::time::sleep(Duration::from_millis(20)).await;
            export = call(&http, &server, &secret, reqwest::Method::GET, &path, Value::Null).await;
        }
        assert_eq!(export["state"], "ready", "{export}");
        let url = export["url"].as_str().unwrap().to_owned();
        assert!(
            url.starts_with(&format!("{endpoint}/{BUCKET}/tenant-a/exports/{id}.{format}?"))
                && url.contains("X-Amz-Signature="),
            "{url}"
        );
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.text().await.unwrap();
        let lines = body.lines().count();
        // CSV: a header and a row per event; NDJSON: a header, an entry per position, a proof.
        assert_eq!(lines, if format == "csv" { 251 } else { 252 }, "{format}");
        // The file is in the bucket, not on the server's disk.
        assert!(
            s3_root
                .path()
                .join(BUCKET)
                .join("tenant-a/exports")
                .join(format!("{id}.{format}"))
                .exists()
        );
        assert!(
            !data
                .path()
                .join("exports/exports")
                .join(format!("{id}.{format}"))
                .exists()
        );

        // An altered signature is refused by the storage.
        let (head, signature) = url.split_once("X-Amz-Signature=").unwrap();
        let flipped = if signature.starts_with('0') { "1" } else { "0" };
        let altered = format!("{head}X-Amz-Signature={flipped}{}", &signature[1..]);
        assert_eq!(http.get(&altered).send().await.unwrap().status(), StatusCode::FORBIDDEN);

        // The presigned URL expires with the configured lifetime.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let status = http.get(&url).send().await.unwrap().status();
            if status == StatusCode::FORBIDDEN {
                break;
            }
            assert_eq!(status, StatusCode::OK);
            assert!(Instant::now() < deadline, "the presigned URL never expired");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let again = call(&http, &server, &secret, reqwest::Method::GET, &path, Value::Null).await;
        let fresh = again["url"].as_str().unwrap();
        assert_ne!(fresh, url);
        assert_eq!(http.get(fresh).send().await.unwrap().status(), StatusCode::OK);
    }
}
