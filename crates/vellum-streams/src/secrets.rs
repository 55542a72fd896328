//! Streams' write-only settings at rest: AES-256-GCM under the server's stream key, bound to the
//! organization the stream belongs to (a sealed blob copied onto another organization's stream
//! does not open).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use vellum_core::OrganizationId;
use vellum_core::stream::StreamSecrets;

/// The first byte of every sealed blob: the format.
const VERSION: u8 = 1;

/// Seals and opens streams' secrets.
pub struct SecretBox {
    key: LessSafeKey,
}

/// Why sealed secrets did not open.
#[derive(Debug, thiserror::Error)]
#[error("the stream's secrets cannot be opened (was the stream key changed?)")]
pub struct SealError;

impl SecretBox {
    /// A box under a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key suits AES-256")),
        }
    }

    fn aad(organization_id: OrganizationId) -> Vec<u8> {
        let mut aad = b"vellum log stream secrets v1 ".to_vec();
        aad.extend_from_slice(&organization_id.ulid().to_bytes());
        aad
    }

    /// Seals `secrets` for a stream of `organization_id`.
    pub fn seal(&self, organization_id: OrganizationId, secrets: &StreamSecrets) -> std::io::Result<Vec<u8>> {
        let mut nonce = [0_u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(std::io::Error::other)?;
        let mut buffer = serde_json::to_vec(secrets).map_err(std::io::Error::other)?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(organization_id)),
                &mut buffer,
            )
            .map_err(|_| std::io::Error::other("sealing failed"))?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + buffer.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&buffer);
        Ok(sealed)
    }

    /// Opens what [`SecretBox::seal`] sealed for the same organization.
    pub fn open(&self, organization_id: OrganizationId, sealed: &[u8]) -> Result<StreamSecrets, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError)?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return Err(SealError);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(Self::aad(organization_id)), &mut buffer)
            .map_err(|_| SealError)?;
        serde_json::from_slice(plain).map_err(|_| SealError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_open_only_under_their_key_and_organization() {
        let secrets = StreamSecrets {
            token: Some("hec-token".into()),
            ..StreamSecrets::default()
        };
        let organization = OrganizationId::from_ulid(ulid_for(1));
        let other = OrganizationId::from_ulid(ulid_for(2));
        let sealed = SecretBox::new(&[7; 32]).seal(organization, &secrets).unwrap();
        assert!(!sealed.windows(9).any(|window| window == b"hec-token"));
        assert_eq!(SecretBox::new(&[7; 32]).open(organization, &sealed).unwrap(), secrets);
        assert!(SecretBox::new(&[8; 32]).open(organization, &sealed).is_err());
        assert!(SecretBox::new(&[7; 32]).open(other, &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(SecretBox::new(&[7; 32]).open(organization, &tampered).is_err());
        assert!(SecretBox::new(&[7; 32]).open(organization, &[]).is_err());
        // Two seals of the same secrets differ (fresh nonces).
        assert_ne!(SecretBox::new(&[7; 32]).seal(organization, &secrets).unwrap(), sealed);
    }

    fn ulid_for(n: u64) -> vellum_core::id::Ulid {
        vellum_core::id::Ulid::from_parts(n, u128::from(n))
    }
}
