//! The official WorkOS Python SDK (`workos` from PyPI), pointed at a real server by `base_url`.
//!
//! The SDK lives in a virtual environment that `scripts/test` creates (`.sdk/python`, pinned by
//! `tests/sdk/python/requirements.txt`). `VELLUM_TEST_PYTHON` may name another interpreter that
//! has it. Without either, this test fails and says how to set it up: it never skips.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::TestApp;

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn python_with_sdk() -> PathBuf {
    if let Some(python) = std::env::var_os("VELLUM_TEST_PYTHON") {
        return PathBuf::from(python);
    }
    let venv_python = repository_root().join(".sdk/python/bin/python");
    assert!(
        venv_python.exists(),
        "the WorkOS Python SDK is not installed: run `scripts/test` (it creates .sdk/python), \
         or set VELLUM_TEST_PYTHON to a python that has `workos` installed"
    );
    venv_python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_manages_organizations() {
    let python = python_with_sdk();
    let app = TestApp::spawn().await;
    let suite = repository_root().join("tests/sdk/python");
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
