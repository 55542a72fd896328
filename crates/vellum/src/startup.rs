//! Start-up and shutdown of `vellum serve`.
//!
//! [`Application::build`] opens the store, applies the `VELLUM_API_KEY` bootstrap and binds the
//! listener; [`Application::run_until_stopped`] starts the background jobs, serves until the
//! shutdown future completes, lets in-flight requests finish (for at most the grace period),
//! stops the jobs, then closes the store, which commits every write it accepted before
//! returning.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use vellum_http::{AppState, HttpConfig};
use vellum_store::{SqliteConfig, SqliteStore, Store};

use crate::config::Settings;

/// Opens the store the settings name.
pub fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    if settings.database_url.is_some() {
        anyhow::bail!(
            "VELLUM_DATABASE_URL is set, but this build of vellum has no PostgreSQL backend yet; \
             unset it to use the embedded store in --data-dir"
        );
    }
    let store = SqliteStore::open(&SqliteConfig::new(&settings.data_dir))
        .with_context(|| format!("cannot open the store in {}", settings.data_dir.display()))?;
    Ok(Arc::new(store))
}

/// Makes sure the operator from `VELLUM_ADMIN_EMAIL` exists and signs in with
/// `VELLUM_ADMIN_PASSWORD`: created if missing, its password replaced (and its sessions ended)
/// if it no longer matches, untouched otherwise.
async fn ensure_admin(store: &dyn Store, admin: &crate::config::AdminBootstrap) -> anyhow::Result<()> {
    let existing = store.find_operator(admin.email.clone()).await?;
    if let Some(operator) = &existing {
        let hash = operator.password_hash.clone();
        let password = admin.password.clone();
        if tokio::task::spawn_blocking(move || hash.verify(&password)).await? {
            return Ok(());
        }
    }
    let password = admin.password.clone();
    let hash = tokio::task::spawn_blocking(move || vellum_store::hash_new_password(&password))
        .await?
        .context("cannot draw random bytes")?;
    match existing {
        Some(operator) => {
            store.set_operator_password(operator.id, hash).await?;
            tracing::info!(operator = %operator.id, "operator password set from VELLUM_ADMIN_PASSWORD");
        }
        None => {
            let operator = store
                .create_operator(admin.email.clone(), hash)
                .await
                .context("cannot create the VELLUM_ADMIN_EMAIL operator")?;
            tracing::info!(operator = %operator.id, "operator from VELLUM_ADMIN_EMAIL created");
        }
    }
    Ok(())
}

/// A server that is bound and ready to run.
pub struct Application {
    signer: Arc<vellum_core::checkpoint::NoteSigner>,
    listener: TcpListener,
    local_addr: SocketAddr,
    store: Arc<dyn Store>,
    settings: Settings,
}

impl Application {
    /// Opens the store, makes sure the bootstrap key exists, and binds the listen address.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        vellum_store::private_files::restrict_umask();
        let store = open_store(&settings)?;
        let signer = crate::signing::load_or_create(
            settings.signing_key_file.as_deref(),
            &settings.data_dir,
            &settings.log_name,
        )?;
        if let Some(secret) = &settings.api_key {
            let vellum_store::EnsuredApiKey { key, created: changed } = store
                .ensure_api_key("VELLUM_API_KEY".into(), secret.clone())
                .await
                .context("cannot store the VELLUM_API_KEY key")?;
            if changed {
                tracing::info!(key_id = %key.id, key = %key.redacted_secret, "api key from VELLUM_API_KEY is active");
            }
        }
        if let Some(admin) = &settings.admin {
            ensure_admin(store.as_ref(), admin).await?;
        }
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            signer,
            listener,
            local_addr,
            store,
            settings,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn start_exports(&self, runner: &vellum_jobs::Runner) -> anyhow::Result<vellum_export::ExportService> {
        let options = &self.settings.exports;
        let storage_settings = match &options.s3 {
            None => vellum_export::StorageSettings::Local {
                root: self.settings.data_dir.join("exports"),
            },
            #[cfg(feature = "s3")]
            Some(s3) => vellum_export::StorageSettings::S3 {
                bucket: s3.bucket.clone(),
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone(),
                prefix: s3.prefix.clone(),
            },
            #[cfg(not(feature = "s3"))]
            Some(_) => anyhow::bail!("export_s3_bucket is set, but this build of vellum has no S3 support"),
        };
        let storage = vellum_export::Storage::open(&storage_settings).context("cannot open the export storage")?;
        let link_key = crate::signing::load_or_create_link_key(&self.settings.data_dir)?;
        Ok(vellum_export::ExportService::start(
            Arc::clone(&self.store),
            storage,
            vellum_export::LinkSigner::new(link_key),
            Arc::clone(&self.signer),
            vellum_export::ExportSettings {
                workers: options.workers,
                ttl: options.ttl,
                link_lifetime: options.link_lifetime,
                ..vellum_export::ExportSettings::default()
            },
            runner,
        ))
    }

    /// Serves until `shutdown` completes, then drains and closes the store.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let state = AppState::new(
            Arc::clone(&self.store),
            HttpConfig {
                max_body_bytes: self.settings.max_body_bytes,
                rate_limit: self.settings.rate_limit,
                public_url: self.settings.public_url.clone(),
                dashboard_assets_dir: self.settings.dashboard_dir.clone(),
                max_password_checks: self.settings.max_password_checks,
                default_retention_days: self.settings.default_retention_days,
            },
            Arc::clone(&self.signer),
        );
        let jobs = vellum_jobs::Runner::new(crate::jobs::new_run_id().context("cannot draw a run id")?);
        let exports = Arc::new(self.start_exports(&jobs)?);
        jobs.spawn(Arc::new(crate::jobs::IdempotencyKeyPurge::new(Arc::clone(&self.store))));
        let state = state.with_exports(exports);
        let router = vellum_http::router(state);
        let stopping = Arc::new(tokio::sync::Notify::new());
        let signal_stopping = Arc::clone(&stopping);
        let limits = self.settings.effective_limits();
        if limits.max_connections < self.settings.limits.max_connections {
            tracing::info!(
                max_connections = limits.max_connections,
                "connection limit lowered to fit the open-file limit"
            );
        }
        let server = vellum_http::serve(self.listener, router, limits, async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            signal_stopping.notify_waiters();
        });
        let grace = self.settings.shutdown_grace;
        let mut server = std::pin::pin!(server);
        let outcome = tokio::select! {
            outcome = &mut server => outcome,
            () = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_seconds = grace.as_secs(), "in-flight requests did not finish in time");
                Ok(())
            }
        };
        // Running exports stop here and give their leases back: they stay pending, and the next
        // claim (of this store's next process, or of another one) starts them again.
        jobs.shutdown(JOBS_STOP_GRACE).await;
        // Whatever happened to the listener, commit what the store accepted.
        let closed = self.store.close().await;
        outcome.context("the HTTP server failed")?;
        closed.context("closing the store failed")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// How long background jobs get to reach a safe point at shutdown before they are dropped.
/// Export steps stop between two writes, so they need a fraction of this.
const JOBS_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Registers for SIGINT (Ctrl-C) and SIGTERM now, and returns a future that completes on
/// either. Registering before the server announces itself means a signal sent right after the
/// "listening" line is never lost to the default action (which would kill the process).
#[cfg(unix)]
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

/// Returns a future that completes on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
