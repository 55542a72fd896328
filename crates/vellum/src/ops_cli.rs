//! `vellum backup`, `vellum restore` and `vellum events tail`: what an operator runs beside the
//! server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use vellum_store::sqlite::BackupFile;

use crate::config::Settings;
use crate::signing::{LINK_KEY_FILE_NAME, STREAM_KEY_FILE_NAME};

/// `vellum backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup file to write (it must not exist). It holds the keys too: keep it as safe as
    /// the data directory.
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
}

/// `vellum restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file (written by `vellum backup`).
    file: PathBuf,
}

/// The keys a data directory holds, which a backup carries: the log signing key (the
/// configured file's, if one is configured), the export link key and the log stream key.
fn key_files(settings: &Settings) -> anyhow::Result<Vec<BackupFile>> {
    let signing = crate::signing::key_path(settings.signing_key_file.as_deref(), &settings.data_dir);
    let mut files = Vec::new();
    for (name, path) in [
        (crate::signing::KEY_FILE_NAME, signing),
        (LINK_KEY_FILE_NAME, settings.data_dir.join(LINK_KEY_FILE_NAME)),
        (STREAM_KEY_FILE_NAME, settings.data_dir.join(STREAM_KEY_FILE_NAME)),
    ] {
        match std::fs::read(&path) {
            Ok(contents) => files.push(BackupFile {
                name: name.to_owned(),
                contents,
            }),
            // Made at the server's first start; a store never served has none yet.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("note: {} does not exist; the backup does not carry it", path.display());
            }
            Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    Ok(files)
}

/// Writes an online backup of the embedded store.
pub fn backup(settings: &Settings, args: &BackupArgs) -> anyhow::Result<()> {
    if settings.database_url.is_some() {
        anyhow::bail!(
            "vellum backup is for the embedded store; back PostgreSQL up with its own tools \
             (pg_dump, or base backups with WAL archiving) and keep the signing key file if one is \
             configured: see docs/operations.md"
        );
    }
    vellum_store::private_files::restrict_umask();
    let files = key_files(settings)?;
    let summary = vellum_store::sqlite::backup(&settings.data_dir, &args.output, &files)
        .with_context(|| format!("cannot back up {}", settings.data_dir.display()))?;
    println!(
        "backed up {} to {} ({} bytes, schema version {}; with {})",
        settings.data_dir.display(),
        summary.path.display(),
        summary.bytes,
        summary.schema_version,
        if summary.files.is_empty() {
            "no keys".to_owned()
        } else {
            summary.files.join(", ")
        }
    );
    Ok(())
}

/// Lays a backup down into an empty data directory.
pub fn restore(settings: &Settings, args: &RestoreArgs) -> anyhow::Result<()> {
    if settings.database_url.is_some() {
        anyhow::bail!("vellum restore lays down an embedded store into --data-dir; it does not write to PostgreSQL");
    }
    vellum_store::private_files::restrict_umask();
    let summary = vellum_store::sqlite::restore(&args.file, &settings.data_dir)
        .with_context(|| format!("cannot restore {}", args.file.display()))?;
    let names: Vec<String> = summary
        .files
        .iter()
        .filter_map(|path| path.file_name().map(|name| name.to_string_lossy().into_owned()))
        .collect();
    println!(
        "restored {} into {} (schema version {}; with {}); check it with: vellum verify store --data-dir {}",
        args.file.display(),
        settings.data_dir.display(),
        summary.schema_version,
        if names.is_empty() {
            "no keys".to_owned()
        } else {
            names.join(", ")
        },
        shell_word(&settings.data_dir)
    );
    Ok(())
}

fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b"/._-".contains(&byte))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// `vellum events tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    server: crate::export_cli::ServerArgs,
    /// The organization (`org_…`).
    #[arg(long)]
    organization: String,
    #[command(flatten)]
    filters: crate::cli::EventFilterArgs,
    /// Start after this log index instead of at the log's head (the events after it are
    /// printed first).
    #[arg(long, value_name = "LOG_INDEX")]
    after: Option<u64>,
}

/// The longest wait between two reconnections.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);

/// Prints an organization's new events as they are stored, one JSON object per line, until
/// interrupted; reconnects by itself and resumes after the last event printed.
pub async fn tail(args: TailArgs) -> anyhow::Result<()> {
    let mut url = reqwest::Url::parse(&format!(
        "{}/audit_logs/events/stream",
        args.server.url.trim_end_matches('/')
    ))
    .with_context(|| format!("invalid server URL {}", args.server.url))?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("organization_id", &args.organization);
        for (name, values) in [
            ("actions", &args.filters.actions),
            ("actor_ids", &args.filters.actor_ids),
            ("actor_names", &args.filters.actor_names),
            ("targets", &args.filters.target_types),
            ("target_ids", &args.filters.target_ids),
        ] {
            for value in values {
                query.append_pair(name, value);
            }
        }
        if let Some(search) = &args.filters.search {
            query.append_pair("search", search);
        }
    }
    // Keep-alives arrive every 15 seconds: three missed ones mean the connection is dead.
    let client = reqwest::Client::builder()
        .read_timeout(vellum_http::TAIL_KEEP_ALIVE * 3)
        .build()?;
    let mut last = args.after;
    let mut delay = Duration::from_millis(500);
    loop {
        let mut request = client.get(url.clone()).bearer_auth(&args.server.api_key);
        if let Some(last) = last {
            request = request.header("last-event-id", last.to_string());
        }
        let outcome = match request.send().await {
            Ok(response) if response.status().is_success() => {
                delay = Duration::from_millis(500);
                follow(response, &mut last).await
            }
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
                    return Err(crate::export_cli::api_error(
                        "the server refused the tail",
                        status,
                        &body,
                    ));
                }
                Err(anyhow::anyhow!("the server answered {status}"))
            }
            Err(error) => Err(anyhow::Error::from(error).context("cannot reach the server")),
        };
        match outcome {
            Ok(Followed::Closed) => eprintln!("the server closed the tail; reconnecting"),
            Ok(Followed::OutputClosed) => return Ok(()),
            Err(error) => eprintln!(
                "{}; retrying in {} s",
                crate::terminal::text(&format!("{error:#}")),
                delay.as_secs_f32()
            ),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RECONNECT_DELAY);
    }
}

/// How reading one connection's events ended.
enum Followed {
    /// The server ended the stream (or the connection dropped).
    Closed,
    /// Standard output was closed (`| head`): stop quietly.
    OutputClosed,
}

/// Prints each event of one connection and remembers its log index.
async fn follow(mut response: reqwest::Response, last: &mut Option<u64>) -> anyhow::Result<Followed> {
    let mut buffer: Vec<u8> = Vec::new();
    let stdout = std::io::stdout();
    loop {
        let Some(chunk) = response.chunk().await? else {
            return Ok(Followed::Closed);
        };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.windows(2).position(|window| window == b"\n\n") {
            let message: Vec<u8> = buffer.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&message);
            let (mut id, mut data) = (None, String::new());
            for line in text.lines() {
                if let Some(value) = line.strip_prefix("id:") {
                    id = value.trim().parse::<u64>().ok();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            if data.is_empty() {
                continue;
            }
            let mut out = stdout.lock();
            if writeln!(out, "{data}").and_then(|()| out.flush()).is_err() {
                return Ok(Followed::OutputClosed);
            }
            if id.is_some() {
                *last = id;
            }
        }
        // A message is at most one event (well under the 1 MiB an event may hold, rendered).
        if buffer.len() > 16 * 1024 * 1024 {
            anyhow::bail!("the server sent a message larger than 16 MiB");
        }
    }
}
