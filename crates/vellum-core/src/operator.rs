//! Operators of the dashboard: email addresses, argon2id password hashes and session tokens.
//!
//! Passwords are people's secrets of low entropy, so they get a slow, memory-hard hash
//! (argon2id with OWASP's minimum parameters: 19 MiB, 2 passes, 1 lane) in PHC string form.
//! Session tokens are 256-bit random values like API keys, so a fast SHA-256 is enough to store
//! them; the CSRF token of a session is derived from its token, so neither needs storing in
//! plain text.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use sha2::{Digest, Sha256};

use crate::id::OperatorId;
use crate::secret_bytes::{constant_time_eq, hex};
use crate::timestamp::Timestamp;

/// The longest email address accepted (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;
/// The shortest password accepted (NIST SP 800-63B's minimum).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, so that hashing a hostile input stays bounded.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// argon2id parameters of new hashes: memory in KiB, passes, lanes.
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
const ARGON2_PASSES: u32 = 2;
const ARGON2_LANES: u32 = 1;
const ARGON2_OUTPUT_BYTES: usize = 32;

/// An operator's email address: trimmed and lower-cased, so that sign-in ignores case.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Why a text is not an acceptable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an email address looks like name@example.com")]
pub struct EmailError;

impl Email {
    /// Parses an address: one `@` with text on both sides, a dot in the domain, no spaces.
    pub fn parse(text: &str) -> Result<Self, EmailError> {
        let address = text.trim().to_lowercase();
        let Some((local, domain)) = address.split_once('@') else {
            return Err(EmailError);
        };
        let acceptable = address.len() <= MAX_EMAIL_LEN
            && !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !address
                .chars()
                .any(|character| character.is_whitespace() || character.is_control());
        if acceptable { Ok(Self(address)) } else { Err(EmailError) }
    }

    /// Returns the address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Email({})", self.0)
    }
}

/// Why a password is refused for a new account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    #[error("a password has at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    /// More than [`MAX_PASSWORD_BYTES`] bytes.
    #[error("a password has at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
}

/// Checks a new password's length (the only rule NIST recommends imposing).
pub fn validate_new_password(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// An argon2id hash in PHC string form: `$argon2id$v=19$m=…,t=…,p=…$salt$hash`.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("PasswordHash(…)")
    }
}

/// The parameters and values read back from a PHC string.
struct ParsedHash {
    memory_kib: u32,
    passes: u32,
    lanes: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl PasswordHash {
    /// Hashes a password with a 16-byte salt drawn by the caller from the OS.
    pub fn create(password: &str, salt: [u8; 16]) -> Self {
        Self::create_in(password, salt, &mut PasswordWorkspace::default())
    }

    /// [`PasswordHash::create`] in a reused workspace.
    pub fn create_in(password: &str, salt: [u8; 16], workspace: &mut PasswordWorkspace) -> Self {
        let output = argon2id(
            password.as_bytes(),
            &salt,
            ARGON2_MEMORY_KIB,
            ARGON2_PASSES,
            ARGON2_LANES,
            workspace,
        )
        .expect("the fixed argon2 parameters are valid");
        Self(format!(
            "$argon2id$v=19$m={ARGON2_MEMORY_KIB},t={ARGON2_PASSES},p={ARGON2_LANES}${}${}",
            B64.encode(salt),
            B64.encode(output)
        ))
    }

    /// Wraps a stored PHC string (it is checked when verifying).
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The PHC string to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns true when `password` hashes to this value (compared in constant time). A stored
    /// string that cannot be read verifies nothing.
    pub fn verify(&self, password: &str) -> bool {
        self.verify_in(password, &mut PasswordWorkspace::default())
    }

    /// [`PasswordHash::verify`] in a reused workspace.
    pub fn verify_in(&self, password: &str, workspace: &mut PasswordWorkspace) -> bool {
        let Some(parsed) = self.parse() else {
            return false;
        };
        if password.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        let Some(output) = argon2id(
            password.as_bytes(),
            &parsed.salt,
            parsed.memory_kib,
            parsed.passes,
            parsed.lanes,
            workspace,
        ) else {
            return false;
        };
        output.len() == parsed.hash.len() && constant_time_eq(&output, &parsed.hash)
    }

    fn parse(&self) -> Option<ParsedHash> {
        let mut parts = self.0.split('$');
        let (Some(""), Some("argon2id"), Some("v=19"), Some(parameters), Some(salt), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let (mut memory_kib, mut passes, mut lanes) = (None, None, None);
        for parameter in parameters.split(',') {
            let (name, value) = parameter.split_once('=')?;
            let value: u32 = value.parse().ok()?;
            match name {
                "m" => memory_kib = Some(value),
                "t" => passes = Some(value),
                "p" => lanes = Some(value),
                _ => return None,
            }
        }
        Some(ParsedHash {
            memory_kib: memory_kib?,
            passes: passes?,
            lanes: lanes?,
            salt: B64.decode(salt).ok()?,
            hash: B64.decode(hash).ok().filter(|hash| (16..=64).contains(&hash.len()))?,
        })
    }
}

/// The memory argon2 works in, kept between hashes.
///
/// A hash needs 19 MiB. Allocating it per check lets the allocator keep a copy per thread that
/// ever ran one, so a burst of sign-ins leaves hundreds of megabytes resident; a worker that
/// reuses one workspace holds exactly one. A workspace grown for a stored hash with larger
/// parameters than ours shrinks back to our size afterwards.
#[derive(Default)]
pub struct PasswordWorkspace {
    blocks: Vec<argon2::Block>,
}

impl fmt::Debug for PasswordWorkspace {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "PasswordWorkspace({} KiB)", self.blocks.len())
    }
}

fn argon2id(
    password: &[u8],
    salt: &[u8],
    memory_kib: u32,
    passes: u32,
    lanes: u32,
    workspace: &mut PasswordWorkspace,
) -> Option<Vec<u8>> {
    // Refuse parameters far beyond ours, so that a tampered row cannot make sign-in hang.
    if memory_kib > 1024 * 1024 || passes > 16 || lanes > 16 {
        return None;
    }
    let params = argon2::Params::new(memory_kib, passes, lanes, Some(ARGON2_OUTPUT_BYTES)).ok()?;
    let block_count = params.block_count();
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut output = vec![0u8; ARGON2_OUTPUT_BYTES];
    if workspace.blocks.len() < block_count {
        workspace.blocks.resize(block_count, argon2::Block::default());
    }
    let hashed =
        hasher.hash_password_into_with_memory(password, salt, &mut output, &mut workspace.blocks[..block_count]);
    let our_block_count = ARGON2_MEMORY_KIB as usize;
    if workspace.blocks.len() > our_block_count {
        workspace.blocks.truncate(our_block_count);
        workspace.blocks.shrink_to_fit();
    }
    hashed.ok()?;
    Some(output)
}

/// An operator account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// Its id.
    pub id: OperatorId,
    /// Its sign-in address.
    pub email: Email,
    /// Its password's hash.
    pub password_hash: PasswordHash,
    /// When it was created.
    pub created_at: Timestamp,
}

/// The secret of a signed-in browser, sent in an HttpOnly cookie. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    /// Builds a new token from 32 random bytes drawn by the caller from the OS.
    pub fn from_random_bytes(bytes: [u8; 32]) -> Self {
        Self(hex(&bytes))
    }

    /// Parses a token from a cookie: 64 lower-case hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 64
            && text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)))
        .then(|| Self(text.to_owned()))
    }

    /// The token itself, for the cookie.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash under which the session is stored and looked up.
    pub fn hash(&self) -> SessionTokenHash {
        SessionTokenHash(domain_hash(b"vellum-session\0", self.0.as_bytes()))
    }

    /// The CSRF token of this session: derived from the token, so it needs no storage, and
    /// unguessable without the token, which scripts of other sites cannot read.
    pub fn csrf_token(&self) -> String {
        hex(&domain_hash(b"vellum-csrf\0", self.0.as_bytes()))
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("SessionToken(…)")
    }
}

/// The SHA-256 of a session token, which is what the store keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SessionTokenHash(pub [u8; 32]);

/// Compares a presented CSRF token with the session's, in constant time.
pub fn csrf_token_matches(expected: &str, presented: &str) -> bool {
    constant_time_eq(expected.as_bytes(), presented.as_bytes())
}

/// A signed-in session of an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorSession {
    /// The hash of its token.
    pub token_hash: SessionTokenHash,
    /// Whose session it is.
    pub operator_id: OperatorId,
    /// The operator's address (read with the session).
    pub email: Email,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops being valid.
    pub expires_at: Timestamp,
}

fn domain_hash(domain: &[u8], value: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    hasher.update(value);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Admin@Example.COM ").unwrap().as_str(),
            "admin@example.com"
        );
        for bad in [
            "",
            "admin",
            "@example.com",
            "admin@",
            "admin@example",
            "a b@example.com",
            "a@b@c.com",
            "a@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn passwords_have_a_length_rule_only() {
        assert_eq!(validate_new_password("1234567"), Err(PasswordError::TooShort));
        assert!(validate_new_password("12345678").is_ok());
        assert!(validate_new_password("ünïcødé!").is_ok());
        assert_eq!(validate_new_password(&"x".repeat(1025)), Err(PasswordError::TooLong));
    }

    #[test]
    fn a_password_hash_verifies_only_its_password() {
        let hash = PasswordHash::create("correct horse battery", [7; 16]);
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hash.verify("correct horse battery"));
        assert!(!hash.verify("correct horse batterY"));
        assert!(!hash.verify(""));
        // Another salt gives another hash of the same password.
        assert_ne!(hash, PasswordHash::create("correct horse battery", [8; 16]));
        // A stored hash read back verifies the same way.
        assert!(PasswordHash::from_stored(hash.as_str().to_owned()).verify("correct horse battery"));
    }

    #[test]
    fn the_hash_matches_an_independent_argon2_implementation() {
        // Produced by the reference C implementation (through Python's argon2-cffi):
        // hash_secret(b"password", b"somesaltsomesalt", time_cost=2, memory_cost=16384,
        // parallelism=1, hash_len=32, type=Type.ID).
        let reference =
            "$argon2id$v=19$m=16384,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$hr6tIZjippRBBcq7etN3TZy+L1awu/PtNMKWpKxlc9Y";
        let stored = PasswordHash::from_stored(reference.to_owned());
        assert!(stored.verify("password"));
        assert!(!stored.verify("Password"));
    }

    #[test]
    fn unreadable_or_hostile_hashes_verify_nothing() {
        for stored in [
            "",
            "plain",
            "$argon2i$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=99999999,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=19456,t=2$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(
                !PasswordHash::from_stored(stored.to_owned()).verify("password"),
                "{stored}"
            );
        }
    }

    #[test]
    fn session_tokens_hash_and_derive_distinct_values() {
        let token = SessionToken::from_random_bytes([1; 32]);
        assert_eq!(token.expose().len(), 64);
        assert_eq!(SessionToken::parse(token.expose()), Some(token.clone()));
        assert!(SessionToken::parse("XYZ").is_none());
        assert!(SessionToken::parse(&"A".repeat(64)).is_none());
        let other = SessionToken::from_random_bytes([2; 32]);
        assert_ne!(token.hash(), other.hash());
        assert_ne!(token.csrf_token(), other.csrf_token());
        assert_ne!(hex(&token.hash().0), token.csrf_token());
        assert!(csrf_token_matches(&token.csrf_token(), &token.csrf_token()));
        assert!(!csrf_token_matches(&token.csrf_token(), &other.csrf_token()));
        assert!(!csrf_token_matches(&token.csrf_token(), ""));
        assert_eq!(format!("{token:?}"), "SessionToken(…)");
    }
}
