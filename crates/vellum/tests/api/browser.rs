//! The dashboard, the Admin Portal and the embedded viewer in a real browser: headless Chromium (Debian's `chromium` package), driven by
//! `playwright-core` from npm, against the real server.
//!
//! `scripts/test` installs the suite's npm packages (`npm ci` in `tests/browser`, pinned by its
//! `package-lock.json`), and `.ci/run` installs Chromium. `VELLUM_CHROMIUM` may name another
//! Chromium binary. Without either, this test fails and says how to set it up: it never skips.
//! Every browser test saves screenshots in `VELLUM_SCREENSHOT_DIR`, by default
//! `target/tmp/browser-screenshots`.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{TestApp, tap_summary_count as summary_count};

const EMAIL: &str = "operator@example.com";
const PASSWORD: &str = "a long operator passphrase";
/// How long the browser suite's portal links last (it waits this long for one to expire).
const PORTAL_LINK_LIFETIME: std::time::Duration = std::time::Duration::from_secs(4);

fn suite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/browser")
        .canonicalize()
        .expect("tests/browser exists")
}

fn chromium() -> PathBuf {
    std::env::var_os("VELLUM_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

fn screenshot_dir() -> PathBuf {
    std::env::var_os("VELLUM_SCREENSHOT_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots"),
        PathBuf::from,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let suite = suite_dir();
    assert!(
        suite.join("node_modules/playwright-core/package.json").exists(),
        "playwright-core is not installed in {}: run `scripts/test` (it runs `npm ci` there), \
         or `npm ci --no-audit --no-fund` in tests/browser",
        suite.display()
    );
    let browser = chromium();
    assert!(
        browser.exists(),
        "no Chromium at {}: `apt-get install chromium` (what .ci/run does), or set VELLUM_CHROMIUM",
        browser.display()
    );
    let screenshots = screenshot_dir();
    std::fs::create_dir_all(&screenshots).expect("screenshot directory");
    // The browser suite serves a customer's page embedding the viewer from this loopback port,
    // as `allowed.localhost` (an origin the server allows) and `other.localhost` (one it does
    // not). The port is taken now so that the server can be told the allowed origin.
    let embedding_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let embedding_origin = format!("http://allowed.localhost:{embedding_port}");
    let allowed_origin = embedding_origin.clone();
    let app = TestApp::spawn_with(|settings| {
        settings.admin = Some(vellum::config::AdminBootstrap {
            email: vellum_core::operator::Email::parse(EMAIL).unwrap(),
            password: PASSWORD.into(),
        });
        // The portal suite: a stream to its own receiver on loopback, a page of an allowed
        // origin embedding the viewer (the browser serves it itself), and links that expire
        // within the run.
        settings.stream_allow_private_destinations = true;
        settings.portal.application_name = Some("Acme Test App".into());
        settings.portal.viewer_allowed_origins = vec![allowed_origin];
        settings.portal.link_lifetime = PORTAL_LINK_LIFETIME;
    })
    .await;
    let (address, api_key) = (app.address.clone(), app.api_key.clone());
    let screenshots_for_node = screenshots.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(std::env::var_os("VELLUM_TEST_NODE").unwrap_or_else(|| "node".into()))
            .args(["--test", "--test-reporter=tap", "--test-concurrency=1"])
            .current_dir(&suite)
            .env("VELLUM_BASE_URL", address)
            .env("VELLUM_API_KEY", api_key)
            .env("VELLUM_ADMIN_EMAIL", EMAIL)
            .env("VELLUM_ADMIN_PASSWORD", PASSWORD)
            .env("VELLUM_CHROMIUM", &browser)
            .env("VELLUM_SCREENSHOT_DIR", &screenshots_for_node)
            .env(
                "VELLUM_PORTAL_LINK_LIFETIME_MS",
                PORTAL_LINK_LIFETIME.as_millis().to_string(),
            )
            .env("VELLUM_EMBEDDING_PORT", embedding_port.to_string())
            .env_remove("NODE_OPTIONS")
            .output()
            .unwrap_or_else(|error| panic!("node did not start ({error}): install Node.js, or set VELLUM_TEST_NODE"))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    println!("screenshots: {}", screenshots.display());
    assert!(output.status.success(), "the browser suite failed:\n{stdout}{stderr}");
    assert_eq!(summary_count(&stdout, "fail"), Some(0), "no browser test may fail");
    assert!(
        summary_count(&stdout, "pass").is_some_and(|passed| passed > 0),
        "the browser suite ran no test:\n{stdout}{stderr}"
    );
    let saved = std::fs::read_dir(&screenshots)
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "png"))
        })
        .count();
    assert!(
        saved > 0,
        "the browser suite saved no screenshot in {}",
        screenshots.display()
    );
    app.stop().await.unwrap();
}
