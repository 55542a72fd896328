//! The Admin Portal and the embeddable viewer (`docs/portal.md`): what a portal link asks for,
//! the rules it is checked against, and the viewer's self-contained tokens.
//!
//! A portal link is a one-time secret that opens a browser session scoped to one organization
//! and one intent; the store keeps only hashes of link secrets and session tokens (the token
//! types are [`crate::operator::SessionToken`]'s). A viewer token is stateless: its claims and
//! an HMAC-SHA256 under a key only the server holds, so that any node checks it without a read.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::id::{OrganizationId, PortalLinkId};
use crate::operator::{Email, SessionTokenHash};
use crate::timestamp::Timestamp;
use crate::validation::ValidationErrors;

/// How long after its creation a link can be opened (WorkOS's figure).
pub const LINK_LIFETIME_MILLIS: i64 = 5 * 60 * 1000;
/// How long a portal session lasts after the link was opened.
pub const SESSION_LIFETIME_MILLIS: i64 = 60 * 60 * 1000;
/// The most IT contact emails of one link (WorkOS's figure).
pub const MAX_CONTACT_EMAILS: usize = 20;
/// The longest `external_user_id`.
pub const MAX_EXTERNAL_USER_ID_CHARS: usize = 255;
/// The longest `return_url` or `success_url`.
pub const MAX_URL_BYTES: usize = 2048;

/// What a portal link opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortalIntent {
    /// Browse, filter, inspect, verify and export the organization's events.
    AuditLogs,
    /// Set up and watch the organization's log streams.
    LogStreams,
}

/// Intents WorkOS's portal has that Vellum does not serve (it has no SSO or directory sync).
pub const UNSERVED_INTENTS: &[&str] = &[
    "sso",
    "dsync",
    "domain_verification",
    "certificate_renewal",
    "bring_your_own_key",
];

impl PortalIntent {
    /// Every intent Vellum serves.
    pub const ALL: [Self; 2] = [Self::AuditLogs, Self::LogStreams];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuditLogs => "audit_logs",
            Self::LogStreams => "log_streams",
        }
    }

    /// Parses a wire name of a served intent.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|intent| intent.as_str() == text)
    }
}

impl fmt::Display for PortalIntent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A link to be stored: everything but its secret, of which the store keeps only the hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPortalLink {
    /// The organization it opens.
    pub organization_id: OrganizationId,
    /// What it opens.
    pub intent: PortalIntent,
    /// The application's id of the admin it was made for, by which it can be revoked.
    pub external_user_id: Option<String>,
    /// Where the portal's logo leads back to.
    pub return_url: Option<String>,
    /// Where the admin is sent when done.
    pub success_url: Option<String>,
    /// The IT contacts the link was made for.
    pub it_contact_emails: Vec<Email>,
    /// The hash of its one-time secret.
    pub secret_hash: SessionTokenHash,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it can no longer be opened.
    pub expires_at: Timestamp,
}

/// A stored link (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortalLink {
    /// Its id, shown in the trail's records.
    pub id: PortalLinkId,
    /// The organization it opens.
    pub organization_id: OrganizationId,
    /// What it opens.
    pub intent: PortalIntent,
    /// The application's id of the admin it was made for.
    pub external_user_id: Option<String>,
    /// Where the portal's logo leads back to.
    pub return_url: Option<String>,
    /// Where the admin is sent when done.
    pub success_url: Option<String>,
    /// The IT contacts the link was made for.
    pub it_contact_emails: Vec<Email>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it can no longer be opened.
    pub expires_at: Timestamp,
}

/// A browser session opened from a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortalSession {
    /// The hash of its token.
    pub token_hash: SessionTokenHash,
    /// The link it was opened from (its organization and intent are the session's scope).
    pub link: PortalLink,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When it stops being valid.
    pub expires_at: Timestamp,
}

/// Checks a `return_url` or `success_url`: an absolute http(s) URL without credentials, at most
/// [`MAX_URL_BYTES`].
pub fn check_page_url(text: &str) -> Result<(), String> {
    if text.len() > MAX_URL_BYTES {
        return Err(format!("must be at most {MAX_URL_BYTES} bytes"));
    }
    let url = url::Url::parse(text).map_err(|error| format!("must be an absolute URL ({error})"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("must be an http or https URL".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    Ok(())
}

/// Checks an `external_user_id`: 1 to [`MAX_EXTERNAL_USER_ID_CHARS`] characters, no control
/// characters.
pub fn check_external_user_id(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if text.chars().count() > MAX_EXTERNAL_USER_ID_CHARS {
        return Err(format!("must be at most {MAX_EXTERNAL_USER_ID_CHARS} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Viewer tokens
// ---------------------------------------------------------------------------------------------

/// The prefix of every viewer token.
pub const VIEWER_TOKEN_PREFIX: &str = "vt_";
/// The shortest lifetime a viewer token may be given, in seconds.
pub const MIN_VIEWER_TOKEN_SECONDS: u64 = 30;
/// The longest lifetime a viewer token may be given, in seconds.
pub const MAX_VIEWER_TOKEN_SECONDS: u64 = 60 * 60;
/// The lifetime of a viewer token when none is asked for, in seconds.
pub const DEFAULT_VIEWER_TOKEN_SECONDS: u64 = 10 * 60;
/// The most values of one narrowing filter of a viewer token.
pub const MAX_VIEWER_FILTER_VALUES: usize = 20;
/// The longest value of a narrowing filter, in characters.
pub const MAX_VIEWER_FILTER_CHARS: usize = 256;
/// The longest token accepted (claims with every filter full fit well within it).
pub const MAX_VIEWER_TOKEN_BYTES: usize = 16 * 1024;

/// What a viewer token lets its holder read: one organization's trail until `expires_at`,
/// narrowed to the listed actors and actions when those lists are not empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewerClaims {
    /// The token's id (`viewer_token_` + ULID), named in the trail's record of its issue.
    #[serde(rename = "jti")]
    pub id: String,
    /// The organization, as its wire id.
    #[serde(rename = "org")]
    pub organization_id: String,
    /// Expiry, Unix milliseconds.
    #[serde(rename = "exp")]
    pub expires_at_millis: i64,
    /// Only events of these actor ids (all when empty).
    #[serde(rename = "act", default, skip_serializing_if = "Vec::is_empty")]
    pub actor_ids: Vec<String>,
    /// Only events of these actions (all when empty).
    #[serde(rename = "acn", default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

impl ViewerClaims {
    /// Whether the token narrows what its holder sees beyond the organization.
    pub fn is_narrowed(&self) -> bool {
        !self.actor_ids.is_empty() || !self.actions.is_empty()
    }
}

/// Why a viewer token is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ViewerTokenError {
    /// Not a token this server could have made, or altered since.
    #[error("the viewer token is not valid")]
    Invalid,
    /// Past its expiry.
    #[error("the viewer token has expired")]
    Expired,
}

type HmacSha256 = Hmac<Sha256>;

/// The key of viewer tokens, derived from the server's download-link key under its own label,
/// so that every node has it, nothing more is kept, and neither credential opens the other.
pub fn viewer_key(link_key: &[u8; 32]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(link_key).expect("HMAC takes keys of any length");
    mac.update(b"vellum-viewer-token-key-v1");
    mac.finalize().into_bytes().into()
}

fn viewer_mac(key: &[u8; 32], payload: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(b"vellum-viewer-token-v1\n");
    mac.update(payload.as_bytes());
    mac
}

/// Encodes and signs a viewer token: `vt_` + base64url(JSON claims) + `.` + base64url(HMAC).
pub fn sign_viewer_token(claims: &ViewerClaims, key: &[u8; 32]) -> String {
    let payload = BASE64URL.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signature = BASE64URL.encode(viewer_mac(key, &payload).finalize().into_bytes());
    format!("{VIEWER_TOKEN_PREFIX}{payload}.{signature}")
}

/// Checks a viewer token's signature (in constant time) and expiry at `now`.
pub fn open_viewer_token(token: &str, key: &[u8; 32], now: Timestamp) -> Result<ViewerClaims, ViewerTokenError> {
    if token.len() > MAX_VIEWER_TOKEN_BYTES {
        return Err(ViewerTokenError::Invalid);
    }
    let rest = token
        .strip_prefix(VIEWER_TOKEN_PREFIX)
        .ok_or(ViewerTokenError::Invalid)?;
    let (payload, signature) = rest.split_once('.').ok_or(ViewerTokenError::Invalid)?;
    let signature = BASE64URL.decode(signature).map_err(|_| ViewerTokenError::Invalid)?;
    viewer_mac(key, payload)
        .verify_slice(&signature)
        .map_err(|_| ViewerTokenError::Invalid)?;
    let bytes = BASE64URL.decode(payload).map_err(|_| ViewerTokenError::Invalid)?;
    let claims: ViewerClaims = serde_json::from_slice(&bytes).map_err(|_| ViewerTokenError::Invalid)?;
    if claims.expires_at_millis <= now.unix_millis() {
        return Err(ViewerTokenError::Expired);
    }
    Ok(claims)
}

/// Checks the narrowing filters asked for a new viewer token, each value as an event's field of
/// that name would be checked.
pub fn check_viewer_filters(actor_ids: &[String], actions: &[String], errors: &mut ValidationErrors) {
    for (field, values) in [("actor_ids", actor_ids), ("actions", actions)] {
        if values.len() > MAX_VIEWER_FILTER_VALUES {
            errors.push(
                field,
                "too_many",
                format!("{field} may list at most {MAX_VIEWER_FILTER_VALUES} values"),
            );
            continue;
        }
        for (index, value) in values.iter().enumerate() {
            if value.is_empty()
                || value.chars().count() > MAX_VIEWER_FILTER_CHARS
                || value.chars().any(char::is_control)
            {
                errors.push(
                    format!("{field}[{index}]"),
                    "invalid",
                    format!("must be 1 to {MAX_VIEWER_FILTER_CHARS} characters without control characters"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> ViewerClaims {
        ViewerClaims {
            id: "viewer_token_01".into(),
            organization_id: "org_01".into(),
            expires_at_millis: 2_000,
            actor_ids: vec!["user_1".into()],
            actions: Vec::new(),
        }
    }

    #[test]
    fn a_viewer_token_opens_with_its_key_until_it_expires() {
        let key = [7; 32];
        let token = sign_viewer_token(&claims(), &key);
        assert!(token.starts_with("vt_"));
        let at = |millis| Timestamp::from_unix_millis(millis).unwrap();
        assert_eq!(open_viewer_token(&token, &key, at(1_999)), Ok(claims()));
        assert_eq!(
            open_viewer_token(&token, &key, at(2_000)),
            Err(ViewerTokenError::Expired)
        );
        assert_eq!(
            open_viewer_token(&token, &[8; 32], at(1)),
            Err(ViewerTokenError::Invalid)
        );
    }

    #[test]
    fn an_altered_viewer_token_is_invalid() {
        let key = [7; 32];
        let token = sign_viewer_token(&claims(), &key);
        let now = Timestamp::from_unix_millis(1).unwrap();
        // Another organization's claims under the old signature.
        let mut other = claims();
        other.organization_id = "org_02".into();
        let forged_payload = sign_viewer_token(&other, &key);
        let (forged_claims, _) = forged_payload.split_once('.').unwrap();
        let (_, signature) = token.split_once('.').unwrap();
        let forged = format!("{forged_claims}.{signature}");
        assert_eq!(open_viewer_token(&forged, &key, now), Err(ViewerTokenError::Invalid));
        for broken in [
            "",
            "vt_",
            "vt_.",
            "xx_a.b",
            &token[..token.len() - 1],
            &format!("{token}A"),
        ] {
            assert_eq!(
                open_viewer_token(broken, &key, now),
                Err(ViewerTokenError::Invalid),
                "{broken}"
            );
        }
    }

    #[test]
    fn page_urls_must_be_plain_http_or_https() {
        assert!(check_page_url("https://app.example.com/settings?x=1").is_ok());
        assert!(check_page_url("http://localhost:3000/").is_ok());
        for bad in [
            "javascript:alert(1)",
            "data:text/html,x",
            "/relative",
            "https://u:p@x.io/",
            "ftp://x.io/",
        ] {
            assert!(check_page_url(bad).is_err(), "{bad}");
        }
        assert!(check_page_url(&format!("https://x.io/{}", "a".repeat(MAX_URL_BYTES))).is_err());
    }

    #[test]
    fn intents_parse_by_their_wire_names() {
        assert_eq!(PortalIntent::parse("audit_logs"), Some(PortalIntent::AuditLogs));
        assert_eq!(PortalIntent::parse("log_streams"), Some(PortalIntent::LogStreams));
        assert_eq!(PortalIntent::parse("sso"), None);
        assert!(check_external_user_id("user_1").is_ok());
        assert!(check_external_user_id("").is_err());
        assert!(check_external_user_id("a\nb").is_err());
    }
}
