//! The search index: which events may hold a term, for `search` on listings and exports.
//!
//! A trigram index (SQLite FTS5, `tokenize = trigram`) of every value an event's `search` can
//! match: its action and every atom of its stored details (strings, numbers, booleans, exactly
//! as `json_tree` gives them to the exact check), one per line. It keeps no text of its own
//! (`content = ''`) and no positions (`detail = none`): it answers "which events hold all of
//! these trigrams", a superset of the matches, which the listing then checks exactly. So a
//! rare term on millions of events reads a handful of rows instead of scanning them all.
//!
//! # Its own file, its own thread
//!
//! Indexing an event costs about as much as storing it (hundreds of trigrams each), and the
//! store has one writer. So the index lives in a second database file beside the store
//! ([`SEARCH_FILE_NAME`]) and is written by its own thread ([`start`]), on the other
//! core, a moment after the events commit: it reads what committed past its high-water mark
//! (`search_state.indexed_seq`), indexes it in large transactions, and moves the mark in the same
//! transaction. It is derived data: it is written with `synchronous = NORMAL`, a crash can only
//! lose the last transactions of it together with their mark, and they are indexed again; a
//! missing or unreadable file is rebuilt from the events.
//!
//! Searches stay exact while the index lags: the events past the mark (the tail) are checked
//! directly (see `events::search_candidates`). Until an upgraded store's existing events are
//! indexed, a search scans as it did before.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, params};

use super::follower::{Follower, wait};
use crate::StoreError;

/// The search index's file name inside the data directory.
pub const SEARCH_FILE_NAME: &str = "vellum-search.sqlite3";

/// The layout of the index; a file of another version is rebuilt.
const FORMAT: i64 = 1;

/// Events indexed per transaction at most.
const BATCH: i64 = 20_000;

/// The least time between two indexing passes while events keep arriving: a pass indexes
/// everything committed since the last, so fewer, larger passes write fewer, larger index
/// segments (FTS5 merges each one into the others later).
const PACE: Duration = Duration::from_millis(250);

/// How long to wait before trying again after a pass failed.
const RETRY: Duration = Duration::from_secs(5);

/// Opens (creating or rebuilding when needed) the search index at `path` for writing.
fn open_index(path: &Path) -> Result<Connection, StoreError> {
    super::create_private_file(path)?;
    let open = || -> rusqlite::Result<Connection> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(Duration::from_secs(10))?;
        // A new index gives the pages of purged entries back, as the store does.
        let pages: i64 = connection.query_row("pragma page_count", [], |row| row.get(0))?;
        if pages == 0 {
            connection.pragma_update(None, "auto_vacuum", "incremental")?;
        }
        connection.pragma_update(None, "journal_mode", "wal")?;
        // Derived data: a crash loses at most the last passes, with their mark (see module docs).
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "temp_store", "memory")?;
        connection.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        let format: Option<i64> = connection
            .query_row("select format from search_state where id = 1", [], |row| row.get(0))
            .ok();
        if format != Some(FORMAT) {
            connection.execute_batch(&format!(
                "drop table if exists event_search;
                 drop table if exists search_state;
                 create table search_state (
                     id integer primary key check (id = 1),
                     format integer not null,
                     indexed_seq integer not null   -- every event with seq <= this is indexed
                 ) strict;
                 insert into search_state (id, format, indexed_seq) values (1, {FORMAT}, 0);
                 create virtual table event_search using fts5(
                     body, content = '', contentless_delete = 1, detail = 'none',
                     tokenize = 'trigram case_sensitive 0'
                 );
                 -- FTS5 merges its segments as rows arrive; merging 16 at a time instead of 4
                 -- rewrites each entry half as often, for a few more segments per lookup.
                 insert into event_search (event_search, rank) values ('automerge', 16);"
            ))?;
        }
        Ok(connection)
    };
    open().or_else(|error| {
        // An unreadable index is rebuilt rather than stopping the store.
        tracing::warn!(%error, path = %path.display(), "rebuilding the search index");
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(name));
        }
        super::create_private_file(path)?;
        open().map_err(|error| StoreError::Unavailable(format!("cannot open the search index: {error}")))
    })
}

/// Opens the index at `index_path` (creating it if needed) and starts the thread that keeps it
/// up with the store at `store_path`.
pub(super) fn start(store_path: &Path, index_path: &Path) -> Result<Follower, StoreError> {
    let index = open_index(index_path)?;
    let store = super::open_connection(store_path, true)?;
    Follower::spawn("vellum-search-index", move |woken| run(&store, &index, &woken))
}

fn run(store: &Connection, index: &Connection, woken: &mpsc::Receiver<()>) {
    let mut last = Instant::now().checked_sub(PACE).unwrap_or_else(Instant::now);
    // Catch up with what was stored before this start, then follow the writer.
    let mut pending = true;
    loop {
        if pending {
            let ready_at = last + PACE;
            let now = Instant::now();
            if ready_at > now && wait(woken, ready_at - now).is_err() {
                break;
            }
            last = Instant::now();
            match catch_up(store, index, woken) {
                Ok(CatchUp::Done) => {}
                Ok(CatchUp::Stopped) => break,
                Err(error) => {
                    tracing::warn!(%error, "indexing events for search failed; retrying");
                    if wait(woken, RETRY).is_err() {
                        break;
                    }
                    continue;
                }
            }
        }
        match woken.recv() {
            Ok(()) => pending = true,
            Err(_) => break,
        }
    }
}

enum CatchUp {
    Done,
    Stopped,
}

/// Indexes every committed event past the mark, in transactions of at most [`BATCH`] events.
fn catch_up(store: &Connection, index: &Connection, woken: &mpsc::Receiver<()>) -> rusqlite::Result<CatchUp> {
    loop {
        let indexed = index_batch(store, index)?;
        if indexed < BATCH {
            return Ok(CatchUp::Done);
        }
        // A long catch-up (an upgraded store) still stops promptly when the store closes.
        if let Err(mpsc::TryRecvError::Disconnected) = woken.try_recv() {
            return Ok(CatchUp::Stopped);
        }
    }
}

/// Indexes up to [`BATCH`] events past the mark; returns how many.
fn index_batch(store: &Connection, index: &Connection) -> rusqlite::Result<i64> {
    let mark: i64 = index.query_row("select indexed_seq from search_state where id = 1", [], |row| {
        row.get(0)
    })?;
    let mut read = store.prepare_cached(
        "select seq, action || char(10) || coalesce(
             (select group_concat(atom, char(10)) from json_tree(json_remove(payload, '$.seals', '$.erased_by')) where atom is not null), '')
         from events where seq > ?1 order by seq limit ?2",
    )?;
    let rows = read
        .query_map(params![mark, BATCH], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let Some(&(last, _)) = rows.last() else {
        return Ok(0);
    };
    let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let transaction = index.unchecked_transaction()?;
    {
        let mut insert = transaction.prepare_cached("insert into event_search (rowid, body) values (?1, ?2)")?;
        for (seq, body) in &rows {
            insert.execute(params![seq, body])?;
        }
    }
    transaction.execute("update search_state set indexed_seq = ?1 where id = 1", [last])?;
    transaction.commit()?;
    Ok(count)
}
