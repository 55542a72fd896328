//! `vellum export` (an export through a server's API, downloaded to a file) and
//! `vellum verify export` (an NDJSON export checked offline).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use vellum_core::checkpoint::NoteVerifier;
use vellum_core::export::ExportVerifier;

/// The file format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// WorkOS's CSV.
    Csv,
    /// Verifiable NDJSON (check it with `vellum verify export`).
    Ndjson,
}

/// The running server a command talks to, and its API key (`vellum export`, `vellum events tail`).
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The server.
    #[arg(long, env = "VELLUM_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key.
    #[arg(long, env = "VELLUM_API_KEY", hide_env_values = true)]
    pub api_key: String,
}

/// `vellum export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The organization (`org_…`).
    #[arg(long)]
    organization: String,
    /// Events that occurred at or after this time (RFC 3339) [default: the beginning].
    #[arg(long)]
    range_start: Option<String>,
    /// Events that occurred before this time (RFC 3339) [default: now].
    #[arg(long)]
    range_end: Option<String>,
    /// Only these actions (repeatable).
    #[arg(long = "action")]
    actions: Vec<String>,
    /// Only these actor names (repeatable).
    #[arg(long = "actor-name")]
    actor_names: Vec<String>,
    /// Only these actor ids (repeatable).
    #[arg(long = "actor-id")]
    actor_ids: Vec<String>,
    /// Only events with a target of these types (repeatable).
    #[arg(long = "target")]
    targets: Vec<String>,
    /// The file format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Where to write the file [default: EXPORT_ID.csv or .ndjson in the current directory].
    #[arg(long)]
    output: Option<PathBuf>,
}

pub(crate) fn api_error(context: &str, status: reqwest::StatusCode, body: &str) -> anyhow::Error {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|value| value["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    anyhow::anyhow!("{context}: {status}: {}", crate::terminal::text(&message))
}

/// Shows progress on standard error when it is a terminal; says nothing otherwise.
struct Progress {
    enabled: bool,
    started: Instant,
}

impl Progress {
    fn show(&self, text: &str) {
        if self.enabled {
            // Only this line's own escape (erase the line) reaches the terminal, never the text's.
            eprint!(
                "\r\x1b[2K{} ({:.0} s)",
                crate::terminal::text(text),
                self.started.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
    }

    fn done(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

/// Runs `vellum export`.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .user_agent(concat!("vellum-cli/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let base = args.server.url.trim_end_matches('/');
    let now = vellum_store::now();
    let range_end = match args.range_end {
        Some(text) => text,
        None => vellum_core::Timestamp::from_unix_millis(now.unix_millis() + 1)
            .unwrap_or(now)
            .to_wire(),
    };
    let body = json!({
        "organization_id": args.organization,
        // The beginning is the earliest time an event can have, not the Unix epoch.
        "range_start": args.range_start.unwrap_or_else(|| vellum_core::Timestamp::MIN.to_wire()),
        "range_end": range_end,
        "actions": args.actions,
        "actor_names": args.actor_names,
        "actor_ids": args.actor_ids,
        "targets": args.targets,
        "format": match args.format { Format::Csv => "csv", Format::Ndjson => "ndjson" },
    });
    let progress = Progress {
        enabled: std::io::stderr().is_terminal(),
        started: Instant::now(),
    };
    let response = client
        .post(format!("{base}/audit_logs/exports"))
        .bearer_auth(&args.server.api_key)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        return Err(api_error("the export was refused", status, &text));
    }
    let mut export: Value = serde_json::from_str(&text).context("the server's answer is not JSON")?;
    // The id names the output file and the next URLs: only an export id is taken.
    let id = export["id"]
        .as_str()
        .and_then(|text| vellum_core::ExportId::parse(text).ok())
        .context("the server's answer has no valid export id")?;
    while export["state"] == "pending" {
        progress.show(&format!("{id}: exporting"));
        tokio::time::sleep(Duration::from_millis(250)).await;
        let response = client
            .get(format!("{base}/audit_logs/exports/{id}"))
            .bearer_auth(&args.server.api_key)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(api_error("cannot read the export", status, &text));
        }
        export = serde_json::from_str(&text)?;
    }
    if export["state"] != "ready" {
        progress.done();
        anyhow::bail!(
            "export {id} ended in state `{}`: {}",
            export["state"].as_str().unwrap_or("?"),
            export["error"].as_str().unwrap_or("no reason given")
        );
    }
    let url = export["url"].as_str().context("the ready export has no url")?;
    let output = args
        .output
        .unwrap_or_else(|| PathBuf::from(format!("{id}.{}", export["format"].as_str().unwrap_or("csv"))));
    let mut response = client.get(url).send().await?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(api_error("the download was refused", status, &text));
    }
    let total = response.content_length();
    // Write next to the destination, then rename: a reader never sees half a file.
    let partial = output.with_extension("partial");
    let mut file = std::fs::File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let mut written = 0u64;
    while let Some(chunk) = response.chunk().await? {
        file.write_all(&chunk)?;
        written += chunk.len() as u64;
        let share = total.map(|total| format!(" of {total}")).unwrap_or_default();
        progress.show(&format!("{id}: downloaded {written}{share} bytes"));
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(&partial, &output).with_context(|| format!("cannot write {}", output.display()))?;
    progress.done();
    println!(
        "{} events exported to {}",
        export["events"]
            .as_u64()
            .map_or_else(|| "?".to_owned(), |count| count.to_string()),
        crate::terminal::text(&output.display().to_string())
    );
    Ok(())
}

/// Runs `vellum verify export`; `Ok(false)` when the export is not intact (the problem is printed).
pub fn verify_export(path: &Path, key: &NoteVerifier) -> anyhow::Result<bool> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        ))
    };
    let mut verifier = ExportVerifier::new(key);
    let mut reader = reader;
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        if let Err(problem) = verifier.push_line(content) {
            println!(
                "FAILED {}: {}",
                crate::terminal::text(&path.display().to_string()),
                crate::terminal::text(&problem.to_string())
            );
            return Ok(false);
        }
    }
    match verifier.finish() {
        Ok(summary) => {
            println!(
                "OK {}: {} events and {} omitted entries{} at positions {}..{} of log {} are in the signed \
                 checkpoint of size {}",
                crate::terminal::text(&path.display().to_string()),
                summary.events,
                summary.omitted,
                [
                    (summary.purged, "entries removed by purges"),
                    (
                        summary.erased,
                        "events with personal data erased (each naming its erasure records)"
                    )
                ]
                .iter()
                .filter(|(count, _)| *count > 0)
                .map(|(count, what)| format!(" and {count} {what}"))
                .collect::<String>(),
                summary.start,
                summary.end,
                crate::terminal::text(&summary.origin),
                summary.tree_size
            );
            Ok(true)
        }
        Err(problem) => {
            println!(
                "FAILED {}: {}",
                crate::terminal::text(&path.display().to_string()),
                crate::terminal::text(&problem.to_string())
            );
            Ok(false)
        }
    }
}
