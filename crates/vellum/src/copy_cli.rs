//! `vellum copy`: moves an embedded store into an empty PostgreSQL database, checking every log
//! before and after, and carrying over the keys that make its checkpoints and links valid.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use vellum_core::checkpoint::NoteVerifier;
use vellum_store::postgres::CopyProgress;
use vellum_store::prelude::*;
use vellum_store::{PostgresConfig, PostgresStore, SqliteConfig, SqliteStore};

use crate::config::Settings;

/// `vellum copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The embedded store's data directory (its server stopped).
    #[arg(long, value_name = "DATA_DIR")]
    from: PathBuf,
    /// The PostgreSQL database to copy into: it must hold no data yet.
    #[arg(long, value_name = "DATABASE_URL", env = "VELLUM_COPY_TO", hide_env_values = true)]
    to: String,
}

/// The names under which PostgreSQL nodes keep the keys a data directory holds in files
/// (`startup.rs` reads them).
const SIGNING_KEY_SECRET: &str = crate::startup::SIGNING_KEY_SECRET;
const LINK_KEY_SECRET: &str = crate::startup::LINK_KEY_SECRET;

/// Runs `vellum copy`; fails unless both stores verify and every log was copied intact.
pub async fn copy(settings: &Settings, args: CopyArgs) -> anyhow::Result<()> {
    let config = SqliteConfig::new(&args.from);
    anyhow::ensure!(
        config.database_path().is_file(),
        "{} holds no embedded store (no {})",
        args.from.display(),
        config.database_path().display()
    );
    let signer = crate::signing::load_existing(settings.signing_key_file.as_deref(), &args.from, &settings.log_name)
        .context("cannot read the signing key of the embedded store")?;
    let verifier =
        NoteVerifier::parse(&signer.verifier_key()).map_err(|error| anyhow::anyhow!("the signing key: {error}"))?;
    let source =
        SqliteStore::open(&config).with_context(|| format!("cannot open the store in {}", args.from.display()))?;

    println!("verifying the embedded store in {}", args.from.display());
    anyhow::ensure!(
        crate::verify::verify_store(&source, &verifier, &settings.log_name, None).await?,
        "the embedded store does not verify: nothing was copied"
    );

    let mut target_config = PostgresConfig::new(args.to.clone());
    target_config.max_connections = settings.database_max_connections;
    target_config.ca_file = settings.database_ca_file.clone();
    let target = PostgresStore::open(&target_config)
        .await
        .context("cannot open the PostgreSQL database named by --to")?;

    // The keys first: a node started on the database meanwhile must find these, not make its own.
    if settings.signing_key_file.is_none() {
        let seed = crate::signing::read_seed(&crate::signing::key_path(None, &args.from))?;
        share_secret(&target, SIGNING_KEY_SECRET, &seed, "log signing key").await?;
    }
    let link_key_path = args.from.join(crate::signing::LINK_KEY_FILE_NAME);
    if link_key_path.is_file() {
        let seed = crate::signing::read_seed(&link_key_path)?;
        share_secret(&target, LINK_KEY_SECRET, &seed, "export link key").await?;
    }
    let stream_key_path = args.from.join(crate::signing::STREAM_KEY_FILE_NAME);
    if stream_key_path.is_file() {
        let seed = crate::signing::read_seed(&stream_key_path)?;
        share_secret(&target, crate::startup::STREAM_KEY_SECRET, &seed, "log stream key").await?;
    }

    println!("copying into PostgreSQL");
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut report = |progress: CopyProgress| match progress {
        CopyProgress::Table { name, rows } => println!("  {name}: {rows} rows"),
        CopyProgress::Events {
            organization_id,
            copied,
            size,
        } => {
            if copied == size || last_report.elapsed().as_secs() >= 5 {
                last_report = Instant::now();
                println!("  events of {organization_id}: {copied} of {size}");
            }
        }
    };
    let summary = target
        .copy_from_embedded(&source, &mut report)
        .await
        .context("the copy failed and was rolled back: the database is as it was")?;
    source.close().await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "copied {} events in {} logs in {seconds:.1} s; every log has the same size and root as before",
        summary.events(),
        summary.logs.len()
    );

    println!("verifying the PostgreSQL copy");
    let verified = crate::verify::verify_store(&target, &verifier, &settings.log_name, None).await?;
    target.close().await?;
    anyhow::ensure!(verified, "the PostgreSQL copy does not verify");
    let signed = summary.logs.iter().filter(|log| log.checkpoint_size.is_some()).count();
    println!(
        "done: {signed} checkpoints signed before the copy verify against the copy, under the same key ({})",
        signer.verifier_key()
    );
    if summary
        .tables
        .iter()
        .any(|(name, rows)| *name == "exports" && *rows > 0)
    {
        println!(
            "note: export files stay where they are ({}, or your S3 bucket); give every node the \
             same export storage to keep serving them",
            args.from.join("exports").display()
        );
    }
    if settings.signing_key_file.is_some() {
        println!("note: start every node with the same --signing-key-file");
    }
    Ok(())
}

/// Stores `seed` under `name` in the database, or fails if it already holds another.
async fn share_secret(target: &PostgresStore, name: &str, seed: &[u8; 32], what: &str) -> anyhow::Result<()> {
    let stored = target.shared_secret(name, seed).await?;
    anyhow::ensure!(
        stored == seed,
        "the database already holds another {what} (a node was started on it): copy into a new database"
    );
    Ok(())
}
