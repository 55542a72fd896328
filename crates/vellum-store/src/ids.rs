//! The clock and randomness that the pure core leaves to its callers.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use ulid::{Generator, Ulid};
use vellum_core::{ApiKeySecret, Timestamp};

/// Returns the current time at millisecond precision.
pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix_millis(millis).expect("the system clock is within years 1970 to 9999")
}

/// Generates ULIDs that increase strictly within this process, even within one millisecond,
/// so that rows created in order also sort in order.
#[derive(Debug, Default)]
pub(crate) struct IdGenerator {
    generator: Mutex<Generator>,
}

impl IdGenerator {
    pub(crate) fn next(&self) -> Ulid {
        let mut generator = self.generator.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Overflow needs 2^80 ids in one millisecond; fall back to a fresh random id regardless.
        generator.generate().unwrap_or_else(|_| Ulid::generate())
    }
}

/// Draws 32 bytes from the operating system's random source.
pub fn random_bytes() -> std::io::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(bytes)
}

/// Hashes a new password with a fresh 16-byte salt from the operating system's random source.
/// Slow on purpose (argon2id): call it off the async threads.
pub fn hash_new_password(password: &str) -> std::io::Result<vellum_core::operator::PasswordHash> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(std::io::Error::other)?;
    Ok(vellum_core::operator::PasswordHash::create(password, salt))
}

/// Draws a new API key secret from the operating system's random source.
pub fn generate_api_key_secret() -> std::io::Result<ApiKeySecret> {
    Ok(ApiKeySecret::from_random_bytes(random_bytes()?))
}
