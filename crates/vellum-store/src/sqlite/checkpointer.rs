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
//! A passive checkpoint cannot copy frames that an open read snapshot still needs, and the WAL
//! starts again from its beginning only when everything has been copied. When the WAL grows past
//! [`RESTART_FRAMES`] anyway (long reads under sustained writes), one `RESTART` checkpoint waits
//! for those readers and briefly holds new writers back, bounding the file.

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

/// Starts the checkpoint thread on its own connection; dropping the handle stops it after a last
/// checkpoint.
pub(super) fn start(connection: Connection) -> Result<Follower, StoreError> {
    Follower::spawn("vellum-sqlite-checkpoint", move |woken| run(&connection, &woken))
}

fn run(connection: &Connection, woken: &mpsc::Receiver<()>) {
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
        checkpoint(connection);
        last = Instant::now();
    }
    checkpoint(connection);
}

/// Runs one passive checkpoint, and a restarting one when the WAL has grown too long.
fn checkpoint(connection: &Connection) {
    let passive = run_checkpoint(connection, "PASSIVE");
    match passive {
        Ok(frames) if frames > RESTART_FRAMES => {
            if let Err(error) = run_checkpoint(connection, "RESTART") {
                tracing::warn!(%error, frames, "restarting wal checkpoint failed");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "wal checkpoint failed"),
    }
}

/// Returns the WAL's length in frames before the checkpoint.
fn run_checkpoint(connection: &Connection, mode: &str) -> rusqlite::Result<i64> {
    connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        row.get::<_, i64>(1)
    })
}
