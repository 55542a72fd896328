//! For tests: a private PostgreSQL server and one fresh database per test.
//!
//! The server is the one `VELLUM_TEST_DATABASE_URL` names (a superuser URL; `scripts/test`
//! starts one cluster for the whole run and sets it), or else a private cluster this process
//! starts once from the installed server binaries (`initdb`, `pg_ctl`; under `runuser -u
//! postgres` when running as root, since PostgreSQL refuses to run as root), in a temporary
//! directory, with durability off. A watcher process stops that cluster and deletes its
//! directory when this process exits. Failing to start it is a test failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The environment variable naming an existing server to create test databases on.
pub const TEST_DATABASE_URL_ENV: &str = "VELLUM_TEST_DATABASE_URL";

/// The directory of the PostgreSQL server binaries: `VELLUM_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else whatever `initdb` is on the `PATH`.
pub fn server_binaries() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("VELLUM_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .map_err(|error| format!("cannot look for initdb: {error}"))?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    match Path::new(&path).parent() {
        Some(dir) if found.status.success() && !path.is_empty() => Ok(dir.to_path_buf()),
        _ => Err(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed; install them, or set \
                  VELLUM_PG_BIN or VELLUM_TEST_DATABASE_URL"
                .into(),
        ),
    }
}

fn running_as_root() -> bool {
    rustix::process::getuid().is_root()
}

/// A command for the cluster's own user: `postgres` when we are root.
fn as_cluster_user(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run {what}: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

/// Starts a private cluster and returns its superuser URL.
fn start_private_cluster() -> Result<String, String> {
    let bin = server_binaries()?;
    let dir = tempfile::Builder::new()
        .prefix("vellum-test-pg-")
        .tempdir()
        .map_err(|error| format!("cannot create a directory for PostgreSQL: {error}"))?
        .keep();
    if running_as_root() {
        run(
            Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir),
            "chown of the PostgreSQL directory",
        )?;
    }
    let data = dir.join("data");
    run(
        as_cluster_user(&bin.join("initdb")).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]),
        "initdb",
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|error| format!("cannot find a free port: {error}"))?
        .port();
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB",
        dir.display()
    );
    run(
        as_cluster_user(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]),
        "pg_ctl start",
    )?;
    // Stop the cluster and remove its files once this process is gone, however it ends.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        runuser = if running_as_root() {
            "runuser -u postgres -- "
        } else {
            ""
        },
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("setsid")
        .args(["sh", "-c", &stop])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot start the PostgreSQL watcher: {error}"))?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable"))
}

/// The superuser URL of the test server (started on first use).
///
/// # Panics
/// If no server can be started: the tests that need one fail, loudly.
pub fn server_url() -> String {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| match std::env::var(TEST_DATABASE_URL_ENV) {
            Ok(url) if !url.is_empty() => Ok(url),
            _ => start_private_cluster(),
        })
        .clone()
        .unwrap_or_else(|error| panic!("cannot start PostgreSQL for the tests: {error}"))
}

/// A URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |at| at + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// A client of the test server at `url` (its connection runs on the current runtime).
///
/// # Panics
/// If the server cannot be reached.
async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to the test PostgreSQL server: {error}"));
    tokio::spawn(connection);
    client
}

/// Runs `work` to completion on a thread with its own runtime, so that it can be called inside or
/// outside one (from `Drop`, from synchronous tests). `Err` when it panicked.
fn on_own_runtime<T, F>(work: impl FnOnce() -> F + Send + 'static) -> std::thread::Result<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(work())
    })
    .join()
}

/// A fresh, empty database on the test server, dropped (with any connection left) on drop.
pub struct TestDatabase {
    url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// Creates one.
    ///
    /// # Panics
    /// If the server cannot be reached or the database created.
    pub async fn create() -> Self {
        Self::create_on(&server_url())
            .await
            .unwrap_or_else(|error| panic!("cannot create a test database: {error}"))
    }

    /// Creates one on the server of `admin_url` (a URL whose user may create databases), for
    /// the benchmark harness, which measures on a server of its caller's choosing.
    pub async fn create_on(admin_url: &str) -> Result<Self, String> {
        let name = format!("vellum_test_{}", ulid::Ulid::generate().to_string().to_lowercase());
        let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
            .await
            .map_err(|error| format!("cannot connect to {}: {error}", redacted(admin_url)))?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!("create database {name}"))
            .await
            .map_err(|error| format!("cannot create a database: {error}"))?;
        Ok(Self {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let drop_database = format!("drop database if exists {} with (force)", self.name);
        // Best effort: the whole cluster is thrown away at the end of the run anyway.
        let _ = on_own_runtime(async move || connect(&admin_url).await.batch_execute(&drop_database).await);
    }
}

/// The URL of the database `name` on the server of `admin_url`, created if missing and kept
/// (the benchmark harness's measured store, reused and filled further by later runs).
pub async fn kept_database_on(admin_url: &str, name: &str) -> Result<String, String> {
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!("`{name}` is not a plain database name"));
    }
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .map_err(|error| format!("cannot connect to {}: {error}", redacted(admin_url)))?;
    tokio::spawn(connection);
    let exists = client
        .query_opt("select 1 from pg_database where datname = $1", &[&name])
        .await
        .map_err(|error| format!("cannot look the database up: {error}"))?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("create database {name}"))
            .await
            .map_err(|error| format!("cannot create a database: {error}"))?;
    }
    Ok(with_database(admin_url, name))
}

/// The bytes a database takes on disk (`pg_database_size`: tables, indexes, TOAST).
pub async fn database_size(url: &str) -> Result<u64, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|error| format!("cannot connect to {}: {error}", redacted(url)))?;
    tokio::spawn(connection);
    let size: i64 = client
        .query_one("select pg_database_size(current_database())", &[])
        .await
        .map_err(|error| format!("cannot read the database size: {error}"))?
        .get(0);
    Ok(size.unsigned_abs())
}

/// The URL of a database on the test server named after `key`, created on first use and kept
/// (for a server restarted over the same data directory). Usable outside a runtime.
///
/// # Panics
/// If the server cannot be reached or the database created.
pub fn database_for_key(key: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    let name = format!("vellum_test_key_{:016x}", hasher.finish());
    let admin_url = server_url();
    let (url, database) = (admin_url.clone(), name.clone());
    on_own_runtime(async move || {
        let client = connect(&url).await;
        let exists = client
            .query_opt("select 1 from pg_database where datname = $1", &[&database])
            .await
            .expect("look the database up")
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("create database {database}"))
                .await
                .unwrap_or_else(|error| panic!("cannot create a test database: {error}"));
        }
    })
    .expect("the database is created");
    with_database(&admin_url, &name)
}

/// Runs SQL on a database (to tamper with it by hand in tests). Usable outside a runtime.
pub fn execute(url: &str, sql: &str) -> u64 {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    on_own_runtime(async move || {
        connect(&url)
            .await
            .execute(sql.as_str(), &[])
            .await
            .expect("the SQL runs")
    })
    .expect("the SQL is run")
}

/// For every table of a database's public schema: its name, row count and a hash of its rows
/// (to check that a refused request changed nothing). Usable outside a runtime.
pub fn table_digests(url: &str) -> Vec<(String, u64, u64)> {
    let url = url.to_owned();
    on_own_runtime(async move || {
        let client = connect(&url).await;
        let tables: Vec<String> = client
            .query(
                "select tablename::text from pg_tables where schemaname = 'public' order by tablename",
                &[],
            )
            .await
            .expect("list tables")
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut digests = Vec::new();
        for table in tables {
            let row = client
                .query_one(
                    &format!(
                        "select count(*), coalesce(('x' || substr(md5(string_agg(t::text, '|' order by t::text)), 1, 15))::bit(60)::bigint, 0) from \"{table}\" t"
                    ),
                    &[],
                )
                .await
                .expect("digest a table");
            let count: i64 = row.get(0);
            let hash: i64 = row.get(1);
            digests.push((table, count.unsigned_abs(), hash.unsigned_abs()));
        }
        digests
    })
    .expect("digests are read")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_name_replaces_the_url_path() {
        assert_eq!(
            super::with_database("postgres://u@h:5/postgres?sslmode=disable", "t1"),
            "postgres://u@h:5/t1?sslmode=disable"
        );
        assert_eq!(super::with_database("postgres://u@h:5", "t1"), "postgres://u@h:5/t1");
    }
}
