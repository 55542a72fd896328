//! Files that hold data are readable by Vellum's own user only: directories 0700, files 0600,
//! whatever the umask Vellum was started with.
//!
//! The server sets its umask to 077 at start ([`restrict_umask`]), so that every file it or a
//! library creates (SQLite's `-wal` and `-shm`, export files, temporary files) is private; the
//! data directory is created private, and [`make_data_dir_private`] tightens a data directory
//! written by an older version or copied in with looser modes.

use std::io;
use std::path::Path;

/// Mode of directories Vellum creates.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of files Vellum creates.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Makes files and directories that this process creates from now on private to its user.
pub fn restrict_umask() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// The names, directly in the data directory, of what Vellum keeps there: the database, the
/// search index and their companions (`-wal`, `-shm`), the key files, and the export files' folder.
const DATA_DIR_ENTRIES: [&str; 7] = [
    crate::sqlite::DATABASE_FILE_NAME,
    crate::sqlite::SEARCH_FILE_NAME,
    crate::sqlite::LOCK_FILE_NAME,
    "log-signing-key",
    "export-link-key",
    "stream-secrets-key",
    "exports",
];

/// Creates `path` and its missing parents with mode 0700 (existing ones keep their mode).
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, PRIVATE_DIR_MODE);
    builder.create(path)
}

/// Makes the data directory 0700 and what Vellum keeps in it private (see [`make_private`]).
/// Anything else an operator put there is left as it is.
pub fn make_data_dir_private(data_dir: &Path) -> io::Result<()> {
    set_mode(data_dir, PRIVATE_DIR_MODE)?;
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if DATA_DIR_ENTRIES.iter().any(|ours| name.starts_with(ours)) {
            make_private(&entry.path())?;
        }
    }
    Ok(())
}

/// Makes `path` private: a directory and everything under it (directories 0700, files 0600),
/// or a single file (0600). Symbolic links are not followed.
pub fn make_private(path: &Path) -> io::Result<()> {
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.is_dir() {
        set_mode(path, PRIVATE_DIR_MODE)?;
        for entry in std::fs::read_dir(path)? {
            make_private(&entry?.path())?;
        }
        Ok(())
    } else if metadata.is_file() {
        set_mode(path, PRIVATE_FILE_MODE)
    } else {
        Ok(())
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777;
    if current == mode {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn loose_trees_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        create_private_dir_all(&data.join("exports")).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("exports")), 0o700);
        let export = data.join("exports").join("x.csv");
        let wal = data.join("vellum.sqlite3-wal");
        let unrelated = data.join("notes.sh");
        for file in [&export, &wal, &unrelated] {
            std::fs::write(file, "a").unwrap();
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        make_data_dir_private(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&export), 0o600);
        assert_eq!(mode(&wal), 0o600);
        assert_eq!(mode(&unrelated), 0o755, "what is not Vellum's is left alone");
    }
}
