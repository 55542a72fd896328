//! WAL checkpoints off the commit path.
//!
//! In WAL mode every commit appends pages to the `-wal` file; a checkpoint copies them back into
//! the database file. SQLite's automatic checkpoint runs inside the COMMIT that crosses its
//! threshold, so one unlucky request pays for copying and syncing a thousand pages. The store
//! turns that off on the write connection and runs checkpoints here instead, on a thread with its
//! own connection: after commits, at most every [`PACE`], in `PASSIVE` mode, which never blocks
//! the writer or readers. Durability is unchanged: a commit is durable once its WAL frames are
//! synced (`synchronous=FULL`); a checkpoint syncs the database file before it records progress,
//! and recovery replays whatever it had not copied.
//!
//! The WAL starts again from its beginning only when a write transaction begins with every frame
//! copied. Under sustained writes that never happens by itself: the writer keeps committing while
//! a checkpoint copies, so each one ends a few frames short. So once the WAL is longer than
//! [`WRAP_FRAMES`], passes follow each other until one has only a short tail left to copy (each
//! copies what was committed during the one before), then raise [`WalWrap`]; the writer, between
//! two group commits, copies the few frames committed meanwhile itself (a short passive
//! checkpoint), and its next transaction starts the WAL again. The WAL so holds a few tens of MiB
//! at most, hot in the operating system's cache. A passive checkpoint cannot copy frames that an open read
//! snapshot still needs; when the WAL grows past [`RESTART_FRAMES`] anyway (long reads under
//! sustained writes), one `RESTART` checkpoint waits for those readers and briefly holds new
//! writers back, bounding the file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::follower::{Follower, wait};
use crate::StoreError;

/// The least time between two checkpoints while commits keep coming.
const PACE: Duration = Duration::from_millis(200);

/// WAL size, in pages, past which a checkpoint waits for readers rather than leave it growing
/// (64 Ki pages of 4 KiB: 256 MiB).
const RESTART_FRAMES: i64 = 65_536;

/// WAL length, in pages, past which a checkpoint that copied everything asks the writer to finish
/// the job so that the WAL starts again (4 Ki pages of 4 KiB: 16 MiB).
const WRAP_FRAMES: i64 = 4096;

/// Raised by the checkpointer when the WAL should start again; the writer takes it.
#[derive(Debug, Default)]
pub(super) struct WalWrap(AtomicBool);

impl WalWrap {
    /// Run by the writer between two group commits: if the checkpointer asked, copies the frames
    /// committed since its last pass, so that the next transaction starts the WAL again.
    pub(super) fn finish_if_asked(&self, connection: &Connection) {
        if self.0.swap(false, Ordering::AcqRel)
            && let Err(error) = run_checkpoint(connection, "PASSIVE")
        {
            tracing::warn!(%error, "wal checkpoint on the writer failed");
        }
    }
}

/// Starts the checkpoint thread on its own connection; dropping the handle stops it after a last
/// checkpoint.
pub(super) fn start(connection: Connection, wrap: Arc<WalWrap>) -> Result<Follower, StoreError> {
    Follower::spawn("vellum-sqlite-checkpoint", move |woken| run(&connection, &woken, &wrap))
}

fn run(connection: &Connection, woken: &mpsc::Receiver<()>, wrap: &WalWrap) {
    let mut last = Instant::now().checked_sub(PACE).unwrap_or_else(Instant::now);
    loop {
        if woken.recv().is_err() {
            break;
        }
        // Commits that arrive while waiting out the pace are covered by the same checkpoint.
        let ready_at = last + PACE;
        let now = Instant::now();
        if ready_at > now && wait(woken, ready_at - now).is_err() {
            break;
        }
        checkpoint(connection, wrap);
        last = Instant::now();
    }
    checkpoint(connection, wrap);
}

/// Runs passive checkpoints, and a restarting one when the WAL has grown too long.
///
/// When a pass copied everything and the WAL is long enough to be worth starting again, passes
/// follow each other until one finds only a few frames committed since the one before (each
/// pass copies what was committed during the last, so they shorten quickly); only then is the
/// writer asked to finish, so that what it copies itself, while requests wait, stays small.
fn checkpoint(connection: &Connection, wrap: &WalWrap) {
    let mut previous: Option<i64> = None;
    for _ in 0..MAX_CONVERGING_PASSES {
        match run_checkpoint(connection, "PASSIVE") {
            Ok(pass) if pass.frames > RESTART_FRAMES => {
                if let Err(error) = run_checkpoint(connection, "RESTART") {
                    tracing::warn!(%error, frames = pass.frames, "restarting wal checkpoint failed");
                }
                return;
            }
            Ok(pass) if pass.complete && pass.frames > WRAP_FRAMES => {
                if previous.is_some_and(|before| pass.frames - before <= FINISH_FRAMES) {
                    wrap.0.store(true, Ordering::Release);
                    return;
                }
                previous = Some(pass.frames);
            }
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, "wal checkpoint failed");
                return;
            }
        }
    }
}

/// At most this many passes in a row while converging on a short tail for the writer.
const MAX_CONVERGING_PASSES: usize = 6;

/// The writer is asked to finish once a pass found at most this many frames committed since the
/// pass before (256 pages of 4 KiB: 1 MiB).
const FINISH_FRAMES: i64 = 256;

/// What a checkpoint found.
struct Pass {
    /// The WAL's length in frames when it began.
    frames: i64,
    /// Whether it copied all of them.
    complete: bool,
}

fn run_checkpoint(connection: &Connection, mode: &str) -> rusqlite::Result<Pass> {
    connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        let busy: i64 = row.get(0)?;
        let frames: i64 = row.get(1)?;
        let copied: i64 = row.get(2)?;
        Ok(Pass {
            frames,
            complete: busy == 0 && frames >= 0 && copied == frames,
        })
    })
}
