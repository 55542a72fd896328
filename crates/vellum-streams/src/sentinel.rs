//! Microsoft Sentinel's tokens: OAuth 2.0 client credentials from Microsoft Entra ID, asked for
//! through the deliveries' guarded client and kept until five minutes before they expire (per
//! stream and version of its settings, so an update asks for a new one).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vellum_core::StreamId;
use vellum_core::stream::{Delivery, StreamSecrets, Verdict, token_request};
use vellum_store::Stream;

use crate::transport::{SendError, Transport};

/// How long before its expiry a token is replaced.
const EARLY: Duration = Duration::from_secs(300);

/// Tokens by stream.
#[derive(Default)]
pub(crate) struct Tokens {
    cached: Mutex<HashMap<StreamId, Cached>>,
}

struct Cached {
    /// The stream's `updated_at` when the token was issued.
    version: i64,
    token: String,
    until: Instant,
}

impl Tokens {
    /// A token for `stream`: the cached one, or a new one from its authority.
    pub(crate) async fn get(
        &self,
        stream: &Stream,
        secrets: &StreamSecrets,
        transport: &Transport,
    ) -> Result<String, Verdict> {
        let version = stream.updated_at.unix_millis();
        if let Some(cached) = self.lock().get(&stream.id)
            && cached.version == version
            && Instant::now() < cached.until
        {
            return Ok(cached.token.clone());
        }
        let (Some(url), vellum_core::stream::Destination::MicrosoftSentinel { client_id, .. }) =
            (stream.destination.token_url(), &stream.destination)
        else {
            return Err(Verdict::Invalid {
                reason: "not a Microsoft Sentinel stream".to_owned(),
            });
        };
        let request = Delivery {
            url,
            headers: vec![(
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            )],
            body: token_request(client_id, secrets.client_secret.as_deref().unwrap_or_default()).into_bytes(),
            items: 0,
        };
        let answer = match transport.send(&request).await {
            Ok(answer) => answer,
            Err(SendError::Refused(reason)) => return Err(Verdict::Invalid { reason }),
            Err(SendError::Failed(reason)) => {
                return Err(Verdict::Retry {
                    reason: format!("the token authority: {reason}"),
                    retry_after: None,
                });
            }
        };
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        let said = body
            .get("error_description")
            .or_else(|| body.get("error"))
            .and_then(serde_json::Value::as_str)
            .map(|text| text.chars().take(200).collect::<String>())
            .unwrap_or_default();
        match answer.status {
            200 => {}
            400 | 401 | 403 => {
                return Err(Verdict::Invalid {
                    reason: format!(
                        "Microsoft Entra ID refused the client credentials (HTTP {}): {said}",
                        answer.status
                    ),
                });
            }
            status => {
                return Err(Verdict::Retry {
                    reason: format!("the token authority is unavailable (HTTP {status}): {said}"),
                    retry_after: answer.retry_after.as_deref().and_then(|value| {
                        vellum_core::stream::parse_retry_after(value, vellum_store::now().unix_millis() / 1_000)
                    }),
                });
            }
        }
        let Some(token) = body.get("access_token").and_then(serde_json::Value::as_str) else {
            return Err(Verdict::Retry {
                reason: "the token authority answered without an access_token".to_owned(),
                retry_after: None,
            });
        };
        let lifetime = body
            .get("expires_in")
            .and_then(|value| value.as_u64().or_else(|| value.as_str()?.parse().ok()))
            .map_or(Duration::from_secs(600), Duration::from_secs);
        self.lock().insert(
            stream.id,
            Cached {
                version,
                token: token.to_owned(),
                until: Instant::now() + lifetime.saturating_sub(EARLY),
            },
        );
        Ok(token.to_owned())
    }

    /// Forgets a stream's token (the destination refused it).
    pub(crate) fn forget(&self, id: StreamId) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, Cached>> {
        self.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
