//! API keys: secrets `sk_…` that clients send as `Authorization: Bearer`, of which only a
//! SHA-256 hash is ever stored.
//!
//! A fast hash is the right tool here (unlike for passwords): generated secrets carry 256 bits of
//! entropy, so a stolen hash cannot be brute-forced, and authenticating a request must stay cheap.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::id::ApiKeyId;
use crate::timestamp::Timestamp;

/// The longest secret accepted, so that a hostile header cannot make hashing expensive.
const MAX_SECRET_LEN: usize = 256;
/// The shortest secret accepted; generated ones are much longer (`sk_` + 64 hex digits).
const MIN_SECRET_LEN: usize = 16;

/// Why a string is not an acceptable API key secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeySecretError {
    /// The secret does not start with `sk_`.
    #[error("an API key starts with `sk_`")]
    MissingPrefix,
    /// The secret is shorter or longer than allowed.
    #[error("an API key is between {MIN_SECRET_LEN} and {MAX_SECRET_LEN} characters long")]
    BadLength,
    /// The secret contains characters other than letters, digits, `_` and `-`.
    #[error("an API key contains only letters, digits, `_` and `-`")]
    BadCharacters,
}

/// A secret API key. Its `Debug` form never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// Parses a secret given by a person or a client.
    pub fn parse(text: &str) -> Result<Self, ApiKeySecretError> {
        if !text.starts_with("sk_") {
            return Err(ApiKeySecretError::MissingPrefix);
        }
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&text.len()) {
            return Err(ApiKeySecretError::BadLength);
        }
        if !text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
        {
            return Err(ApiKeySecretError::BadCharacters);
        }
        Ok(Self(text.to_owned()))
    }

    /// Builds a new secret from 32 random bytes drawn by the caller from the OS.
    pub fn from_random_bytes(bytes: [u8; 32]) -> Self {
        Self(format!("sk_{}", crate::secret_bytes::hex(&bytes)))
    }

    /// Returns the secret itself, for printing it once to the person who created it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns the hash under which the key is stored and looked up.
    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// Returns a form safe to show and log: `sk_…` and the last four characters.
    pub fn redacted(&self) -> String {
        let tail = &self.0[self.0.len() - 4..];
        format!("sk_…{tail}")
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "ApiKeySecret({})", self.redacted())
    }
}

/// The SHA-256 hash of a secret: what the store keeps instead of the secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ApiKeyHash(pub [u8; 32]);

impl ApiKeyHash {
    /// Compares two hashes in time that does not depend on where they differ.
    ///
    /// Keys are found by an index lookup on the hash, whose timing can only reveal information
    /// about a hash (useless without a preimage); this comparison is the final check and leaks
    /// nothing about the stored value.
    pub fn constant_time_eq(&self, other: &Self) -> bool {
        crate::secret_bytes::constant_time_eq(&self.0, &other.0)
    }
}

/// What is stored about an API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// The key's id, which is safe to show and to name in `revoke`.
    pub id: ApiKeyId,
    /// A name given by the operator.
    pub name: String,
    /// The hash of the secret.
    pub secret_hash: ApiKeyHash,
    /// `sk_…` and the last four characters of the secret, to tell keys apart.
    pub redacted_secret: String,
    /// When the key was created.
    pub created_at: Timestamp,
    /// When the key was revoked, if it was; a revoked key authenticates nothing.
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    /// Returns true while the key may authenticate requests.
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// Checks an API key's name: 1 to 200 characters, no control characters.
pub fn validate_api_key_name(name: &str) -> Result<(), &'static str> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err("an API key name must not be empty");
    }
    if name.chars().count() > 200 {
        return Err("an API key name is at most 200 characters long");
    }
    if crate::validation::has_control_characters(name) {
        return Err("an API key name must not contain control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse_and_hash_stably() {
        let secret = ApiKeySecret::from_random_bytes([0xab; 32]);
        assert_eq!(secret.expose().len(), 67);
        assert_eq!(ApiKeySecret::parse(secret.expose()), Ok(secret.clone()));
        assert_eq!(secret.hash(), ApiKeySecret::parse(secret.expose()).unwrap().hash());
        assert_eq!(secret.redacted(), "sk_…abab");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = ApiKeySecret::parse("sk_test_0123456789abcdef").unwrap();
        let debug = format!("{secret:?}");
        assert!(!debug.contains("0123456789"), "{debug}");
        assert!(debug.contains("cdef"));
    }

    #[test]
    fn rejects_malformed_secrets() {
        assert_eq!(
            ApiKeySecret::parse("pk_0123456789abcdef"),
            Err(ApiKeySecretError::MissingPrefix)
        );
        assert_eq!(ApiKeySecret::parse("sk_short"), Err(ApiKeySecretError::BadLength));
        assert_eq!(
            ApiKeySecret::parse(&format!("sk_{}", "a".repeat(300))),
            Err(ApiKeySecretError::BadLength)
        );
        assert_eq!(
            ApiKeySecret::parse("sk_0123456789 abcdef"),
            Err(ApiKeySecretError::BadCharacters)
        );
    }

    #[test]
    fn constant_time_eq_compares_every_byte() {
        let one = ApiKeyHash([1; 32]);
        let mut other = [1; 32];
        assert!(one.constant_time_eq(&ApiKeyHash(other)));
        other[31] = 2;
        assert!(!one.constant_time_eq(&ApiKeyHash(other)));
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_api_key_name("ci").is_ok());
        assert!(validate_api_key_name("  ").is_err());
        assert!(validate_api_key_name("a\nb").is_err());
        assert!(validate_api_key_name(&"x".repeat(201)).is_err());
    }
}
