//! The official WorkOS Python SDKs (`workos` from PyPI), pointed at a real server through their
//! base URL settings: the current SDK (`tests/sdk/python`, installed into `.sdk/python`) and the
//! last release with the legacy Audit Trail module (`tests/sdk/python-audit-trail`, installed
//! into `.sdk/python-audit-trail`).
//!
//! `scripts/test` creates both virtual environments from the suites' `requirements.txt`.
//! `VELLUM_TEST_PYTHON` / `VELLUM_TEST_PYTHON_AUDIT_TRAIL` may name other interpreters that have
//! the SDKs. Without them, these tests fail and say how to set them up: they never skip.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::TestApp;

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

pub fn python_with_sdk(override_variable: &str, venv: &str) -> PathBuf {
    if let Some(python) = std::env::var_os(override_variable) {
        return PathBuf::from(python);
    }
    let venv_python = repository_root().join(venv).join("bin/python");
    assert!(
        venv_python.exists(),
        "the WorkOS Python SDK is not installed in {venv}: run `scripts/test` (it creates it), \
         or set {override_variable} to a python that has the right `workos` installed"
    );
    venv_python
}

/// Runs a suite's unittest files against a fresh server and asserts they ran and passed.
async fn run_suite(python: PathBuf, suite: &str) {
    let app = TestApp::spawn().await;
    let suite = repository_root().join(suite);
    let (address, api_key) = (app.address.clone(), app.api_key.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .args(["-m", "unittest", "-v"])
            .current_dir(&suite)
            .env("VELLUM_BASE_URL", address)
            .env("VELLUM_API_KEY", api_key)
            .env_remove("WORKOS_API_KEY")
            .env_remove("WORKOS_BASE_URL")
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{}{stderr}", String::from_utf8_lossy(&output.stdout));
    assert!(output.status.success(), "the Python SDK suite failed:\n{stderr}");
    assert!(
        stderr.contains("OK") && !stderr.contains("Ran 0 tests"),
        "the suite ran no test:\n{stderr}"
    );
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_manages_organizations() {
    let python = python_with_sdk("VELLUM_TEST_PYTHON", ".sdk/python");
    run_suite(python, "tests/sdk/python").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_python_sdk_with_audit_trail_drives_the_legacy_api() {
    let python = python_with_sdk("VELLUM_TEST_PYTHON_AUDIT_TRAIL", ".sdk/python-audit-trail");
    let version = Command::new(&python)
        .args(["-c", "import workos; print(workos.__version__)"])
        .output()
        .expect("python runs");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        "1.26.0",
        "the Audit Trail suite needs workos 1.26.0"
    );
    run_suite(python, "tests/sdk/python-audit-trail").await;
}
