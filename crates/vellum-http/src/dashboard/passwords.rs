//! Password checks on a fixed set of threads.
//!
//! An argon2id check holds 19 MiB for tens of milliseconds. Run on the shared blocking pool,
//! a burst of failed sign-ins (no credential needed to send one) ran as many at once as it had
//! requests and left the allocator holding the memory of each: 100 concurrent sign-ins grew the
//! process by about 2 GB for good. Here at most `workers` checks run at once, each worker
//! reuses one workspace, and at most `queue` more wait; beyond that a sign-in is refused at
//! once, before any hashing.

use std::sync::mpsc;

use tokio::sync::oneshot;
use vellum_core::operator::{PasswordHash, PasswordWorkspace};

/// Checks that may wait for a free worker, per worker.
const QUEUED_CHECKS_PER_WORKER: usize = 32;

struct Check {
    hash: PasswordHash,
    password: String,
    answer: oneshot::Sender<bool>,
}

/// A fixed pool of password-checking threads.
pub(crate) struct PasswordChecker {
    checks: mpsc::SyncSender<Check>,
}

/// All workers are busy and the queue is full.
#[derive(Debug)]
pub(crate) struct Busy;

impl PasswordChecker {
    /// Starts `workers` threads (at least one). They end when the checker is dropped.
    pub(crate) fn start(workers: usize) -> Self {
        let workers = workers.max(1);
        let (checks, receiver) = mpsc::sync_channel::<Check>(workers * QUEUED_CHECKS_PER_WORKER);
        let receiver = std::sync::Arc::new(std::sync::Mutex::new(receiver));
        for index in 0..workers {
            let receiver = std::sync::Arc::clone(&receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("vellum-password-{index}"))
                .spawn(move || {
                    let mut workspace = PasswordWorkspace::default();
                    loop {
                        // Hold the lock only to take the next check, not while hashing.
                        let next = receiver
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        let Ok(check) = next else { return };
                        let verified = check.hash.verify_in(&check.password, &mut workspace);
                        // The requester may have gone (client disconnected); nothing to do then.
                        let _ = check.answer.send(verified);
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password-check thread");
            }
        }
        Self { checks }
    }

    /// Returns whether `password` matches `hash`, or [`Busy`] when too many checks are already
    /// running or waiting.
    pub(crate) async fn verify(&self, hash: PasswordHash, password: String) -> Result<bool, Busy> {
        let (answer, answered) = oneshot::channel();
        self.checks
            .try_send(Check { hash, password, answer })
            .map_err(|_| Busy)?;
        answered.await.map_err(|_| Busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_passwords_and_refuses_beyond_its_queue() {
        let hash = PasswordHash::create("correct horse", [1; 16]);
        let checker = std::sync::Arc::new(PasswordChecker::start(1));
        assert!(checker.verify(hash.clone(), "correct horse".into()).await.unwrap());
        assert!(!checker.verify(hash.clone(), "wrong".into()).await.unwrap());

        // Far more at once than one worker and its queue hold: some are refused, none hang.
        let attempts = (0..QUEUED_CHECKS_PER_WORKER * 3).map(|_| {
            let checker = std::sync::Arc::clone(&checker);
            let hash = hash.clone();
            tokio::spawn(async move { checker.verify(hash, "wrong".into()).await })
        });
        let outcomes: Vec<_> = futures_join_all(attempts).await;
        let refused = outcomes.iter().filter(|outcome| outcome.is_err()).count();
        assert!(refused > 0, "a full queue refuses further checks");
        assert!(outcomes.iter().all(|outcome| !matches!(outcome, Ok(true))));
    }

    async fn futures_join_all<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut results = Vec::new();
        for handle in handles.collect::<Vec<_>>() {
            results.push(handle.await.unwrap());
        }
        results
    }
}
