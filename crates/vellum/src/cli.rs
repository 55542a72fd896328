//! The `vellum` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use vellum_core::{ApiKeyId, NewOrganization, PageRequest};
use vellum_store::{OrganizationFilter, SqliteConfig};

use crate::config::{FileConfig, LogFormat, Overrides, Settings};
use crate::startup::{Application, open_store, shutdown_signal};
use crate::terminal;

/// Vellum: a self-hosted, tamper-evident audit log that speaks the WorkOS Audit Logs API.
#[derive(Debug, Parser)]
#[command(name = "vellum", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,

    /// A TOML configuration file (flags and VELLUM_* variables override it).
    #[arg(long, env = "VELLUM_CONFIG", global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Where the embedded store keeps its files [default: ./vellum-data].
    #[arg(long, env = "VELLUM_DATA_DIR", global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// A PostgreSQL URL to use instead of the embedded store.
    #[arg(
        long,
        env = "VELLUM_DATABASE_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,

    /// The most connections to PostgreSQL this process opens [default: 16].
    #[arg(long, env = "VELLUM_DATABASE_MAX_CONNECTIONS", global = true, value_name = "N")]
    database_max_connections: Option<usize>,

    /// Certificate authorities (PEM) to trust for TLS to PostgreSQL, besides the system's.
    #[arg(long, env = "VELLUM_DATABASE_CA_FILE", global = true, value_name = "FILE")]
    database_ca_file: Option<PathBuf>,

    /// How logs are written to standard error [default: text].
    #[arg(long, env = "VELLUM_LOG_FORMAT", global = true, value_enum)]
    log_format: Option<LogFormat>,

    /// This deployment's log name: the checkpoint signing key's name and the first part of each
    /// checkpoint origin [default: vellum].
    #[arg(long, env = "VELLUM_LOG_NAME", global = true, value_name = "NAME")]
    log_name: Option<String>,

    /// The log signing key (base64 Ed25519 seed) [default: DATA_DIR/log-signing-key, created on
    /// first start].
    #[arg(long, env = "VELLUM_SIGNING_KEY_FILE", global = true, value_name = "FILE")]
    signing_key_file: Option<PathBuf>,

    /// Days the events of an organization that set no retention period are kept: 30 to 330 in
    /// steps of 30, or 365 to 3650 in steps of 365 [default: 365].
    #[arg(long, env = "VELLUM_DEFAULT_RETENTION_DAYS", global = true, value_name = "DAYS")]
    default_retention_days: Option<u32>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the HTTP server.
    Serve(ServeArgs),
    /// Applies pending schema migrations to the store, then exits.
    Migrate,
    /// Creates, lists and revokes API keys.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeysCommand),
    /// Creates and lists operators: the accounts that sign in to the dashboard.
    #[command(subcommand)]
    Operators(OperatorsCommand),
    /// Creates and lists organizations.
    #[command(subcommand)]
    Organizations(OrganizationsCommand),
    /// Creates and lists event schemas (actions and their versions).
    #[command(subcommand)]
    Schemas(SchemasCommand),
    /// Reads events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Exports an organization's events through a running server's API and downloads the file.
    Export(crate::export_cli::ExportArgs),
    /// Moves an embedded store into an empty PostgreSQL database, every log intact: verifies it,
    /// copies it in one transaction (with its signing and link keys), verifies the copy.
    Copy(crate::copy_cli::CopyArgs),
    /// Writes a consistent backup of the embedded store while the server runs: one file with
    /// the database and the keys of the data directory (signing, export link, log stream).
    Backup(crate::ops_cli::BackupArgs),
    /// Lays a backup down as the store of an empty --data-dir, keys included.
    Restore(crate::ops_cli::RestoreArgs),
    /// Runs one purge pass: deletes the events past each organization's retention (organizations
    /// under a legal hold excepted), records each deletion in the organization's log, and gives
    /// the space back. Prints what it removed per organization.
    Purge(PurgeArgs),
    /// Checks that a log or an export was never edited, reordered or trimmed.
    #[command(subcommand)]
    Verify(VerifyCommand),
    /// Prints the OpenAPI document of the API (what `GET /openapi.json` serves; committed as
    /// `docs/openapi.json`: `vellum openapi > docs/openapi.json` regenerates it).
    Openapi,
}

#[derive(Debug, Subcommand)]
enum OperatorsCommand {
    /// Creates an operator; the password is read from standard input (its first line).
    Create {
        /// The operator's email address, used to sign in.
        #[arg(long)]
        email: String,
    },
    /// Sets a new password (read from standard input) and signs the operator out everywhere.
    SetPassword {
        /// The operator's email address.
        #[arg(long)]
        email: String,
    },
    /// Lists operators.
    List,
}

#[derive(Debug, Subcommand)]
enum VerifyCommand {
    /// Checks every log of the store directly: the embedded store in --data-dir, or PostgreSQL
    /// with --database-url (the server may be running).
    Store {
        /// Only this organization's log.
        #[arg(long)]
        organization: Option<String>,
        /// The public key to check checkpoints against (verifier key or base64) [default: the
        /// key in the data directory].
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Checks a live organization's log over HTTP, recomputing every leaf from event content.
    Log {
        /// The server, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        url: String,
        /// An API key.
        #[arg(long, env = "VELLUM_VERIFY_API_KEY", hide_env_values = true)]
        api_key: String,
        /// The organization whose log to check.
        #[arg(long)]
        organization: String,
        /// The pinned public key (the `verifier_key` or base64 `public_key` of
        /// /audit_logs/log/public_key) [default: remembered in --state, else trusted on first use].
        #[arg(long)]
        public_key: Option<String>,
        /// A file remembering the last verified checkpoint: the next run also checks that the log
        /// only grew since.
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Checks an NDJSON export offline: every event re-hashes to its leaf, and the leaves are the
    /// contiguous slice of the log that the export's signed checkpoint covers.
    Export {
        /// The NDJSON export file (`-` for standard input).
        file: PathBuf,
        /// The log's public key: the `verifier_key` or the base64 `public_key` of
        /// /audit_logs/log/public_key.
        #[arg(long)]
        public_key: String,
    },
}

#[derive(Debug, Subcommand)]
enum SchemasCommand {
    /// Creates the next schema version of an action (creating the action if it is new).
    Create {
        /// The action, e.g. `user.signed_in`.
        action: String,
        /// A JSON file with the schema, as the API takes it: {"targets": [{"type": ...}], ...}.
        #[arg(long, value_name = "FILE", conflicts_with = "target")]
        file: Option<PathBuf>,
        /// An allowed target type, without metadata schemas (repeat for several).
        #[arg(long = "target", value_name = "TYPE")]
        target: Vec<String>,
    },
    /// Lists actions with their latest version, or the versions of one action.
    List {
        /// Only this action's versions.
        action: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Lists an organization's events, newest first.
    List(EventsListArgs),
    /// Follows an organization's new events through a running server's live tail, printing
    /// one JSON object per line; reconnects and resumes by itself.
    Tail(crate::ops_cli::TailArgs),
}

#[derive(Debug, Args)]
struct EventsListArgs {
    /// The organization (`org_…`).
    #[arg(long)]
    organization: String,
    #[command(flatten)]
    filters: EventFilterArgs,
    /// Only events that occurred at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only events that occurred before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// How many (1-100).
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Continue after this event id (the `after` cursor printed by the previous page).
    #[arg(long)]
    after: Option<String>,
    /// Print one JSON object per line (the API's event form) instead of a table.
    #[arg(long)]
    json: bool,
}

/// The list filters and search of a listing, shared by `events list` and `events tail`.
#[derive(Debug, Args)]
pub struct EventFilterArgs {
    /// Only these actions (repeatable).
    #[arg(long = "action")]
    pub actions: Vec<String>,
    /// Only these actor ids (repeatable).
    #[arg(long = "actor-id")]
    pub actor_ids: Vec<String>,
    /// Only these actor names (repeatable).
    #[arg(long = "actor-name")]
    pub actor_names: Vec<String>,
    /// Only events with a target of these types (repeatable).
    #[arg(long = "target-type")]
    pub target_types: Vec<String>,
    /// Only events with a target of these ids (repeatable).
    #[arg(long = "target-id")]
    pub target_ids: Vec<String>,
    /// Only events containing this text.
    #[arg(long)]
    pub search: Option<String>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "VELLUM_LISTEN", value_name = "HOST:PORT")]
    listen: Option<String>,

    /// Proxies whose X-Forwarded-For names the client (for the sign-in throttle, portal
    /// records and logs): comma-separated addresses and networks, e.g. 10.0.0.0/8,::1
    /// [default: none; the connection's address is the client's].
    #[arg(long, env = "VELLUM_TRUSTED_PROXIES", value_name = "NETWORKS")]
    trusted_proxies: Option<String>,

    /// Serve GET /metrics on this address of its own instead of on --listen (e.g.
    /// 127.0.0.1:9464) [default: on --listen].
    #[arg(long, env = "VELLUM_METRICS_LISTEN", value_name = "HOST:PORT")]
    metrics_listen: Option<String>,

    /// A per-API-key request budget, REQUESTS/SECONDS (e.g. 6000/60) [default: unlimited].
    #[arg(long, env = "VELLUM_RATE_LIMIT", value_name = "N/SECONDS")]
    rate_limit: Option<String>,

    /// The URL clients reach this server at, for export download links [default: http:// and
    /// the request's Host header].
    #[arg(long, env = "VELLUM_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,

    /// Exports running at once [default: 2].
    #[arg(long, env = "VELLUM_EXPORT_WORKERS", value_name = "N")]
    export_workers: Option<usize>,

    /// Seconds between two purge passes, which delete events past their organization's
    /// retention; 0 turns them off (run `vellum purge` instead) [default: 3600].
    #[arg(long, env = "VELLUM_PURGE_INTERVAL", value_name = "SECONDS")]
    purge_interval: Option<u64>,

    /// Let log streams deliver to loopback, private and link-local addresses, and to plain
    /// http:// URLs (development; destinations on your own network) [default: false].
    #[arg(
        long,
        env = "VELLUM_STREAM_ALLOW_PRIVATE_DESTINATIONS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    stream_allow_private_destinations: Option<bool>,

    /// The application's name, shown at the top of the Admin Portal [default: none].
    #[arg(long, env = "VELLUM_PORTAL_NAME", value_name = "NAME")]
    portal_name: Option<String>,

    /// The application's logo in the Admin Portal: a .png, .svg, .jpg or .webp file of at most
    /// 256 KiB [default: none].
    #[arg(long, env = "VELLUM_PORTAL_LOGO", value_name = "FILE")]
    portal_logo: Option<PathBuf>,

    /// Origins whose pages may embed the audit log viewer, comma-separated
    /// (https://app.example.com,https://admin.example.com) [default: none].
    #[arg(long, env = "VELLUM_VIEWER_ALLOWED_ORIGINS", value_name = "ORIGINS")]
    viewer_allowed_origins: Option<String>,

    /// Keep export files in this S3-compatible bucket instead of DATA_DIR/exports (credentials
    /// from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "VELLUM_EXPORT_S3_BUCKET", value_name = "BUCKET")]
    export_s3_bucket: Option<String>,

    /// The S3 endpoint, for S3-compatible storage other than AWS (e.g. http://127.0.0.1:9000).
    #[arg(long, env = "VELLUM_EXPORT_S3_ENDPOINT", value_name = "URL")]
    export_s3_endpoint: Option<String>,

    /// The bucket's region [default: AWS_REGION, else us-east-1].
    #[arg(long, env = "VELLUM_EXPORT_S3_REGION", value_name = "REGION")]
    export_s3_region: Option<String>,

    /// Connections open at once; beyond it, the one that waited longest for a request is
    /// closed [default: 4096, lowered to fit the open-file limit].
    #[arg(long, env = "VELLUM_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,

    /// Seconds a client has to send a request's headers [default: 10].
    #[arg(
        long = "header-read-timeout",
        env = "VELLUM_HEADER_READ_TIMEOUT",
        value_name = "SECONDS"
    )]
    header_read_timeout_seconds: Option<u64>,

    /// Seconds a client has to send a request's body after its headers [default: 60].
    #[arg(long = "body-read-timeout", env = "VELLUM_BODY_READ_TIMEOUT", value_name = "SECONDS")]
    body_read_timeout_seconds: Option<u64>,

    /// Seconds a kept-alive connection may wait for its next request [default: 60].
    #[arg(long = "idle-timeout", env = "VELLUM_IDLE_TIMEOUT", value_name = "SECONDS")]
    idle_timeout_seconds: Option<u64>,

    /// Seconds a response may wait for a client that stopped reading it [default: 60].
    #[arg(
        long = "write-stall-timeout",
        env = "VELLUM_WRITE_STALL_TIMEOUT",
        value_name = "SECONDS"
    )]
    write_stall_timeout_seconds: Option<u64>,

    /// Dashboard password checks (argon2id, 19 MiB each) running at once [default: 2].
    #[arg(long, env = "VELLUM_MAX_PASSWORD_CHECKS", value_name = "N")]
    max_password_checks: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum ApiKeysCommand {
    /// Creates a key and prints its secret (once, as the last line).
    Create {
        /// A name to tell the key apart.
        #[arg(long)]
        name: String,
    },
    /// Lists keys (never their secrets).
    List,
    /// Revokes a key: requests with it are refused from then on.
    Revoke {
        /// The key's id (`key_…`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum OrganizationsCommand {
    /// Creates an organization and prints its id as the last line.
    Create {
        /// The organization's name.
        #[arg(long)]
        name: String,
        /// The application's own id for it.
        #[arg(long)]
        external_id: Option<String>,
    },
    /// Lists the newest organizations.
    List {
        /// How many (1-100).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

/// Parses the command line, runs the command and returns the process's exit code.
pub fn run() -> ExitCode {
    // Whatever the umask, files Vellum writes (store, keys, exports) are its user's alone.
    vellum_store::private_files::restrict_umask();
    let cli = Cli::parse();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", terminal::text(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

fn settings(cli: &Cli, serve: Option<&ServeArgs>) -> anyhow::Result<Settings> {
    let file = match &cli.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let overrides = Overrides {
        listen: serve.and_then(|args| args.listen.clone()),
        metrics_listen: serve.and_then(|args| args.metrics_listen.clone()),
        trusted_proxies: serve.and_then(|args| args.trusted_proxies.clone()),
        rate_limit: serve.and_then(|args| args.rate_limit.clone()),
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        database_max_connections: cli.database_max_connections,
        database_ca_file: cli.database_ca_file.clone(),
        api_key: std::env::var("VELLUM_API_KEY").ok(),
        log_format: cli.log_format,
        log_name: cli.log_name.clone(),
        signing_key_file: cli.signing_key_file.clone(),
        default_retention_days: cli.default_retention_days,
        public_url: serve.and_then(|args| args.public_url.clone()),
        export_workers: serve.and_then(|args| args.export_workers),
        purge_interval_seconds: serve.and_then(|args| args.purge_interval),
        stream_allow_private_destinations: serve.and_then(|args| args.stream_allow_private_destinations),
        portal_name: serve.and_then(|args| args.portal_name.clone()),
        portal_logo: serve.and_then(|args| args.portal_logo.clone()),
        viewer_allowed_origins: serve.and_then(|args| args.viewer_allowed_origins.clone()),
        export_s3_bucket: serve.and_then(|args| args.export_s3_bucket.clone()),
        export_s3_endpoint: serve.and_then(|args| args.export_s3_endpoint.clone()),
        export_s3_region: serve.and_then(|args| args.export_s3_region.clone()),
        max_connections: serve.and_then(|args| args.max_connections),
        header_read_timeout_seconds: serve.and_then(|args| args.header_read_timeout_seconds),
        body_read_timeout_seconds: serve.and_then(|args| args.body_read_timeout_seconds),
        idle_timeout_seconds: serve.and_then(|args| args.idle_timeout_seconds),
        write_stall_timeout_seconds: serve.and_then(|args| args.write_stall_timeout_seconds),
        max_password_checks: serve.and_then(|args| args.max_password_checks),
        // Only `serve` bootstraps the operator account; other commands ignore these.
        admin_email: serve.and_then(|_| std::env::var("VELLUM_ADMIN_EMAIL").ok()),
        admin_password: serve.and_then(|_| std::env::var("VELLUM_ADMIN_PASSWORD").ok()),
        dashboard_dir: serve.and_then(|_| std::env::var_os("VELLUM_DASHBOARD_DIR").map(PathBuf::from)),
    };
    Settings::resolve(overrides, file)
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    // Needs no settings and no store.
    if matches!(cli.command, Command::Openapi) {
        print!("{}", vellum_http::openapi_json());
        return Ok(());
    }
    let serve_args = match &cli.command {
        Command::Serve(args) => Some(args),
        _ => None,
    };
    let settings = settings(&cli, serve_args)?;
    crate::telemetry::init(settings.log_format);
    // The server needs every core; a command is one client of a store, and on one thread its
    // database connection wakes nothing across threads for every row it reads.
    let runtime = if serve_args.is_some() {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(_) => serve(settings).await,
            Command::Migrate => migrate(&settings).await,
            Command::ApiKeys(command) => api_keys(&settings, command).await,
            Command::Operators(command) => operators(&settings, command).await,
            Command::Organizations(command) => organizations(&settings, command).await,
            Command::Schemas(command) => schemas(&settings, command).await,
            Command::Events(EventsCommand::List(args)) => list_events(&settings, args).await,
            Command::Events(EventsCommand::Tail(args)) => crate::ops_cli::tail(args).await,
            Command::Backup(args) => crate::ops_cli::backup(&settings, &args),
            Command::Restore(args) => crate::ops_cli::restore(&settings, &args),
            Command::Export(args) => crate::export_cli::export(args).await,
            Command::Copy(args) => crate::copy_cli::copy(&settings, args).await,
            Command::Purge(args) => purge(&settings, args).await,
            Command::Verify(command) => verify(&settings, command).await,
            Command::Openapi => unreachable!("handled before the settings are read"),
        }
    })
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let application = Application::build(settings).await?;
    let shutdown = shutdown_signal()?;
    // One plain line on standard output, for people and for scripts that started us on port 0.
    println!("vellum listening on http://{}", application.local_addr());
    tracing::info!(address = %application.local_addr(), "listening");
    let outcome = application.run_until_stopped(shutdown).await;
    crate::telemetry::shutdown();
    outcome
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    if let Some(url) = &settings.database_url {
        let mut config = vellum_store::PostgresConfig::new(url.clone());
        config.ca_file = settings.database_ca_file.clone();
        let applied = vellum_store::postgres::migrate_database(&config).await?;
        let latest = vellum_store::postgres::LATEST_SCHEMA_VERSION;
        if applied.is_empty() {
            println!("schema is up to date (version {latest})");
        } else {
            println!("applied migrations {applied:?}; schema is at version {latest}");
        }
        return Ok(());
    }
    let config = SqliteConfig::new(&settings.data_dir);
    vellum_store::private_files::create_private_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create {}", settings.data_dir.display()))?;
    let mut connection = vellum_store::sqlite::open_for_migration(&config.database_path())?;
    let applied = vellum_store::sqlite::migrate(&mut connection)?;
    if applied.is_empty() {
        println!(
            "schema is up to date (version {})",
            vellum_store::sqlite::LATEST_SCHEMA_VERSION
        );
    } else {
        println!(
            "applied migrations {applied:?}; schema is at version {}",
            vellum_store::sqlite::LATEST_SCHEMA_VERSION
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
struct PurgeArgs {
    /// Afterwards, rewrite the embedded store without its free pages and switch it to the mode
    /// in which every later purge gives space back (stores created before that mode was the
    /// default). Needs the server stopped, and free space for a copy of the files.
    #[arg(long)]
    compact: bool,
}

async fn purge(settings: &Settings, args: PurgeArgs) -> anyhow::Result<()> {
    if args.compact && settings.database_url.is_some() {
        anyhow::bail!(
            "--compact is for the embedded store; on PostgreSQL, purges drop emptied monthly partitions, \
             and VACUUM FULL or pg_repack compacts the rest"
        );
    }
    let summary = {
        let store = open_store(settings).await?;
        let service = vellum_retention::PurgeService::new(Arc::clone(&store), settings.default_retention_days);
        let outcome = service.run_pass(vellum_store::now(), &|| false).await;
        store.close().await?;
        outcome?
        // The store and its lock on the data directory are released here, before compacting.
    };
    println!(
        "{:<32}  {:>6}  {:<24}  {:>10}  {:>8}  {:>12}",
        "ORGANIZATION", "DAYS", "BEFORE", "EVENTS", "RECORDS", "DETAILS"
    );
    for organization in &summary.organizations {
        let note = match (organization.held, organization.deleted) {
            (true, _) => "  (legal hold: nothing removed)",
            (false, true) => "  (deleted organization)",
            (false, false) => "",
        };
        println!(
            "{:<32}  {:>6}  {:<24}  {:>10}  {:>8}  {:>12}{note}",
            organization.organization_id.to_string(),
            organization.retention_period_in_days,
            organization.occurred_before.to_wire(),
            organization.events,
            organization.records,
            human_bytes(organization.payload_bytes),
        );
    }
    println!(
        "purged {} events from {} organizations; the store went from {} to {} ({} given back to the file system)",
        summary.events(),
        summary
            .organizations
            .iter()
            .filter(|organization| organization.events > 0)
            .count(),
        human_bytes(summary.size_before),
        human_bytes(summary.size_after),
        human_bytes(summary.reclaimed),
    );
    if args.compact {
        for file in vellum_store::sqlite::compact(&settings.data_dir)? {
            println!(
                "compacted {}: {} -> {}",
                terminal::text(&file.path.display().to_string()),
                human_bytes(file.bytes_before),
                human_bytes(file.bytes_after)
            );
        }
    }
    Ok(())
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

async fn api_keys(settings: &Settings, command: ApiKeysCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let outcome = async {
        match command {
            ApiKeysCommand::Create { name } => {
                vellum_core::api_key::validate_api_key_name(&name).map_err(anyhow::Error::msg)?;
                let secret = vellum_store::generate_api_key_secret().context("cannot draw random bytes")?;
                let key = store.create_api_key(name.trim().to_owned(), secret.clone()).await?;
                println!(
                    "created API key {} ({}); the secret is shown only now:",
                    key.id,
                    terminal::text(&key.name)
                );
                println!("{}", secret.expose());
            }
            ApiKeysCommand::List => {
                println!(
                    "{:<32}  {:<10}  {:<24}  {:<8}  NAME",
                    "ID", "SECRET", "CREATED", "STATUS"
                );
                for key in store.list_api_keys().await? {
                    let status = if key.is_active() { "active" } else { "revoked" };
                    println!(
                        "{:<32}  {:<10}  {:<24}  {:<8}  {}",
                        key.id,
                        key.redacted_secret,
                        key.created_at,
                        status,
                        terminal::text(&key.name)
                    );
                }
            }
            ApiKeysCommand::Revoke { id } => {
                let id =
                    ApiKeyId::parse(&id).map_err(|error| anyhow::anyhow!("`{id}` is not an API key id: {error}"))?;
                let key = store.revoke_api_key(id).await?;
                println!("revoked API key {} ({})", key.id, terminal::text(&key.name));
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await?;
    outcome
}

/// Reads a password from the first line of standard input (a terminal, a pipe or a file), so
/// that it never appears in the process list or the shell's history.
fn read_password_from_stdin() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password).to_owned();
    vellum_core::operator::validate_new_password(&password).map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(password)
}

async fn hash_password(password: String) -> anyhow::Result<vellum_core::operator::PasswordHash> {
    tokio::task::spawn_blocking(move || vellum_store::hash_new_password(&password))
        .await?
        .context("cannot draw random bytes")
}

async fn operators(settings: &Settings, command: OperatorsCommand) -> anyhow::Result<()> {
    use vellum_core::operator::Email;
    let parse_email = |text: &str| Email::parse(text).map_err(|error| anyhow::anyhow!("`{text}`: {error}"));
    // Read the password before opening the store, so a bad one changes nothing.
    let (email, password) = match &command {
        OperatorsCommand::Create { email } | OperatorsCommand::SetPassword { email } => {
            (Some(parse_email(email)?), Some(read_password_from_stdin()?))
        }
        OperatorsCommand::List => (None, None),
    };
    let store = open_store(settings).await?;
    let outcome = async {
        match (command, email, password) {
            (OperatorsCommand::Create { .. }, Some(email), Some(password)) => {
                let operator = store.create_operator(email, hash_password(password).await?).await?;
                println!(
                    "created operator {} ({})",
                    operator.id,
                    terminal::text(operator.email.as_str())
                );
            }
            (OperatorsCommand::SetPassword { .. }, Some(email), Some(password)) => {
                let operator = store
                    .find_operator(email.clone())
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no operator has the email {email}"))?;
                store
                    .set_operator_password(operator.id, hash_password(password).await?)
                    .await?;
                println!(
                    "set a new password for {}; their sessions have ended",
                    terminal::text(operator.email.as_str())
                );
            }
            _ => {
                println!("{:<36}  {:<24}  EMAIL", "ID", "CREATED");
                for operator in store.list_operators().await? {
                    println!(
                        "{:<36}  {:<24}  {}",
                        operator.id,
                        operator.created_at,
                        terminal::text(operator.email.as_str())
                    );
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await?;
    outcome
}

async fn organizations(settings: &Settings, command: OrganizationsCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let outcome = async {
        match command {
            OrganizationsCommand::Create { name, external_id } => {
                let mut errors = vellum_core::ValidationErrors::new();
                let name = vellum_core::organization::validate_name(&name, "name", &mut errors);
                let external_id = external_id.and_then(|value| {
                    vellum_core::organization::validate_identifier(&value, "external_id", &mut errors)
                });
                let Some(name) = name.filter(|_| errors.is_empty()) else {
                    anyhow::bail!("{errors}");
                };
                let request = NewOrganization {
                    name,
                    external_id,
                    metadata: Default::default(),
                    domains: Vec::new(),
                    allow_profiles_outside_organization: false,
                };
                let organization = store.create_organization(request).await?;
                println!(
                    "created organization {} ({})",
                    organization.id,
                    terminal::text(&organization.name)
                );
                println!("{}", organization.id);
            }
            OrganizationsCommand::List { limit } => {
                anyhow::ensure!((1..=100).contains(&limit), "--limit must be from 1 to 100");
                let page = store
                    .list_organizations(
                        OrganizationFilter::default(),
                        PageRequest {
                            limit,
                            ..PageRequest::default()
                        },
                    )
                    .await?;
                println!("{:<30}  {:<24}  {:<20}  NAME", "ID", "CREATED", "EXTERNAL ID");
                for organization in page.data {
                    println!(
                        "{:<30}  {:<24}  {:<20}  {}",
                        organization.id,
                        organization.created_at,
                        terminal::text(organization.external_id.as_deref().unwrap_or_default()),
                        terminal::text(&organization.name)
                    );
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await?;
    outcome
}

async fn schemas(settings: &Settings, command: SchemasCommand) -> anyhow::Result<()> {
    let store = open_store(settings).await?;
    let outcome = async {
        match command {
            SchemasCommand::Create { action, file, target } => {
                let mut errors = vellum_core::ValidationErrors::new();
                if !vellum_core::schema::validate_action_name(&action, &mut errors) {
                    anyhow::bail!("{errors}");
                }
                let body: serde_json::Value = match file {
                    Some(path) => {
                        let text = std::fs::read_to_string(&path)
                            .with_context(|| format!("cannot read {}", path.display()))?;
                        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?
                    }
                    None => serde_json::json!({
                        "targets": target.iter().map(|name| serde_json::json!({"type": name})).collect::<Vec<_>>(),
                    }),
                };
                let definition =
                    vellum_http::schema_definition_from_json(body).map_err(|errors| anyhow::anyhow!("{errors}"))?;
                let vellum_store::CreatedSchema {
                    schema: stored,
                    created,
                } = store.create_schema(action, definition).await?;
                let action = terminal::text(&stored.action);
                if created {
                    println!("created {action} version {}", stored.version);
                } else {
                    println!("{action} version {} already says this; nothing created", stored.version);
                }
            }
            SchemasCommand::List { action: None } => {
                let page = store
                    .list_actions(PageRequest {
                        limit: 100,
                        ..PageRequest::default()
                    })
                    .await?;
                println!("{:<40}  {:>7}  {:<24}  TARGETS", "ACTION", "VERSION", "UPDATED");
                for action in page.data {
                    let targets: Vec<_> = action
                        .latest
                        .definition
                        .targets
                        .iter()
                        .map(|target| target.target_type.as_str())
                        .collect();
                    println!(
                        "{:<40}  {:>7}  {:<24}  {}",
                        terminal::text(&action.name),
                        action.latest.version,
                        action.updated_at,
                        terminal::text(&targets.join(","))
                    );
                }
            }
            SchemasCommand::List { action: Some(action) } => {
                let page = store
                    .list_schemas(
                        &action,
                        PageRequest {
                            limit: 100,
                            ..PageRequest::default()
                        },
                    )
                    .await?;
                for schema in page.data {
                    println!("{}", terminal::json(&vellum_http::schema_json(&schema)));
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await?;
    outcome
}

fn parse_time(text: Option<&str>, flag: &str) -> anyhow::Result<Option<vellum_core::time_range::Instant>> {
    text.map(|text| {
        vellum_core::time_range::Instant::parse(text)
            .ok_or_else(|| anyhow::anyhow!("--{flag} `{text}` is not an RFC 3339 date-time from year 0000 to 9999"))
    })
    .transpose()
}

async fn list_events(settings: &Settings, args: EventsListArgs) -> anyhow::Result<()> {
    let organization = vellum_core::OrganizationId::parse(&args.organization)
        .map_err(|error| anyhow::anyhow!("`{}` is not an organization id: {error}", args.organization))?;
    anyhow::ensure!((1..=100).contains(&args.limit), "--limit must be from 1 to 100");
    let cursor = match &args.after {
        Some(text) => Some(vellum_core::Cursor::After(
            vellum_core::EventId::parse(text).map_err(|error| anyhow::anyhow!("--after: {error}"))?,
        )),
        None => None,
    };
    use vellum_core::time_range::{Bound, TimeRange};
    let mut errors = vellum_core::ValidationErrors::new();
    for (flag, count) in [
        ("--action", args.filters.actions.len()),
        ("--actor-id", args.filters.actor_ids.len()),
        ("--actor-name", args.filters.actor_names.len()),
        ("--target-type", args.filters.target_types.len()),
        ("--target-id", args.filters.target_ids.len()),
    ] {
        vellum_core::filter::check_filter_values(flag, count, &mut errors);
    }
    if let Some(search) = &args.filters.search {
        vellum_core::filter::check_search("--search", search, &mut errors);
    }
    anyhow::ensure!(errors.is_empty(), "{errors}");
    let since = parse_time(args.since.as_deref(), "since")?.map(Bound::AtOrAfter);
    let until = parse_time(args.until.as_deref(), "until")?.map(Bound::Before);
    let (range_start, range_end) = TimeRange::of(since.into_iter().chain(until)).filter_bounds();
    let filter = vellum_store::EventFilter {
        actions: args.filters.actions,
        actor_ids: args.filters.actor_ids,
        actor_names: args.filters.actor_names,
        target_types: args.filters.target_types,
        target_ids: args.filters.target_ids,
        range_start,
        range_end,
        search: args.filters.search,
    };
    let store = open_store(settings).await?;
    let outcome = async {
        let page = store
            .list_events(
                organization,
                filter,
                PageRequest {
                    limit: args.limit,
                    cursor,
                    ..PageRequest::default()
                },
            )
            .await?;
        if args.json {
            for event in &page.data {
                println!("{}", terminal::json(&vellum_http::event_json(event)));
            }
        } else {
            println!(
                "{:<24}  {:<40}  {:<24}  {:<24}  TARGETS",
                "OCCURRED", "ACTION", "ACTOR", "LOCATION"
            );
            for event in &page.data {
                let input = &event.input;
                let actor = input.actor.name.clone().unwrap_or_else(|| input.actor.id.clone());
                let targets: Vec<_> = input
                    .targets
                    .iter()
                    .map(|target| format!("{}:{}", target.target_type, target.id))
                    .collect();
                println!(
                    "{:<24}  {:<40}  {:<24}  {:<24}  {}",
                    input.occurred_at,
                    terminal::text(&input.action),
                    terminal::text(&actor),
                    terminal::text(&input.context.location),
                    terminal::text(&targets.join(" "))
                );
            }
        }
        if let Some(after) = page.list_metadata.after {
            eprintln!("more: --after {after}");
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await?;
    outcome
}

async fn verify(settings: &Settings, command: VerifyCommand) -> anyhow::Result<()> {
    let verified = match command {
        VerifyCommand::Store {
            organization,
            public_key,
        } => {
            let only = organization
                .map(|text| {
                    vellum_core::OrganizationId::parse(&text)
                        .map_err(|error| anyhow::anyhow!("`{text}` is not an organization id: {error}"))
                })
                .transpose()?;
            let verifier = match public_key {
                Some(key) => Some(crate::verify::parse_public_key(&key, &settings.log_name)?),
                None => None,
            };
            let backend = crate::startup::open_backend(settings).await?;
            let verifier = match verifier {
                Some(verifier) => verifier,
                None => {
                    let signer = crate::startup::signing_key(settings, backend.postgres.as_deref(), false).await?;
                    vellum_core::checkpoint::NoteVerifier::parse(&signer.verifier_key())
                        .map_err(|error| anyhow::anyhow!("{error}"))?
                }
            };
            let store = backend.store;
            let outcome = crate::verify::verify_store(&*store, &verifier, &settings.log_name, only).await;
            store.close().await?;
            outcome?
        }
        VerifyCommand::Log {
            url,
            api_key,
            organization,
            public_key,
            state,
        } => {
            let organization = vellum_core::OrganizationId::parse(&organization)
                .map_err(|error| anyhow::anyhow!("`{organization}` is not an organization id: {error}"))?;
            crate::verify::verify_remote(&url, &api_key, organization, public_key.as_deref(), state.as_deref()).await?
        }
        VerifyCommand::Export { file, public_key } => {
            let verifier = crate::verify::parse_public_key(&public_key, &settings.log_name)?;
            crate::export_cli::verify_export(&file, &verifier)?
        }
    };
    anyhow::ensure!(verified, "verification failed");
    Ok(())
}
