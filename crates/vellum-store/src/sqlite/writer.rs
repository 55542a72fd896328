//! The single writer thread and its group commit (see the module docs of `sqlite`).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::follower::Follower;
use crate::StoreError;

/// What a job leaves behind after it ran inside the open transaction: whether it succeeded, and
/// how to answer its caller once the commit outcome is known (`None` = committed).
struct Ran {
    succeeded: bool,
    answer: Answer,
}

/// Tells a job's caller the outcome of the commit: `None` when it committed, else why not.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

/// One caller's write, queued for the next group commit.
trait Job: Send {
    /// Runs the write inside the open transaction.
    fn run(self: Box<Self>, connection: &Connection) -> Ran;
    /// Answers the caller without running, because no transaction could be started.
    fn refuse(self: Box<Self>, reason: &str);
}

struct WriteJob<T, F> {
    work: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for WriteJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, connection: &Connection) -> Ran {
        let Self { work, reply } = *self;
        // A panicking job fails alone (its savepoint is rolled back) instead of killing the
        // writer thread and with it every later write.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(connection))).unwrap_or_else(|_| {
                Err(StoreError::Internal(
                    "a write job panicked; its changes were rolled back".into(),
                ))
            });
        Ran {
            succeeded: outcome.is_ok(),
            answer: Box::new(move |commit_error| {
                let result = match commit_error {
                    None => outcome,
                    Some(message) => Err(StoreError::Unavailable(format!("commit failed: {message}"))),
                };
                // The caller may have gone away (client disconnected); the write stands.
                let _ = reply.send(result);
            }),
        }
    }

    fn refuse(self: Box<Self>, reason: &str) {
        let _ = self.reply.send(Err(StoreError::Unavailable(reason.to_owned())));
    }
}

/// The store's background threads that follow the writer: told after each group commit, and
/// stopped (after a last pass each) when the writer stops.
#[derive(Debug)]
pub(super) struct Followers {
    pub(super) checkpointer: Follower,
    pub(super) wal_wrap: Arc<super::checkpointer::WalWrap>,
    pub(super) search: Follower,
}

impl Followers {
    fn committed(&self) {
        self.checkpointer.committed();
        self.search.committed();
    }
}

/// Sizes the writer's page cache by the database's size.
///
/// When SQLite rebalances B-tree pages it briefly renumbers one page to the page holding the
/// file-locking byte at 1 GiB. The cache then remembers that page number as the largest it has
/// seen, and at the end of every transaction that did so it drops pages past the end of the
/// file: while the file is under 1 GiB, that means walking every page it holds. With the full
/// cache (65,536 pages) that walk was a quarter of the writer's time under single-event load.
/// So the writer keeps a small cache until the file passes the locking page (after which the
/// walk finds nothing to do), then grows it to the configured size, which the indexes of a
/// large store need.
#[derive(Debug)]
pub(super) struct CacheSizer {
    large_mib: u32,
    small_mib: u32,
    large: Option<bool>,
    commits_until_check: u32,
}

/// How often (in group commits) the writer looks at the file's size again.
const COMMITS_PER_CACHE_CHECK: u32 = 256;

impl CacheSizer {
    pub(super) fn new(large_mib: u32, small_mib: u32) -> Self {
        Self {
            large_mib,
            small_mib: small_mib.min(large_mib),
            large: None,
            commits_until_check: 0,
        }
    }

    fn adjust(&mut self, connection: &Connection) {
        if self.commits_until_check > 0 {
            self.commits_until_check -= 1;
            return;
        }
        self.commits_until_check = COMMITS_PER_CACHE_CHECK;
        let sizes = connection.query_row(
            "select page_count, page_size from pragma_page_count(), pragma_page_size()",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
        );
        let Ok((page_count, page_size)) = sizes else {
            return;
        };
        // SQLite's PENDING_BYTE: the page that holds it is never used.
        let locking_page = (1_i64 << 30) / page_size.max(512) + 1;
        let large = page_count > locking_page;
        if self.large == Some(large) {
            return;
        }
        let mib = if large { self.large_mib } else { self.small_mib };
        if mib > 0
            && let Err(error) = connection.pragma_update(None, "cache_size", -i64::from(mib) * 1024)
        {
            tracing::warn!(%error, "cannot resize the writer's page cache");
            return;
        }
        self.large = Some(large);
    }
}

enum Message {
    Job(Box<dyn Job>),
    Close(oneshot::Sender<()>),
}

/// A handle to the writer thread.
#[derive(Debug)]
pub(super) struct Writer {
    sender: Mutex<Option<mpsc::Sender<Message>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    closed_reason: Arc<Mutex<Option<String>>>,
}

impl Writer {
    pub(super) fn start(
        connection: Connection,
        max_batch: usize,
        cache: CacheSizer,
        followers: Followers,
    ) -> Result<Self, StoreError> {
        let (sender, receiver) = mpsc::channel::<Message>();
        let closed_reason = Arc::new(Mutex::new(None));
        let thread_closed_reason = Arc::clone(&closed_reason);
        let thread = std::thread::Builder::new()
            .name("vellum-sqlite-writer".into())
            .spawn(move || {
                run(
                    connection,
                    &receiver,
                    max_batch,
                    cache,
                    &thread_closed_reason,
                    followers,
                )
            })
            .map_err(|error| StoreError::Internal(format!("cannot start writer thread: {error}")))?;
        Ok(Self {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            closed_reason,
        })
    }

    fn unavailable(&self) -> StoreError {
        let reason = self
            .closed_reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        StoreError::Unavailable(reason.unwrap_or_else(|| "the store is closed".into()))
    }

    pub(super) fn check_alive(&self) -> Result<(), StoreError> {
        let sender = self.sender.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let running = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|thread| !thread.is_finished());
        if sender.is_some()
            && running
            && self
                .closed_reason
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_none()
        {
            Ok(())
        } else {
            Err(self.unavailable())
        }
    }

    /// Runs `work` in the next group commit and returns its result once that commit is durable.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T, StoreError>>();
        let job: Box<dyn Job> = Box::new(WriteJob { work, reply });
        {
            let sender = self.sender.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(sender) = sender.as_ref() else {
                return Err(self.unavailable());
            };
            sender.send(Message::Job(job)).map_err(|_| self.unavailable())?;
            queue_depth().increment(1.0);
        }
        answer.await.map_err(|_| self.unavailable())?
    }

    /// Lets queued jobs finish, stops the thread and checkpoints the WAL.
    pub(super) async fn close(&self) -> Result<(), StoreError> {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(sender) = sender else {
            return Ok(());
        };
        let (done, finished) = oneshot::channel();
        if sender.send(Message::Close(done)).is_ok() {
            let _ = finished.await;
        }
        drop(sender);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|error| StoreError::Internal(error.to_string()))?
                .map_err(|_| StoreError::Internal("the writer thread panicked".into()))?;
        }
        Ok(())
    }
}

fn run(
    connection: Connection,
    receiver: &mpsc::Receiver<Message>,
    max_batch: usize,
    mut cache: CacheSizer,
    closed_reason: &Mutex<Option<String>>,
    followers: Followers,
) {
    let mut close_reply = None;
    while close_reply.is_none() {
        cache.adjust(&connection);
        let Ok(first) = receiver.recv() else {
            break;
        };
        let mut jobs = Vec::new();
        match first {
            Message::Job(job) => {
                queue_depth().decrement(1.0);
                jobs.push(job);
            }
            Message::Close(reply) => close_reply = Some(reply),
        }
        while close_reply.is_none() && jobs.len() < max_batch {
            match receiver.try_recv() {
                Ok(Message::Job(job)) => {
                    queue_depth().decrement(1.0);
                    jobs.push(job);
                }
                Ok(Message::Close(reply)) => close_reply = Some(reply),
                Err(_) => break,
            }
        }
        let batch = jobs.len();
        let started = std::time::Instant::now();
        let span = tracing::debug_span!("commit", jobs = batch).entered();
        let committed = if jobs.is_empty() {
            Ok(())
        } else {
            commit_batch(&connection, jobs)
        };
        drop(span);
        if batch > 0 {
            crate::observe_commit(batch, started.elapsed());
        }
        if let Err(fatal) = committed {
            tracing::error!(error = %fatal, "the sqlite writer stopped after a failed commit");
            *closed_reason.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fatal.clone());
            // Answer everything still queued rather than leaving callers waiting.
            while let Ok(message) = receiver.try_recv() {
                match message {
                    Message::Job(job) => {
                        queue_depth().decrement(1.0);
                        job.refuse(&fatal);
                    }
                    Message::Close(reply) => close_reply = Some(reply),
                }
            }
            break;
        }
        followers.committed();
        followers.wal_wrap.finish_if_asked(&connection);
    }
    drop(followers);
    if let Err(error) = connection.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
        tracing::warn!(%error, "wal checkpoint at close failed");
    }
    drop(connection);
    if let Some(reply) = close_reply {
        let _ = reply.send(());
    }
}

/// Writes queued for the writer and not yet taken into a commit.
fn queue_depth() -> metrics::Gauge {
    metrics::gauge!("vellum_store_write_queue_depth")
}

/// Runs a transaction-control statement, prepared once: each group commit runs several, and
/// parsing them again each time was a few per cent of the writer's time.
fn control(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(drop)
}

/// Runs a batch of jobs in one transaction. Returns `Err` only when the database can no longer
/// be written; every job has been answered either way.
fn commit_batch(connection: &Connection, jobs: Vec<Box<dyn Job>>) -> Result<(), String> {
    if let Err(error) = control(connection, "BEGIN IMMEDIATE") {
        // Another process may hold the write lock past the busy timeout: refuse this batch and
        // keep the writer alive for the next one.
        let reason = format!("cannot start a write transaction: {error}");
        tracing::warn!(error = %reason, "write batch refused");
        for job in jobs {
            job.refuse(&reason);
        }
        return Ok(());
    }
    // A lone job needs no savepoint: if it fails, the whole transaction is rolled back instead.
    // (A savepoint copies every page the job first touches into a sub-journal.)
    if jobs.len() == 1 {
        let job = jobs.into_iter().next().expect("one job");
        let ran = job.run(connection);
        let closing = if ran.succeeded { "COMMIT" } else { "ROLLBACK" };
        return match control(connection, closing) {
            Ok(()) => {
                (ran.answer)(None);
                Ok(())
            }
            Err(error) => {
                let message = error.to_string();
                let _ = connection.execute_batch("ROLLBACK");
                (ran.answer)(Some(&message));
                tracing::error!(error = %message, "commit failed");
                Ok(())
            }
        };
    }
    let mut answers: Vec<Answer> = Vec::with_capacity(jobs.len());
    for job in jobs {
        if let Err(error) = control(connection, "SAVEPOINT job") {
            let _ = connection.execute_batch("ROLLBACK");
            return Err(format!("savepoint failed: {error}"));
        }
        let ran = job.run(connection);
        let closed = if ran.succeeded {
            control(connection, "RELEASE job")
        } else {
            control(connection, "ROLLBACK TO job").and_then(|()| control(connection, "RELEASE job"))
        };
        if let Err(error) = closed {
            let _ = connection.execute_batch("ROLLBACK");
            (ran.answer)(Some(&error.to_string()));
            for answer in answers {
                answer(Some("the batch was rolled back"));
            }
            return Err(format!("closing a savepoint failed: {error}"));
        }
        answers.push(ran.answer);
    }
    match control(connection, "COMMIT") {
        Ok(()) => {
            for answer in answers {
                answer(None);
            }
            Ok(())
        }
        Err(error) => {
            let message = error.to_string();
            let _ = connection.execute_batch("ROLLBACK");
            for answer in answers {
                answer(Some(&message));
            }
            // A failed COMMIT (disk full, I/O error) is reported to callers; the writer stays up
            // and the next batch tries again.
            tracing::error!(error = %message, "group commit failed");
            Ok(())
        }
    }
}
