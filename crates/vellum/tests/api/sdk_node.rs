//! The official WorkOS Node SDK (`@workos-inc/node` from npm), pointed at a real server by
//! `apiHostname`, `port` and `https: false`: the suite in `tests/sdk/node`, run twice, against
//! the release pinned there and against the newest release on npm.
//!
//! `scripts/test` installs both (`npm ci` in `tests/sdk/node` and in `tests/sdk/node-latest`,
//! each pinned by its `package-lock.json`). The newest release runs the test files of
//! `tests/sdk/node` unchanged: `tests/sdk/node-latest/use-this-sdk.mjs`, loaded with `--import`,
//! resolves their `@workos-inc/node` imports to its own copy. Every run checks that the SDK it
//! loaded is the version its `package.json` pins. `VELLUM_TEST_NODE` may name another `node`
//! binary. Without an SDK, these tests fail and say how to set it up: they never skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::{TestApp, tap_summary_count as summary_count};

fn sdk_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/sdk")
        .join(name)
        .canonicalize()
        .unwrap_or_else(|error| panic!("tests/sdk/{name} exists: {error}"))
}

fn node() -> PathBuf {
    std::env::var_os("VELLUM_TEST_NODE").map_or_else(|| PathBuf::from("node"), PathBuf::from)
}

/// The exact SDK version a suite's `package.json` pins.
fn pinned_version(suite: &Path) -> String {
    let manifest = std::fs::read_to_string(suite.join("package.json")).expect("package.json");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("package.json is JSON");
    let version = manifest["dependencies"]["@workos-inc/node"]
        .as_str()
        .expect("package.json depends on @workos-inc/node");
    assert!(
        version.split('.').count() == 3 && version.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "{} pins an exact version, not `{version}`",
        suite.display()
    );
    version.to_owned()
}

/// Runs `node` with `args` in `suite` against a fresh server and asserts that tests ran and
/// all passed, with the SDK version that `suite` pins.
async fn run_suite(suite: PathBuf, args: Vec<String>) {
    assert!(
        suite.join("node_modules/@workos-inc/node/package.json").exists(),
        "the WorkOS Node SDK is not installed in {}: run `scripts/test` (it runs `npm ci` there), \
         or `npm ci --no-audit --no-fund` in that folder",
        suite.display()
    );
    let version = pinned_version(&suite);
    let app = TestApp::spawn().await;
    let (address, api_key) = (app.address.clone(), app.api_key.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(node())
            .args(&args)
            .current_dir(&suite)
            .env("VELLUM_BASE_URL", address)
            .env("VELLUM_API_KEY", api_key)
            .env("VELLUM_NODE_SDK_VERSION", version)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_node_sdk_drives_organizations_and_audit_logs() {
    let args = ["--test", "--test-reporter=tap"].map(String::from).to_vec();
    run_suite(sdk_dir("node"), args).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_node_sdk_drives_the_same_suite() {
    let mut test_files: Vec<String> = std::fs::read_dir(sdk_dir("node"))
        .expect("tests/sdk/node")
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".test.mjs"))
        .map(|name| format!("../node/{name}"))
        .collect();
    test_files.sort();
    assert!(!test_files.is_empty(), "tests/sdk/node has test files");
    let mut args = ["--import", "./use-this-sdk.mjs", "--test", "--test-reporter=tap"]
        .map(String::from)
        .to_vec();
    args.extend(test_files);
    run_suite(sdk_dir("node-latest"), args).await;
}
