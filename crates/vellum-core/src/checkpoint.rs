//! Checkpoints: C2SP `tlog-checkpoint` bodies in C2SP signed notes, signed with Ed25519.
//!
//! A checkpoint body is three lines: the log's origin, its size in decimal, and its root hash in
//! standard base64. A signed note appends a blank line and one signature line per signer:
//! `— <key name> <base64(key id ‖ signature)>`, where the key id is the first four bytes of
//! SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public key) and the signature covers the body text. The
//! verifier key string is `<key name>+<key id in hex>+<base64(0x01 ‖ public key)>`. Go's
//! `golang.org/x/mod/sumdb/note` and the transparency-log tooling built on it read both.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// The signature algorithm byte of Ed25519 in C2SP signed notes.
const ED25519_ALGORITHM: u8 = 0x01;

/// A log's signed statement of its size and root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name: one line, unique per log.
    pub origin: String,
    /// How many leaves the log had.
    pub size: u64,
    /// The root hash of those leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The checkpoint body (three lines, each ending in a newline).
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.root))
    }

    /// Parses a checkpoint body; extension lines after the root are ignored.
    pub fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|line| !line.is_empty())
            .ok_or(CheckpointError::Malformed("origin"))?;
        let size = lines
            .next()
            .filter(|line| !line.is_empty() && line.bytes().all(|byte| byte.is_ascii_digit()))
            .and_then(|line| line.parse().ok())
            .ok_or(CheckpointError::Malformed("size"))?;
        let root = lines
            .next()
            .and_then(|line| BASE64.decode(line).ok())
            .and_then(|bytes| Hash::try_from(bytes).ok())
            .ok_or(CheckpointError::Malformed("root hash"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// Why a note or key does not check out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// A part of the note or checkpoint is not in the expected form.
    #[error("malformed checkpoint: bad {0}")]
    Malformed(&'static str),
    /// The verifier key string is not in the expected form.
    #[error("malformed verifier key: {0}")]
    BadKey(&'static str),
    /// No signature line by the expected key.
    #[error("the note carries no signature by key {0}")]
    NoSignature(String),
    /// The signature does not verify.
    #[error("the signature by key {0} does not verify")]
    BadSignature(String),
}

/// A log's signing identity: a key name and an Ed25519 key pair.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    key_id: [u8; 4],
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("NoteSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ED25519_ALGORITHM]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Checks a key name: non-empty, no white space and no `+`.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|character| character.is_whitespace() || character == '+')
}

impl NoteSigner {
    /// Builds a signer from a 32-byte Ed25519 seed.
    pub fn new(name: &str, seed: &[u8; 32]) -> Result<Self, CheckpointError> {
        if !is_valid_key_name(name) {
            return Err(CheckpointError::BadKey(
                "the key name must be non-empty, without spaces or '+'",
            ));
        }
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key,
            key_id,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The C2SP verifier key string: `<name>+<key id hex>+<base64(0x01 ‖ public key)>`.
    pub fn verifier_key(&self) -> String {
        let mut encoded = vec![ED25519_ALGORITHM];
        encoded.extend_from_slice(&self.public_key());
        let id: String = self.key_id.iter().map(|byte| format!("{byte:02x}")).collect();
        format!("{}+{id}+{}", self.name, BASE64.encode(encoded))
    }

    /// Signs a checkpoint and returns the signed note.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let signature: Signature = self.key.sign(body.as_bytes());
        let mut signed = self.key_id.to_vec();
        signed.extend_from_slice(&signature.to_bytes());
        format!("{body}\n\u{2014} {} {}\n", self.name, BASE64.encode(signed))
    }
}

/// A parsed verifier key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    /// The key name.
    pub name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses a C2SP verifier key string.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        // The base64 key may itself contain '+': split at the first two only.
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CheckpointError::BadKey("expected <name>+<hex key id>+<base64 key>"));
        };
        if !is_valid_key_name(name) {
            return Err(CheckpointError::BadKey("bad key name"));
        }
        let key_bytes = BASE64
            .decode(key_b64)
            .map_err(|_| CheckpointError::BadKey("the key is not base64"))?;
        let (Some(&ED25519_ALGORITHM), Ok(public_key)) = (
            key_bytes.first(),
            <[u8; 32]>::try_from(key_bytes.get(1..).unwrap_or_default()),
        ) else {
            return Err(CheckpointError::BadKey("not an Ed25519 key"));
        };
        let key =
            VerifyingKey::from_bytes(&public_key).map_err(|_| CheckpointError::BadKey("not a valid Ed25519 point"))?;
        let key_id = key_id(name, &public_key);
        let expected_hex: String = key_id.iter().map(|byte| format!("{byte:02x}")).collect();
        if id_hex != expected_hex {
            return Err(CheckpointError::BadKey("the key id does not match the key"));
        }
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Builds a verifier from a raw public key and the key name it is published under.
    pub fn from_public_key(name: &str, public_key: &[u8; 32]) -> Result<Self, CheckpointError> {
        let key =
            VerifyingKey::from_bytes(public_key).map_err(|_| CheckpointError::BadKey("not a valid Ed25519 point"))?;
        Ok(Self {
            name: name.to_owned(),
            key_id: key_id(name, public_key),
            key,
        })
    }

    /// Checks a signed note and returns the checkpoint it signs.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        let Some(split) = note.find("\n\n") else {
            return Err(CheckpointError::Malformed("note: no blank line before the signatures"));
        };
        let (body, signatures) = (&note[..=split], &note[split + 2..]);
        let prefix = format!("\u{2014} {} ", self.name);
        for line in signatures.lines() {
            let Some(encoded) = line.strip_prefix(&prefix) else {
                continue;
            };
            let Ok(bytes) = BASE64.decode(encoded) else {
                continue;
            };
            if bytes.len() != 4 + 64 || bytes[..4] != self.key_id {
                continue;
            }
            let signature = Signature::from_bytes(&<[u8; 64]>::try_from(&bytes[4..]).expect("length checked"));
            return match self.key.verify(body.as_bytes(), &signature) {
                Ok(()) => Checkpoint::parse_body(body),
                Err(_) => Err(CheckpointError::BadSignature(self.name.clone())),
            };
        }
        Err(CheckpointError::NoSignature(self.name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> NoteSigner {
        NoteSigner::new("vellum.example", &[7; 32]).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "vellum.example/org_01EHWNCE74X7JSDV0X3SZ3KJNY".into(),
            size: 42,
            root: [9; 32],
        }
    }

    #[test]
    fn signed_notes_have_the_c2sp_shape_and_verify() {
        let note = signer().sign(&checkpoint());
        let lines: Vec<&str> = note.lines().collect();
        assert_eq!(lines[0], "vellum.example/org_01EHWNCE74X7JSDV0X3SZ3KJNY");
        assert_eq!(lines[1], "42");
        assert_eq!(lines[2], BASE64.encode([9u8; 32]));
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("\u{2014} vellum.example "));
        assert!(note.ends_with('\n'));

        let verifier = NoteVerifier::parse(&signer().verifier_key()).unwrap();
        assert_eq!(verifier.verify(&note).unwrap(), checkpoint());
        // Keys whose base64 holds a '+' parse too.
        for seed in 0..64u8 {
            let other = NoteSigner::new("vellum.example", &[seed; 32]).unwrap();
            assert!(
                NoteVerifier::parse(&other.verifier_key()).is_ok(),
                "seed {seed}: {}",
                other.verifier_key()
            );
        }
        let raw = NoteVerifier::from_public_key("vellum.example", &signer().public_key()).unwrap();
        assert_eq!(raw, verifier);
    }

    #[test]
    fn signatures_verify_with_a_plain_ed25519_check() {
        let note = signer().sign(&checkpoint());
        let signature_line = note.lines().last().unwrap();
        let encoded = signature_line.rsplit(' ').next().unwrap();
        let bytes = BASE64.decode(encoded).unwrap();
        let signature = Signature::from_bytes(&<[u8; 64]>::try_from(&bytes[4..]).unwrap());
        let key = VerifyingKey::from_bytes(&signer().public_key()).unwrap();
        assert!(key.verify_strict(checkpoint().body().as_bytes(), &signature).is_ok());
    }

    #[test]
    fn tampering_is_detected() {
        let note = signer().sign(&checkpoint());
        let verifier = NoteVerifier::parse(&signer().verifier_key()).unwrap();
        let altered = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(
            verifier.verify(&altered),
            Err(CheckpointError::BadSignature("vellum.example".into()))
        );
        let other = NoteSigner::new("vellum.example", &[8; 32]).unwrap();
        let foreign = other.sign(&checkpoint());
        assert!(matches!(
            verifier.verify(&foreign),
            Err(CheckpointError::NoSignature(_))
        ));
        assert!(NoteVerifier::parse("nonsense").is_err());
        let mut key = signer().verifier_key();
        key.replace_range(key.find('+').unwrap() + 1..key.find('+').unwrap() + 3, "ff");
        assert!(
            NoteVerifier::parse(&key).is_err(),
            "a key id that does not match the key is refused"
        );
    }
}
