//! The log signing key: generated on first start into the data directory (mode 0600), or
//! loaded from a configured file. The file holds the base64 of a 32-byte Ed25519 seed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use vellum_core::checkpoint::NoteSigner;

/// The key file's name inside the data directory.
pub const KEY_FILE_NAME: &str = "log-signing-key";

/// Where the key lives: the configured path, or the data directory.
pub fn key_path(configured: Option<&Path>, data_dir: &Path) -> PathBuf {
    configured.map_or_else(|| data_dir.join(KEY_FILE_NAME), Path::to_path_buf)
}

/// Reads a key file: the base64 of a 32-byte seed.
pub fn read_seed(path: &Path) -> anyhow::Result<[u8; 32]> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the signing key {}", path.display()))?;
    let bytes = BASE64
        .decode(text.trim())
        .with_context(|| format!("the signing key {} is not base64", path.display()))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        anyhow::anyhow!(
            "the signing key {} does not hold a 32-byte Ed25519 seed",
            path.display()
        )
    })
}

/// Creates `path` (mode 0600) holding the base64 of 32 fresh random bytes, unless it exists.
fn create_secret_file(path: &Path, what: &str) -> anyhow::Result<()> {
    if path
        .try_exists()
        .with_context(|| format!("cannot check {}", path.display()))?
    {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        vellum_store::private_files::create_private_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let seed = vellum_store::random_bytes().with_context(|| format!("cannot draw random bytes for the {what}"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            writeln!(file, "{}", BASE64.encode(seed))?;
            file.sync_all()?;
            tracing::info!(path = %path.display(), "generated the {what}");
            Ok(())
        }
        // Another process created it first: use that one.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Loads the key, generating it first when it is the default path and does not exist yet.
pub fn load_or_create(configured: Option<&Path>, data_dir: &Path, name: &str) -> anyhow::Result<Arc<NoteSigner>> {
    let path = key_path(configured, data_dir);
    if configured.is_none() {
        create_secret_file(&path, "log signing key")?;
    }
    let seed = read_seed(&path)?;
    Ok(Arc::new(
        NoteSigner::new(name, &seed).map_err(|error| anyhow::anyhow!("log name `{name}`: {error}"))?,
    ))
}

/// The file name, in the data directory, of the key that signs export download links.
pub const LINK_KEY_FILE_NAME: &str = "export-link-key";

/// Loads the export download link key from the data directory, creating it on first start.
/// (Several nodes serving the same exports need the same file.)
pub fn load_or_create_link_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join(LINK_KEY_FILE_NAME);
    create_secret_file(&path, "export link key")?;
    read_seed(&path)
}

/// The file name, in the data directory, of the key that seals log streams' secrets.
pub const STREAM_KEY_FILE_NAME: &str = "stream-secrets-key";

/// Loads the key that seals log streams' secrets from the data directory, creating it on first
/// start.
pub fn load_or_create_stream_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join(STREAM_KEY_FILE_NAME);
    create_secret_file(&path, "log stream key")?;
    read_seed(&path)
}

/// Loads an existing key without creating one.
pub fn load_existing(configured: Option<&Path>, data_dir: &Path, name: &str) -> anyhow::Result<NoteSigner> {
    let seed = read_seed(&key_path(configured, data_dir))?;
    NoteSigner::new(name, &seed).map_err(|error| anyhow::anyhow!("log name `{name}`: {error}"))
}
