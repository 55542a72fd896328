//! Online backups of the embedded store, and laying one down again.
//!
//! A backup is one SQLite file: a consistent snapshot of `vellum.sqlite3` written by
//! `VACUUM INTO`, which reads the whole database inside one read transaction, so that it holds
//! exactly the commits made before it began (every acknowledged event among them) and nothing
//! half-written, while the server goes on writing. Into that copy goes one more table,
//! `vellum_backup`, with the backup's format and the files the caller adds (the data
//! directory's keys: without them a restored store could not sign, open its exports' links or
//! reach its log streams' destinations). The search index is derived data and is rebuilt from
//! the events when the restored store first opens.
//!
//! The file is written private (0600) under a temporary name and renamed into place only once
//! complete and synced, so that a backup that failed halfway never looks like one.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, params};

use super::{DATABASE_FILE_NAME, LOCK_FILE_NAME, lock_data_dir};
use crate::StoreError;

/// The format of backups this version writes and reads.
pub const BACKUP_FORMAT: &str = "vellum-backup-1";

/// The table of a backup that is not part of the store.
const BACKUP_TABLE: &str = "vellum_backup";

/// What a backup holds besides the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupFile {
    /// Its name in the data directory (a plain file name, no directories).
    pub name: String,
    /// Its bytes.
    pub contents: Vec<u8>,
}

/// What [`backup`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    /// The backup file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The store's schema version in it.
    pub schema_version: i64,
    /// The files it carries besides the database.
    pub files: Vec<String>,
}

/// What [`restore`] laid down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreSummary {
    /// The database file.
    pub database: PathBuf,
    /// The files written beside it.
    pub files: Vec<PathBuf>,
    /// The store's schema version.
    pub schema_version: i64,
}

fn failed(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {error}"))
}

/// Writes a backup of the store in `data_dir` to `output` (which must not exist), with `files`.
/// The store may be open and written by a server meanwhile.
pub fn backup(data_dir: &Path, output: &Path, files: &[BackupFile]) -> Result<BackupSummary, StoreError> {
    let database = data_dir.join(DATABASE_FILE_NAME);
    if !database.is_file() {
        return Err(StoreError::InvalidInput {
            field: "data_dir",
            message: format!(
                "{} holds no store ({DATABASE_FILE_NAME} is missing)",
                data_dir.display()
            ),
        });
    }
    for file in files {
        check_name(&file.name)?;
    }
    if output.exists() {
        return Err(StoreError::InvalidInput {
            field: "output",
            message: format!("{} exists; a backup never overwrites a file", output.display()),
        });
    }
    // Shared, as a server holds it: a compaction cannot rewrite the store under the copy.
    let _lock = lock_data_dir(data_dir, false)?;
    let partial = partial_path(output);
    let _ = std::fs::remove_file(&partial);
    let written = write_backup(&database, &partial, files).and_then(|schema_version| {
        sync_file(&partial)?;
        std::fs::rename(&partial, output).map_err(|error| failed("cannot move the backup into place", error))?;
        sync_parent(output);
        Ok(schema_version)
    });
    let schema_version = match written {
        Ok(version) => version,
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            return Err(error);
        }
    };
    let bytes = std::fs::metadata(output).map_or(0, |metadata| metadata.len());
    Ok(BackupSummary {
        path: output.to_path_buf(),
        bytes,
        schema_version,
        files: files.iter().map(|file| file.name.clone()).collect(),
    })
}

fn write_backup(database: &Path, partial: &Path, files: &[BackupFile]) -> Result<i64, StoreError> {
    // Created private before SQLite writes into it.
    create_private_new(partial)?;
    let source = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| failed("cannot open the store", error))?;
    source
        .busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|error| failed("cannot set a busy timeout", error))?;
    let target = partial
        .to_str()
        .ok_or_else(|| StoreError::InvalidInput {
            field: "output",
            message: "the backup's path is not valid UTF-8".into(),
        })?
        .to_owned();
    // VACUUM INTO wants an empty or absent file: the private one created above is empty.
    source
        .execute("vacuum into ?1", [&target])
        .map_err(|error| failed("cannot copy the store", error))?;
    drop(source);
    let copy = Connection::open(partial).map_err(|error| failed("cannot open the backup", error))?;
    let schema_version = schema_version(&copy)?;
    copy.execute_batch(&format!(
        "create table {BACKUP_TABLE} (name text primary key, value blob not null) strict;"
    ))
    .map_err(|error| failed("cannot write the backup", error))?;
    let created = crate::now().to_wire();
    let mut insert = copy
        .prepare(&format!("insert into {BACKUP_TABLE} (name, value) values (?1, ?2)"))
        .map_err(|error| failed("cannot write the backup", error))?;
    for (name, value) in [
        ("format", BACKUP_FORMAT.as_bytes().to_vec()),
        ("created_at", created.into_bytes()),
    ]
    .into_iter()
    .chain(files.iter().map(|file| (file.name.as_str(), file.contents.clone())))
    {
        let key = if matches!(name, "format" | "created_at") {
            name.to_owned()
        } else {
            format!("file:{name}")
        };
        insert
            .execute(params![key, value])
            .map_err(|error| failed("cannot write the backup", error))?;
    }
    drop(insert);
    copy.close()
        .map_err(|(_, error)| failed("cannot close the backup", error))?;
    Ok(schema_version)
}

/// Lays the backup `file` down as the store of `data_dir`, which must be empty or absent, with
/// the files it carries. Checks the backup first: its format, SQLite's `quick_check`, and a
/// schema version this binary knows.
pub fn restore(file: &Path, data_dir: &Path) -> Result<RestoreSummary, StoreError> {
    let not_a_backup = |message: String| StoreError::InvalidInput { field: "file", message };
    if !file.is_file() {
        return Err(not_a_backup(format!("{} is not a file", file.display())));
    }
    if data_dir.exists() {
        let mut entries = std::fs::read_dir(data_dir)
            .map_err(|error| failed(&format!("cannot read {}", data_dir.display()), error))?;
        if entries.next().is_some() {
            return Err(StoreError::InvalidInput {
                field: "data_dir",
                message: format!(
                    "{} is not empty; restore into an empty or new directory",
                    data_dir.display()
                ),
            });
        }
    }
    let (schema_version, files) = {
        let backup = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|error| not_a_backup(format!("{} cannot be opened: {error}", file.display())))?;
        let format: Option<Vec<u8>> = backup
            .query_row(
                &format!("select value from {BACKUP_TABLE} where name = 'format'"),
                [],
                |row| row.get(0),
            )
            .ok();
        match format.as_deref() {
            Some(format) if format == BACKUP_FORMAT.as_bytes() => {}
            Some(other) => {
                return Err(not_a_backup(format!(
                    "{} is a backup in format {}, which this version cannot read",
                    file.display(),
                    String::from_utf8_lossy(other)
                )));
            }
            None => return Err(not_a_backup(format!("{} is not a Vellum backup", file.display()))),
        }
        let check: String = backup
            .query_row("pragma quick_check", [], |row| row.get(0))
            .map_err(|error| not_a_backup(format!("{} cannot be checked: {error}", file.display())))?;
        if check != "ok" {
            return Err(not_a_backup(format!("{} is damaged: {check}", file.display())));
        }
        let version = schema_version(&backup)?;
        if version > super::LATEST_SCHEMA_VERSION {
            return Err(not_a_backup(format!(
                "{} holds a store at schema version {version}, newer than this binary's {}: restore it with that release or a later one",
                file.display(),
                super::LATEST_SCHEMA_VERSION
            )));
        }
        let mut files = Vec::new();
        let mut statement = backup
            .prepare(&format!(
                "select substr(name, 6), value from {BACKUP_TABLE} where name like 'file:%' order by name"
            ))
            .map_err(|error| not_a_backup(format!("{} cannot be read: {error}", file.display())))?;
        let rows = statement
            .query_map([], |row| {
                Ok(BackupFile {
                    name: row.get(0)?,
                    contents: row.get(1)?,
                })
            })
            .map_err(|error| not_a_backup(format!("{} cannot be read: {error}", file.display())))?;
        for row in rows {
            let carried = row.map_err(|error| not_a_backup(format!("{} cannot be read: {error}", file.display())))?;
            check_name(&carried.name)?;
            files.push(carried);
        }
        (version, files)
    };
    crate::private_files::create_private_dir_all(data_dir)
        .map_err(|error| failed(&format!("cannot create {}", data_dir.display()), error))?;
    crate::private_files::make_private(data_dir)
        .map_err(|error| failed(&format!("cannot make {} private", data_dir.display()), error))?;
    // Nothing may open the directory as a store while it is being laid down.
    let _lock = lock_data_dir(data_dir, true)?;
    let database = data_dir.join(DATABASE_FILE_NAME);
    let partial = partial_path(&database);
    create_private_new(&partial)?;
    let copied = (|| {
        let mut from = std::fs::File::open(file).map_err(|error| failed("cannot read the backup", error))?;
        let mut to = std::fs::OpenOptions::new()
            .write(true)
            .open(&partial)
            .map_err(|error| failed("cannot write the store", error))?;
        std::io::copy(&mut from, &mut to).map_err(|error| failed("cannot write the store", error))?;
        to.flush().map_err(|error| failed("cannot write the store", error))?;
        drop(to);
        let store = Connection::open(&partial).map_err(|error| failed("cannot open the restored store", error))?;
        store
            .execute_batch(&format!("drop table {BACKUP_TABLE}; pragma journal_mode = wal;"))
            .map_err(|error| failed("cannot finish the restored store", error))?;
        store
            .close()
            .map_err(|(_, error)| failed("cannot close the restored store", error))?;
        sync_file(&partial)?;
        std::fs::rename(&partial, &database).map_err(|error| failed("cannot move the store into place", error))
    })();
    if let Err(error) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    let mut written = Vec::new();
    for carried in files {
        let path = data_dir.join(&carried.name);
        create_private_new(&path)?;
        std::fs::write(&path, &carried.contents)
            .map_err(|error| failed(&format!("cannot write {}", path.display()), error))?;
        sync_file(&path)?;
        written.push(path);
    }
    sync_parent(&database);
    Ok(RestoreSummary {
        database,
        files: written,
        schema_version,
    })
}

/// A carried file's name must be a plain file name, and not one of the store's own.
fn check_name(name: &str) -> Result<(), StoreError> {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
        && !name.starts_with('.')
        && !name.starts_with(DATABASE_FILE_NAME)
        && !name.starts_with(super::SEARCH_FILE_NAME)
        && name != LOCK_FILE_NAME;
    if plain {
        Ok(())
    } else {
        Err(StoreError::InvalidInput {
            field: "file",
            message: format!("a backup cannot carry a file named {name:?}"),
        })
    }
}

fn schema_version(connection: &Connection) -> Result<i64, StoreError> {
    connection
        .query_row("select coalesce(max(version), 0) from schema_migrations", [], |row| {
            row.get(0)
        })
        .map_err(|error| StoreError::InvalidInput {
            field: "file",
            message: format!("the database holds no Vellum store: {error}"),
        })
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

/// Creates an empty file readable by this user only; it must not exist.
fn create_private_new(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, crate::private_files::PRIVATE_FILE_MODE);
    options
        .open(path)
        .map(drop)
        .map_err(|error| failed(&format!("cannot create {}", path.display()), error))
}

fn sync_file(path: &Path) -> Result<(), StoreError> {
    std::fs::File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|error| failed(&format!("cannot sync {}", path.display()), error))
}

/// Makes a rename durable (best effort: not every file system syncs directories).
fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(directory) = std::fs::File::open(parent) {
            let _ = directory.sync_all();
        }
    }
}
