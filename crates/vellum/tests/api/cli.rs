//! The binary's command line and configuration layering.

use std::process::Command;

use crate::helpers::{ServerProcess, fresh_secret, vellum_binary};

fn vellum(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(vellum_binary());
    command
        .env("VELLUM_DATA_DIR", data_dir)
        .env_remove("VELLUM_CONFIG")
        .env_remove("VELLUM_LISTEN")
        .env_remove("VELLUM_DATABASE_URL")
        .env_remove("VELLUM_API_KEY")
        .envs(crate::helpers::backend_env(data_dir));
    command
}

#[test]
fn listen_address_precedence_is_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vellum.toml");
    std::fs::write(&config, "listen = \"127.0.0.3:0\"\n").unwrap();
    let config = config.to_str().unwrap();
    let data = dir.path().join("data");

    let server = ServerProcess::start(
        &data,
        &["--config", config, "--listen", "127.0.0.1:0"],
        &[("VELLUM_LISTEN", "127.0.0.2:0")],
    );
    assert!(
        server.address.starts_with("http://127.0.0.1:"),
        "flag wins: {}",
        server.address
    );
    drop(server);

    let server =
        ServerProcess::start_without_listen_flag(&data, &["--config", config], &[("VELLUM_LISTEN", "127.0.0.2:0")]);
    assert!(
        server.address.starts_with("http://127.0.0.2:"),
        "env beats file: {}",
        server.address
    );
    drop(server);

    let server = ServerProcess::start_without_listen_flag(&data, &[], &[("VELLUM_CONFIG", config)]);
    assert!(
        server.address.starts_with("http://127.0.0.3:"),
        "file beats default: {}",
        server.address
    );
}

/// Arguments, environment, and what standard error must say.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn bad_configuration_fails_at_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [Case; 7] = [
        (&["serve", "--listen", "not-an-address"], &[], "invalid listen address"),
        (
            &["serve"],
            &[("VELLUM_API_KEY", "pk_wrong_prefix_123456")],
            "invalid VELLUM_API_KEY",
        ),
        (
            &["serve", "--config", "/nonexistent/vellum.toml"],
            &[],
            "cannot read config file",
        ),
        (
            &["serve"],
            &[(
                "VELLUM_DATABASE_URL",
                "postgres://vellum@127.0.0.1:1/vellum?sslmode=disable",
            )],
            "cannot open the PostgreSQL store",
        ),
        (
            &["serve"],
            &[("VELLUM_DATABASE_URL", "mysql://localhost/vellum")],
            "not a PostgreSQL URL",
        ),
        (
            &["serve"],
            &[("VELLUM_DEFAULT_RETENTION_DAYS", "31")],
            "invalid default retention of 31 days",
        ),
        (
            &["serve", "--default-retention-days", "4000"],
            &[],
            "invalid default retention of 4000 days",
        ),
    ];
    for (args, envs, expected) in cases {
        let mut command = vellum(dir.path());
        command.args(args).envs(envs.iter().copied());
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} should fail");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }

    let config = dir.path().join("typo.toml");
    std::fs::write(&config, "lisen = \"127.0.0.1:0\"\n").unwrap();
    let output = vellum(dir.path())
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unknown field"),
        "typos in the file are refused"
    );
}

#[test]
fn vellum_api_key_is_made_to_exist_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let secret = fresh_secret();
    for _ in 0..2 {
        let server = ServerProcess::start(dir.path(), &[], &[("VELLUM_API_KEY", secret.expose())]);
        let host = server.address.trim_start_matches("http://").to_owned();
        let mut stream = std::net::TcpStream::connect(&host).unwrap();
        use std::io::{Read, Write};
        write!(
            stream,
            "GET /organizations HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            secret.expose()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    let output = vellum(dir.path()).args(["api-keys", "list"]).output().unwrap();
    let listing = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        listing.lines().filter(|line| line.starts_with("key_")).count(),
        1,
        "{listing}"
    );
    assert!(listing.contains(&secret.redacted()));
}

#[test]
fn migrate_applies_once_and_reports_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let first = vellum(dir.path()).arg("migrate").output().unwrap();
    assert!(first.status.success());
    assert!(
        String::from_utf8_lossy(&first.stdout)
            .contains("applied migrations [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]")
    );
    let second = vellum(dir.path()).arg("migrate").output().unwrap();
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("up to date"));
}

#[test]
fn organizations_can_be_created_and_listed_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let created = vellum(dir.path())
        .args(["organizations", "create", "--name", "Cli Corp", "--external-id", "c-1"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let stdout = String::from_utf8(created.stdout).unwrap();
    let id = stdout.lines().last().unwrap().to_owned();
    assert!(id.starts_with("org_"), "{stdout}");
    let listed = vellum(dir.path()).args(["organizations", "list"]).output().unwrap();
    let listing = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listing.contains(&id) && listing.contains("Cli Corp") && listing.contains("c-1"),
        "{listing}"
    );

    let duplicate = vellum(dir.path())
        .args(["organizations", "create", "--name", "Again", "--external-id", "c-1"])
        .output()
        .unwrap();
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already exists"));
}
