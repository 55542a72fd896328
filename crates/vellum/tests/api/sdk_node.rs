//! The official WorkOS Node SDK (`@workos-inc/node` from npm), pointed at a real server by
//! `apiHostname`, `port` and `https: false`.
//!
//! The SDK is installed by `scripts/test` (`npm ci` in `tests/sdk/node`, pinned by its
//! `package-lock.json`). `VELLUM_TEST_NODE` may name another `node` binary. Without the SDK,
//! this test fails and says how to set it up: it never skips.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{TestApp, tap_summary_count as summary_count};

fn suite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/sdk/node")
        .canonicalize()
        .expect("tests/sdk/node exists")
}

fn node() -> PathBuf {
    std::env::var_os("VELLUM_TEST_NODE").map_or_else(|| PathBuf::from("node"), PathBuf::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_node_sdk_drives_organizations_and_audit_logs() {
    let suite = suite_dir();
    assert!(
        suite.join("node_modules/@workos-inc/node/package.json").exists(),
        "the WorkOS Node SDK is not installed in {}: run `scripts/test` (it runs `npm ci` there), \
         or `npm ci --no-audit --no-fund` in tests/sdk/node",
        suite.display()
    );
    let app = TestApp::spawn().await;
    let (address, api_key) = (app.address.clone(), app.api_key.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(node())
            .args(["--test", "--test-reporter=tap"])
            .current_dir(&suite)
            .env("VELLUM_BASE_URL", address)
            .env("VELLUM_API_KEY", api_key)
            .env_remove("WORKOS_API_KEY")
            .env_remove("WORKOS_CLIENT_ID")
            .env_remove("NODE_OPTIONS")
            .output()
            .unwrap_or_else(|error| {
                panic!("node did not start ({error}): install Node.js, or set VELLUM_TEST_NODE to a node binary")
            })
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    assert!(output.status.success(), "the Node SDK suite failed:\n{stdout}{stderr}");
    let passed = summary_count(&stdout, "pass");
    assert_eq!(
        summary_count(&stdout, "fail"),
        Some(0),
        "no test of the Node SDK suite may fail"
    );
    assert!(
        passed.is_some_and(|passed| passed > 0),
        "the Node SDK suite ran no test:\n{stdout}{stderr}"
    );
    app.stop().await.unwrap();
}
