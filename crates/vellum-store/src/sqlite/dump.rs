//! Raw rows out of the embedded store, for `vellum copy`: each table read in one snapshot and
//! handed over in chunks, so that a table of any size streams through bounded memory.

use rusqlite::types::ValueRef;
use tokio::sync::mpsc;

use super::SqliteStore;
use crate::StoreError;

/// One stored value, as SQLite holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// A blob.
    Blob(Vec<u8>),
}

/// Rows handed over at a time.
const CHUNK_ROWS: usize = 2_000;

impl SqliteStore {
    /// Runs `sql` (with `parameters`) in one read transaction and sends its rows, in chunks, to
    /// `rows`; returns once every row was sent (or the receiver went away).
    pub(crate) async fn stream_rows(
        &self,
        sql: &'static str,
        parameters: Vec<i64>,
        rows: mpsc::Sender<Vec<Vec<Cell>>>,
    ) -> Result<(), StoreError> {
        self.read(move |connection| {
            let transaction = connection.unchecked_transaction()?;
            let mut statement = transaction.prepare(sql)?;
            let columns = statement.column_count();
            let mut cursor = statement.query(rusqlite::params_from_iter(parameters))?;
            let mut chunk = Vec::with_capacity(CHUNK_ROWS);
            while let Some(row) = cursor.next()? {
                let mut cells = Vec::with_capacity(columns);
                for column in 0..columns {
                    cells.push(match row.get_ref(column)? {
                        ValueRef::Null => Cell::Null,
                        ValueRef::Integer(value) => Cell::Int(value),
                        ValueRef::Text(text) => Cell::Text(
                            String::from_utf8(text.to_vec())
                                .map_err(|_| StoreError::Internal(format!("column {column} holds invalid UTF-8")))?,
                        ),
                        ValueRef::Blob(blob) => Cell::Blob(blob.to_vec()),
                        ValueRef::Real(_) => {
                            return Err(StoreError::Internal(format!("column {column} holds a real number")));
                        }
                    });
                }
                chunk.push(cells);
                if chunk.len() == CHUNK_ROWS && rows.blocking_send(std::mem::take(&mut chunk)).is_err() {
                    return Ok(());
                }
            }
            if !chunk.is_empty() {
                let _ = rows.blocking_send(chunk);
            }
            Ok(())
        })
        .await
    }
}
