//! The `vellum` binary under test, run as its own process, and what `/proc` says about it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the server has to announce that it listens.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopping server has to commit and exit (its own grace period is 30 s).
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// How to run the binary.
#[derive(Clone, Debug)]
pub(crate) struct Binary {
    /// The `vellum` binary.
    pub(crate) path: PathBuf,
    /// The API key given to `serve` through `VELLUM_API_KEY`.
    pub(crate) api_key: String,
    /// The server's log filter (`VELLUM_LOG`).
    pub(crate) log_filter: String,
}

impl Binary {
    /// A command for the binary with none of this process's `VELLUM_*` settings.
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(&self.path);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("VELLUM_") {
                command.env_remove(name);
            }
        }
        command.stdin(Stdio::null());
        command
    }
}

/// A running `vellum serve`.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    pid: u32,
    /// Where it listens.
    pub(crate) address: SocketAddr,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `vellum serve` on `data_dir`, on a free port of 127.0.0.1, logging to `log`, and
    /// waits until it announces that it accepts connections.
    /// With `database_url`, it serves from that PostgreSQL database instead (the data directory
    /// then holds only export files).
    pub(crate) async fn start(
        binary: &Binary,
        data_dir: &Path,
        database_url: Option<&str>,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let log_file = std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = binary.command();
        if let Some(url) = database_url {
            command.env("VELLUM_DATABASE_URL", url);
        }
        let mut child = command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .env("VELLUM_API_KEY", &binary.api_key)
            .env("VELLUM_LOG", &binary.log_filter)
            // The generator's events occur from 2026-01-01 on: keep them past any date a store
            // is measured at, so that the server's purge never shrinks the measured store.
            .env("VELLUM_DEFAULT_RETENTION_DAYS", "3650")
            // The purge measurement times `vellum purge`: the server's own pass must not run
            // beside it (it would at a restart, once retentions are set).
            .env("VELLUM_PURGE_INTERVAL", "0")
            // The stream measurement's receiver runs on loopback.
            .env("VELLUM_STREAM_ALLOW_PRIVATE_DESTINATIONS", "true")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", binary.path.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("the server's standard output")?;
        let mut lines = BufReader::new(stdout).lines();
        let announced = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("vellum listening on http://") {
                    return Ok(Some(url.trim().to_owned()));
                }
            }
            anyhow::Ok(None)
        })
        .await;
        let address = match announced {
            Ok(Ok(Some(address))) => address
                .parse()
                .with_context(|| format!("the server announced an odd address: {address}"))?,
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = child.wait().await.ok();
                bail!(
                    "the server stopped before listening ({status:?}); its log ends:\n{}",
                    log_tail(log)
                );
            }
            Err(_) => bail!(
                "the server did not listen within {START_TIMEOUT:?}; its log ends:\n{}",
                log_tail(log)
            ),
        };
        // Keep reading standard output, so that the server never writes into a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            pid,
            address,
            log: log.to_owned(),
        })
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Stops it as an operator would (SIGTERM: it finishes requests, commits and exits 0).
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.pid).context("process id")?)
            .context("the server's process id")?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).context("cannot signal the server")?;
        let status = tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .with_context(|| format!("the server did not stop within {STOP_TIMEOUT:?}"))?
            .context("cannot wait for the server")?;
        if !status.success() {
            bail!(
                "the server exited with {status}; its log ends:\n{}",
                log_tail(&self.log)
            );
        }
        Ok(())
    }
}

/// The resident memory of a process, in bytes (`VmRSS` in `/proc/PID/status`).
pub(crate) fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let kilobytes = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .with_context(|| format!("no VmRSS in {path}"))?;
    Ok(kilobytes * 1024)
}

/// Samples a process's resident memory every `every` until dropped or stopped, keeping the peak.
pub(crate) struct RssSampler {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    /// Starts sampling (the first sample is taken at once).
    pub(crate) fn start(pid: u32, every: Duration) -> anyhow::Result<Self> {
        let first = resident_bytes(pid)?;
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(first));
        let shared = std::sync::Arc::clone(&peak);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticks.tick().await;
                match resident_bytes(pid) {
                    Ok(bytes) => {
                        shared.fetch_max(bytes, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(_) => return,
                }
            }
        });
        Ok(Self { peak, task })
    }

    /// Stops sampling (after one last sample) and returns the peak.
    pub(crate) fn stop(self, pid: u32) -> u64 {
        self.task.abort();
        if let Ok(bytes) = resident_bytes(pid) {
            self.peak.fetch_max(bytes, std::sync::atomic::Ordering::Relaxed);
        }
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The CPU time of this process's children that have been waited for, in seconds
/// (`cutime` + `cstime` of `/proc/self/stat`, what `getrusage(RUSAGE_CHILDREN)` reports).
pub(crate) fn children_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("cannot read /proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start at field 3, `state`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .context("unexpected /proc/self/stat")?;
    let field = |number: usize| -> anyhow::Result<u64> {
        fields
            .get(number - 3)
            .and_then(|text| text.parse().ok())
            .with_context(|| format!("no field {number} in /proc/self/stat"))
    };
    let ticks = field(16)? + field(17)?;
    Ok(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// The last lines of a log file, for error messages.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
