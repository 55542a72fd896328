//! A background thread that follows the writer: told after each group commit (the wake-ups
//! coalesce, and telling never blocks), stopped by dropping its handle, which waits for it.
//! The checkpointer and the search indexer are both one.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::StoreError;

/// The handle of a follower thread.
#[derive(Debug)]
pub(super) struct Follower {
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    /// Starts `body` on a thread called `name`. `body` receives a wake-up after commits and
    /// sees the channel disconnected once the handle is dropped; it should then finish.
    pub(super) fn spawn(name: &str, body: impl FnOnce(Receiver<()>) + Send + 'static) -> Result<Self, StoreError> {
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || body(woken))
            .map_err(|error| StoreError::Internal(format!("cannot start the thread {name}: {error}")))?;
        Ok(Self {
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Tells the thread that commits happened.
    pub(super) fn committed(&self) {
        if let Some(wake) = &self.wake {
            match wake.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits for `duration` unless the store closes first (`Err`). Wake-ups meanwhile are absorbed:
/// the pass that follows covers them.
pub(super) fn wait(woken: &Receiver<()>, duration: Duration) -> Result<(), ()> {
    let until = Instant::now() + duration;
    loop {
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        match woken.recv_timeout(until - now) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Disconnected) => return Err(()),
        }
    }
}
