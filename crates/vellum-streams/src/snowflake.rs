//! Snowflake's key-pair authentication: a JWT signed with the user's RSA private key (RS256),
//! whose issuer names the key by the SHA-256 of its public half, as Snowflake's SQL API expects.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use vellum_core::stream::Destination;

/// How long a token is valid (Snowflake accepts at most an hour).
const LIFETIME_SECONDS: i64 = 3_000;

/// A user's key, ready to sign.
pub(crate) struct Signer {
    key: RsaKeyPair,
    /// `ACCOUNT.USER`.
    subject: String,
    /// `SHA256:` + base64 of the SHA-256 of the public key (SubjectPublicKeyInfo, DER).
    fingerprint: String,
}

impl Signer {
    /// Reads the PEM private key of `destination`'s user. `Err` says why it is not usable.
    pub(crate) fn new(destination: &Destination, pem: &str) -> Result<Self, String> {
        let Destination::Snowflake { account, user, .. } = destination else {
            return Err("not a Snowflake stream".to_owned());
        };
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|line| *line != "-----BEGIN PRIVATE KEY-----")
            .skip(1)
            .take_while(|line| *line != "-----END PRIVATE KEY-----")
            .collect();
        let der = STANDARD
            .decode(body)
            .map_err(|_| "private_key is not a PEM key (its base64 does not decode)".to_owned())?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|error| format!("private_key is not an RSA PKCS #8 key Snowflake accepts: {error}"))?;
        let public = key
            .public_key()
            .as_der()
            .map_err(|_| "the public half of private_key cannot be encoded".to_owned())?;
        // The account part of an identifier such as `xy12345.eu-west-1` is the locator.
        let account = account.split('.').next().unwrap_or_default().to_ascii_uppercase();
        Ok(Self {
            key,
            subject: format!("{account}.{}", user.to_ascii_uppercase()),
            fingerprint: format!("SHA256:{}", STANDARD.encode(Sha256::digest(public.as_ref()))),
        })
    }

    /// A token issued at `now_seconds`.
    pub(crate) fn token(&self, now_seconds: i64) -> Result<String, String> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iss": format!("{}.{}", self.subject, self.fingerprint),
            "sub": self.subject,
            "iat": now_seconds,
            "exp": now_seconds + LIFETIME_SECONDS,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the Snowflake token failed".to_owned())?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}
