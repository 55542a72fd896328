//! Test harness: [`TestApp`] runs the server in-process; [`ServerProcess`] runs the real binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::sync::mpsc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;
use vellum::config::Settings;
use vellum::startup::Application;
use vellum_core::ApiKeySecret;

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        vellum::telemetry::init(vellum::config::LogFormat::Text);
    }
});

/// Whether the suite runs on PostgreSQL (`VELLUM_TEST_BACKEND=postgres`; `scripts/test` runs it
/// on both backends) rather than the embedded store.
pub fn on_postgres() -> bool {
    match std::env::var("VELLUM_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("VELLUM_TEST_BACKEND must be sqlite or postgres, not {other}"),
    }
}

/// On PostgreSQL, the database that stands for `data_dir` (one per data directory, so that a
/// server restarted over the same directory finds its data); `None` on the embedded store.
pub fn database_url_for(data_dir: &Path) -> Option<String> {
    on_postgres().then(|| vellum_store::postgres::testing::database_for_key(&data_dir.to_string_lossy()))
}

/// The environment that points a `vellum` command at the store standing for `data_dir`: on
/// PostgreSQL its database URL, nothing on the embedded store (the data directory says it all).
pub fn backend_env(data_dir: &Path) -> Vec<(&'static str, String)> {
    database_url_for(data_dir)
        .map(|url| ("VELLUM_DATABASE_URL", url))
        .into_iter()
        .collect()
}

/// Opens the store standing for `data_dir` (PostgreSQL or embedded, as the suite runs), as a
/// second process would.
pub async fn open_store_of(data_dir: &Path) -> std::sync::Arc<dyn vellum_store::Store> {
    match database_url_for(data_dir) {
        Some(url) => std::sync::Arc::new(
            vellum_store::PostgresStore::open(&vellum_store::PostgresConfig::new(url))
                .await
                .expect("the PostgreSQL store opens"),
        ),
        None => std::sync::Arc::new(
            vellum_store::SqliteStore::open(&vellum_store::SqliteConfig::new(data_dir)).expect("the store opens"),
        ),
    }
}

/// A server running in this process on a fresh store.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// A valid API key secret.
    pub api_key: String,
    /// A client without default headers.
    pub client: reqwest::Client,
    /// The store's directory (kept until the app is dropped).
    pub data_dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Starts a server on a fresh store with one API key.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts a server on a fresh store with one API key, after `configure` adjusts its settings.
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        LazyLock::force(&TRACING);
        let data_dir = tempfile::tempdir().expect("temp dir");
        let secret = vellum_store::generate_api_key_secret().expect("random secret");
        let mut settings = Settings::for_tests(data_dir.path(), secret.clone());
        configure(&mut settings);
        // After `configure`, which may point the server at another data directory.
        if settings.database_url.is_none() {
            settings.database_url = database_url_for(&settings.data_dir);
        }
        let application = Application::build(settings).await.expect("server builds");
        let address = format!("http://{}", application.local_addr());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(application.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Self {
            address,
            api_key: secret.expose().to_owned(),
            client: reqwest::Client::new(),
            data_dir,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    /// An absolute URL for a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request with the API key.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(&self.api_key)
    }

    /// An authenticated GET.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("request sent")
    }

    /// An authenticated request with a JSON body.
    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// An authenticated POST with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::POST, path, body).await
    }

    /// Creates an organization and returns its JSON, asserting success.
    pub async fn create_organization(&self, body: &Value) -> Value {
        let response = self.post_json("/organizations", body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("json body")
    }

    /// Counts live organizations by walking every page.
    pub async fn count_organizations(&self) -> usize {
        let mut count = 0;
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(cursor) => format!("/organizations?limit=100&after={cursor}"),
                None => "/organizations?limit=100".to_owned(),
            };
            let page = json_ok(self.get(&path).await).await;
            count += page["data"].as_array().expect("data array").len();
            match page["list_metadata"]["after"].as_str() {
                Some(cursor) => after = Some(cursor.to_owned()),
                None => return count,
            }
        }
    }

    /// Creates an organization and returns its id.
    pub async fn organization(&self, name: &str) -> String {
        self.create_organization(&serde_json::json!({ "name": name })).await["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    /// Creates a schema version and returns it, asserting success.
    pub async fn create_schema(&self, action: &str, body: &Value) -> Value {
        let response = self
            .post_json(&format!("/audit_logs/actions/{action}/schemas"), body)
            .await;
        json_status(response, StatusCode::CREATED).await
    }

    /// Ingests events in one batch, asserting every one was stored, and returns their ids.
    pub async fn ingest_batch(&self, organization_id: &str, events: Vec<Value>) -> Vec<String> {
        let count = events.len();
        let body = serde_json::json!({ "organization_id": organization_id, "events": events });
        let result = json_ok(self.post_json("/audit_logs/events/batch", &body).await).await;
        assert_eq!(result["succeeded"], count, "{result}");
        result["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|item| item["id"].as_str().expect("id").to_owned())
            .collect()
    }

    /// Every event of an organization, newest first, by walking all pages.
    pub async fn all_events(&self, organization_id: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/audit_logs/events?organization_id={organization_id}&limit=100");
            if let Some(cursor) = &after {
                path.push_str(&format!("&after={cursor}"));
            }
            let page = json_ok(self.get(&path).await).await;
            events.extend(page["data"].as_array().expect("data array").iter().cloned());
            match page["list_metadata"]["after"].as_str() {
                Some(cursor) => after = Some(cursor.to_owned()),
                None => return events,
            }
        }
    }

    /// Stops the server gracefully and returns how it ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_server().await
    }

    /// Stops the server gracefully (asserting success) and hands over its data directory.
    pub async fn stop_keeping_data(mut self) -> TempDir {
        self.stop_server().await.expect("clean stop");
        let placeholder = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.data_dir, placeholder)
    }

    async fn stop_server(&mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let server = self.server.take().expect("server running");
        server.await.expect("server task did not panic")
    }
}

/// Asserts a 200 with JSON and returns the body.
pub async fn json_ok(response: Response) -> Value {
    let status = response.status();
    let body = response.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).expect("json body")
}

/// Asserts a status and a JSON body, and returns the body.
pub async fn json_status(response: Response, expected: StatusCode) -> Value {
    let status = response.status();
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json")),
        "expected a JSON content type, got {:?}",
        response.headers().get("content-type")
    );
    assert!(
        response.headers().contains_key("x-request-id"),
        "every response carries X-Request-ID"
    );
    let body = response.text().await.expect("body");
    assert_eq!(status, expected, "{body}");
    serde_json::from_str(&body).expect("json body")
}

/// The `vellum` binary, running as its own process.
pub struct ServerProcess {
    /// The child process.
    pub child: Child,
    /// `http://HOST:PORT`, read from the line the server prints at start.
    pub address: String,
    /// Keeps the reader of standard output alive, so that later prints never hit a closed pipe.
    _stdout_lines: mpsc::Receiver<String>,
}

/// The path of the `vellum` binary built for these tests.
pub fn vellum_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vellum"))
}

impl ServerProcess {
    /// Starts `vellum serve` with these arguments and environment, and waits until it listens.
    pub fn start(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::start_logging_to(data_dir, args, envs, None)
    }

    /// Like [`Self::start`], but without the `--listen 127.0.0.1:0` flag the harness adds by
    /// default, so that the environment or a config file decides.
    pub fn start_without_listen_flag(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::spawn(data_dir, args, envs, None, false, None)
    }

    /// Like [`Self::start`], writing the server's standard error (its logs) to `log_file`.
    pub fn start_logging_to(data_dir: &Path, args: &[&str], envs: &[(&str, &str)], log_file: Option<&Path>) -> Self {
        Self::spawn(data_dir, args, envs, log_file, true, None)
    }

    /// Like [`Self::start`], with `vellum` started by `sh -c` after the shell command `setup`
    /// (`ulimit -n 256`, `umask 000`): process settings a test wants the server to start with.
    pub fn start_after_shell(setup: &str, data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::spawn(data_dir, args, envs, None, true, Some(setup))
    }

    fn spawn(
        data_dir: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
        log_file: Option<&Path>,
        default_listen: bool,
        shell_setup: Option<&str>,
    ) -> Self {
        let stderr = match log_file {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
            None if std::env::var_os("TEST_LOG").is_some() => Stdio::inherit(),
            None => Stdio::null(),
        };
        let mut command = match shell_setup {
            None => Command::new(vellum_binary()),
            Some(setup) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("{setup} && exec \"$0\" \"$@\""))
                    .arg(vellum_binary());
                shell
            }
        };
        command
            .arg("serve")
            .args(args)
            .env_remove("VELLUM_LISTEN")
            .env_remove("VELLUM_CONFIG")
            .env_remove("VELLUM_DATABASE_URL")
            .env_remove("VELLUM_API_KEY")
            .env("VELLUM_DATA_DIR", data_dir)
            // No periodic purge unless a test asks for one: many tests send events from long
            // ago, which the pass at start would remove (see `purge.rs` for the ones that do).
            .env("VELLUM_PURGE_INTERVAL", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if default_listen && !args.contains(&"--listen") {
            command.arg("--listen").arg("127.0.0.1:0");
        }
        if let Some(url) = database_url_for(data_dir) {
            command.env("VELLUM_DATABASE_URL", url);
        }
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("vellum starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let address = loop {
            match lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(address) = line.strip_prefix("vellum listening on ") {
                        break address.to_owned();
                    }
                }
                Err(error) => {
                    let status = child.try_wait();
                    panic!("vellum did not report listening ({error}); process status: {status:?}");
                }
            }
        };
        Self {
            child,
            address,
            _stdout_lines: lines,
        }
    }

    /// An absolute URL for a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill_hard(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// Sends a signal (by number) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit, for at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "vellum did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A valid API key secret that tests hand to the binary through `VELLUM_API_KEY`.
pub fn fresh_secret() -> ApiKeySecret {
    vellum_store::generate_api_key_secret().expect("random secret")
}

/// The count after `# pass` or `# fail` in the summary of a Node test run's TAP output.
pub fn tap_summary_count(stdout: &str, label: &str) -> Option<u64> {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&format!("# {label} ")))
        .and_then(|count| count.trim().parse().ok())
}

/// Runs `vellum ARGS…` with `envs`, and nothing from the environment that would pick its store
/// (data directory, config file, database URLs): whether it succeeded, and what it printed.
pub fn run_vellum(args: &[&str], envs: &[(&str, String)]) -> (bool, String) {
    let output = Command::new(vellum_binary())
        .args(args)
        .env_remove("VELLUM_DATA_DIR")
        .env_remove("VELLUM_CONFIG")
        .env_remove("VELLUM_DATABASE_URL")
        .env_remove("VELLUM_COPY_TO")
        .envs(envs.iter().map(|(name, value)| (*name, value.as_str())))
        .output()
        .expect("vellum runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Every event of an organization, read page by page from the server at `address`.
pub async fn all_events_at(client: &reqwest::Client, key: &str, address: &str, organization: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{address}/audit_logs/events?organization_id={organization}&limit=100");
        if let Some(cursor) = &after {
            url.push_str(&format!("&after={cursor}"));
        }
        let response = client.get(&url).bearer_auth(key).send().await.expect("GET events");
        assert_eq!(response.status(), StatusCode::OK, "GET {url}");
        let page: Value = response.json().await.expect("a JSON page");
        events.extend(page["data"].as_array().expect("data").iter().cloned());
        match page["list_metadata"]["after"].as_str() {
            Some(cursor) => after = Some(cursor.to_owned()),
            None => return events,
        }
    }
}
