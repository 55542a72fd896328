//! Dashboard sign-in under attack: bursts of failed sign-ins stay within bounded memory, and
//! the lockout holds when the attempts arrive all at once.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{ServerProcess, TestApp};

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "correct horse battery";

async fn sign_in(client: &reqwest::Client, base: &str, email: &str, password: &str) -> StatusCode {
    client
        .post(format!("{base}/dashboard/api/session"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[tokio::test]
async fn a_hundred_concurrent_failed_sign_ins_stay_within_bounded_memory() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        data_dir.path(),
        &[],
        &[("VELLUM_ADMIN_EMAIL", EMAIL), ("VELLUM_ADMIN_PASSWORD", PASSWORD)],
    );
    let pid = server.child.id();
    let client = reqwest::Client::new();
    assert_eq!(
        client.get(server.url("/health")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let before = resident_kib(pid);
    for round in 0..2 {
        let attempts = (0..100u8).map(|index| {
            // Each from its own loopback address, so that the per-address budget does not stop
            // them before they reach the password checks: this is the pool's bound.
            let client = reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, 2 + index]))
                .build()
                .unwrap();
            let base = server.address.clone();
            // Unknown emails (the decoy hash) and the real one, each with a wrong password.
            let email = if index % 2 == 0 {
                format!("nobody{round}-{index}@example.com")
            } else {
                EMAIL.to_owned()
            };
            tokio::spawn(async move { sign_in(&client, &base, &email, "wrong password!").await })
        });
        for attempt in attempts.collect::<Vec<_>>() {
            let status = attempt.await.unwrap();
            assert!(
                matches!(
                    status,
                    StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                ),
                "{status}"
            );
        }
    }
    let after = resident_kib(pid);
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 200,
        "resident memory grew by {grown_mib} MiB ({before} KiB -> {after} KiB)"
    );
}

#[tokio::test]
async fn the_lockout_holds_when_forty_attempts_arrive_at_once() {
    let app = TestApp::spawn_with(|settings| {
        settings.admin = Some(vellum::config::AdminBootstrap {
            email: vellum_core::operator::Email::parse(EMAIL).unwrap(),
            password: PASSWORD.into(),
        });
    })
    .await;
    let attempts = (0..40).map(|_| {
        let client = app.client.clone();
        let base = app.address.clone();
        tokio::spawn(async move { sign_in(&client, &base, EMAIL, "not the password").await })
    });
    let mut checked = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        match attempt.await.unwrap() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        checked <= 5,
        "{checked} wrong passwords were checked; only the 5 free failures may be"
    );
    // The right password, right after, is refused too: the lockout holds.
    assert_eq!(
        sign_in(&app.client, &app.address, EMAIL, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Case and spacing of the email do not open a second budget.
    assert_eq!(
        sign_in(&app.client, &app.address, " ADMIN@Example.com ", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn oversized_sign_ins_are_refused_before_any_work() {
    let app = TestApp::spawn().await;
    // A megabyte-long email: the body is over the sign-in limit, refused unread.
    let long_email = format!("{}@example.com", "a".repeat(1024 * 1024));
    let response = app
        .client
        .post(app.url("/dashboard/api/session"))
        .json(&json!({ "email": long_email, "password": "whatever password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large");
    assert!(body["message"].as_str().unwrap().contains("16384"), "{body}");
    // An email too long to be an address is an ordinary failure, many times over.
    let long_email = format!("{}@example.com", "b".repeat(300));
    for _ in 0..3 {
        let status = sign_in(&app.client, &app.address, &long_email, "whatever password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

/// Failed sign-ins are counted in the store: a lockout earned against one node holds on every
/// other node of the same database, and on the embedded store it survives a restart (an
/// attacker gains nothing by spreading guesses over nodes or by waiting for a restart).
#[tokio::test]
async fn a_lockout_holds_on_every_node_and_across_a_restart() {
    let admin = |settings: &mut vellum::config::Settings| {
        settings.admin = Some(vellum::config::AdminBootstrap {
            email: vellum_core::operator::Email::parse(EMAIL).unwrap(),
            password: PASSWORD.into(),
        });
    };
    let first = TestApp::spawn_with(admin).await;
    let client = reqwest::Client::new();
    for _ in 0..5 {
        assert_eq!(
            sign_in(&client, &first.address, EMAIL, "a wrong guess").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in(&client, &first.address, EMAIL, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let data_dir = first.data_dir.path().to_owned();
    if crate::helpers::on_postgres() {
        // A second node over the same database, while the first still runs.
        let second = TestApp::spawn_with(|settings| {
            admin(settings);
            settings.data_dir = data_dir.clone();
        })
        .await;
        assert_eq!(
            sign_in(&client, &second.address, EMAIL, PASSWORD).await,
            StatusCode::TOO_MANY_REQUESTS,
            "the second node knows of the first node's failures"
        );
        assert_eq!(
            sign_in(&client, &second.address, "other@example.com", "a guess").await,
            StatusCode::UNAUTHORIZED,
            "other emails are not locked out"
        );
        second.stop().await.unwrap();
    }
    let kept = first.stop_keeping_data().await;
    let restarted = TestApp::spawn_with(|settings| {
        admin(settings);
        settings.data_dir = kept.path().to_owned();
    })
    .await;
    assert_eq!(
        sign_in(&client, &restarted.address, EMAIL, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the lockout survives a restart"
    );
    restarted.stop().await.unwrap();
}
