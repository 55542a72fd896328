//! Download links for export files kept on the local file system: Vellum serves them itself at
//! `/audit_logs/exports/{id}/download?expires=…&signature=…`, where the signature is
//! HMAC-SHA256 over the export id and the expiry, under a key only the server holds.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use vellum_core::ExportId;

type HmacSha256 = Hmac<Sha256>;

/// Why a download link is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The signature does not match the export and expiry (altered, or for another export).
    #[error("the download link's signature is not valid for this export")]
    BadSignature,
    /// The link is past its expiry.
    #[error("the download link has expired")]
    Expired,
}

/// Signs and checks download links.
#[derive(Clone)]
pub struct LinkSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("LinkSigner(..)")
    }
}

impl LinkSigner {
    /// A signer with this secret key.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, id: ExportId, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(format!("vellum-export-download\n{id}\n{expires}").as_bytes());
        mac
    }

    /// The signature (lower-case hex) of a link to `id` valid until `expires` (Unix seconds).
    pub fn sign(&self, id: ExportId, expires: i64) -> String {
        self.mac(id, expires)
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Checks a link at time `now` (Unix seconds), in constant time over the signature.
    pub fn check(&self, id: ExportId, expires: i64, signature: &str, now: i64) -> Result<(), LinkError> {
        let bytes = decode_hex(signature).ok_or(LinkError::BadSignature)?;
        self.mac(id, expires)
            .verify_slice(&bytes)
            .map_err(|_| LinkError::BadSignature)?;
        if now >= expires {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_refused_when_altered_expired_or_for_another_export() {
        let signer = LinkSigner::new([3; 32]);
        let id = ExportId::from_ulid(ulid_like(1));
        let other = ExportId::from_ulid(ulid_like(2));
        let signature = signer.sign(id, 1_000);
        assert_eq!(signer.check(id, 1_000, &signature, 999), Ok(()));
        assert_eq!(signer.check(id, 1_000, &signature, 1_000), Err(LinkError::Expired));
        assert_eq!(signer.check(id, 2_000, &signature, 999), Err(LinkError::BadSignature));
        assert_eq!(
            signer.check(other, 1_000, &signature, 999),
            Err(LinkError::BadSignature)
        );
        let mut altered = signature.clone().into_bytes();
        altered[10] = if altered[10] == b'0' { b'1' } else { b'0' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(signer.check(id, 1_000, &altered, 999), Err(LinkError::BadSignature));
        assert_eq!(signer.check(id, 1_000, "zz", 999), Err(LinkError::BadSignature));
        assert_eq!(
            LinkSigner::new([4; 32]).check(id, 1_000, &signature, 999),
            Err(LinkError::BadSignature)
        );
    }

    fn ulid_like(n: u64) -> vellum_core::id::Ulid {
        vellum_core::id::Ulid::from_parts(n, u128::from(n))
    }
}
