//! A benchmark baseline: the ingest routes with nothing behind them.
//!
//! [`null_ingest_router`] serves `POST /audit_logs/events` and `POST /audit_logs/events/batch`
//! through the same layers as the real router (request ids, the request log, body limits and
//! budget, the panic guard), reads and checks each body with the same code as the real handlers
//! (the same body types, shape and metadata rules, `Idempotency-Key` hashing), and answers as
//! they answer on success, but authenticates no key, checks no schema and stores nothing. Served
//! by [`crate::serve`], it is the ceiling that durable ingest over HTTP is compared with
//! (`vellum-bench`); it is never part of `vellum serve`.

use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use vellum_core::EventId;
use vellum_ingest::{BatchItem, BatchOutcome, Rejection};

use crate::error::ApiError;
use crate::events::{BatchAnswer, SuccessResponse, batch_response, read_batch, read_create_event};
use crate::extract::{BodyRoom, JsonBytes};

/// The ingest routes, reading and checking every request as `vellum serve` does and storing
/// nothing: a baseline for benchmarks, never served by Vellum itself. Any `Authorization`
/// header, or none, is accepted; an event's action needs no schema.
pub fn null_ingest_router() -> Router {
    let max_body_bytes = crate::HttpConfig::default().max_body_bytes;
    let routes = Router::new()
        .route("/audit_logs/events", post(create_event))
        .route("/audit_logs/events/batch", post(create_events_batch));
    crate::with_common_layers(routes, max_body_bytes).with_state(BodyRoom::new(max_body_bytes))
}

async fn create_event(headers: HeaderMap, JsonBytes(bytes): JsonBytes) -> Result<Json<SuccessResponse>, ApiError> {
    read_create_event(&headers, &bytes)?;
    Ok(Json(SuccessResponse { success: true }))
}

async fn create_events_batch(headers: HeaderMap, JsonBytes(bytes): JsonBytes) -> Result<Json<BatchAnswer>, ApiError> {
    let request = read_batch(&headers, &bytes)?;
    let items = request
        .items
        .into_iter()
        .map(|item| match item {
            Ok(_) => BatchItem::Stored(EventId::from_ulid(ulid::Ulid::generate())),
            Err(errors) => BatchItem::Rejected(Rejection::Fields(errors)),
        })
        .collect();
    Ok(Json(BatchAnswer::Fresh(batch_response(&BatchOutcome { items }))))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::null_ingest_router;

    async fn post(path: &str, body: &Value) -> (StatusCode, Value) {
        let request = Request::post(path)
            .header("content-type", "application/json")
            .header("idempotency-key", "key-1")
            .body(Body::from(body.to_string()))
            .expect("request");
        let response = null_ingest_router().oneshot(request).await.expect("response");
        let status = response.status();
        assert!(response.headers().contains_key("x-request-id"));
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    fn event() -> Value {
        json!({"action": "user.signed_in", "occurred_at": "2026-01-15T12:00:00.000Z",
               "actor": {"id": "user_1", "type": "user"}, "targets": [{"id": "team_1", "type": "team"}],
               "context": {"location": "192.0.2.1"}, "metadata": {"ok": true}})
    }

    #[tokio::test]
    async fn answers_a_valid_event_as_the_real_route_does() {
        let organization = "org_01EHWNCE74X7JSDV0X3SZ3KJNY";
        let (status, body) = post(
            "/audit_logs/events",
            &json!({"organization_id": organization, "event": event()}),
        )
        .await;
        assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));
    }

    #[tokio::test]
    async fn refuses_what_the_real_route_refuses() {
        let mut bad = event();
        bad["actor"] = json!({"type": "user"});
        let body = json!({"organization_id": "org_01EHWNCE74X7JSDV0X3SZ3KJNY", "event": bad});
        let (status, body) = post("/audit_logs/events", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["errors"][0]["field"], "event.actor.id");
    }

    #[tokio::test]
    async fn answers_a_batch_item_by_item() {
        let body = json!({"organization_id": "org_01EHWNCE74X7JSDV0X3SZ3KJNY", "events": [event(), {"action": 1}]});
        let (status, body) = post("/audit_logs/events/batch", &body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (body["succeeded"].clone(), body["failed"].clone()),
            (json!(1), json!(1))
        );
        assert!(
            body["data"][0]["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("audit_log_event_"))
        );
        assert_eq!(body["data"][1]["status"], 422);
    }
}
