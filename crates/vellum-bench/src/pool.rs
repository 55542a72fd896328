//! Pools of requests made before a run starts, so that a run only copies bytes.

use std::sync::Arc;

use hyper::body::Bytes;

use crate::generator::{GeneratedEvent, Generator};

/// Requests of `events_per_request` events each: request `k` goes to organization
/// `organization_of_request(k)` and holds events `first_event + k * events_per_request …`.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) requests: Vec<PoolRequest>,
    pub(crate) events_per_request: u64,
}

/// One request of a pool.
#[derive(Debug)]
pub(crate) struct PoolRequest {
    /// Index of its organization.
    pub(crate) organization: usize,
    /// Its events.
    pub(crate) events: Vec<GeneratedEvent>,
    /// Each event's compact JSON.
    pub(crate) json: Vec<Vec<u8>>,
}

impl Pool {
    /// `requests` requests of `events_per_request` events, from event `first_event` on.
    pub(crate) fn new(generator: &Generator, first_event: u64, requests: u64, events_per_request: u64) -> Self {
        let requests = (0..requests)
            .map(|request| {
                let first = first_event + request * events_per_request;
                let events: Vec<GeneratedEvent> = (first..first + events_per_request)
                    .map(|n| generator.event(n))
                    .collect();
                let json = events
                    .iter()
                    .map(|event| serde_json::to_vec(event).unwrap_or_default())
                    .collect();
                PoolRequest {
                    organization: generator.organization_of_request(request),
                    events,
                    json,
                }
            })
            .collect();
        Self {
            requests,
            events_per_request,
        }
    }

    /// How many events the pool holds.
    pub(crate) fn events(&self) -> u64 {
        self.requests.len() as u64 * self.events_per_request
    }

    /// The request bodies for a store whose organizations have these ids: single-event bodies
    /// when the pool holds one event per request, batch bodies otherwise.
    pub(crate) fn bodies(&self, organization_ids: &[String]) -> Arc<[Bytes]> {
        self.requests
            .iter()
            .map(|request| {
                let organization = &organization_ids[request.organization];
                if self.events_per_request == 1 {
                    single_body(organization, &request.json[0])
                } else {
                    batch_body(organization, request.json.iter().map(Vec::as_slice))
                }
            })
            .collect()
    }
}

/// The body of `POST /audit_logs/events`.
pub(crate) fn single_body(organization_id: &str, event: &[u8]) -> Bytes {
    let mut body = Vec::with_capacity(event.len() + organization_id.len() + 32);
    body.extend_from_slice(b"{\"organization_id\":\"");
    body.extend_from_slice(organization_id.as_bytes());
    body.extend_from_slice(b"\",\"event\":");
    body.extend_from_slice(event);
    body.push(b'}');
    Bytes::from(body)
}

/// The body of `POST /audit_logs/events/batch`.
pub(crate) fn batch_body<E: AsRef<[u8]>>(organization_id: &str, events: impl Iterator<Item = E>) -> Bytes {
    let mut body = Vec::with_capacity(512 * 1024);
    body.extend_from_slice(b"{\"organization_id\":\"");
    body.extend_from_slice(organization_id.as_bytes());
    body.extend_from_slice(b"\",\"events\":[");
    for (index, event) in events.enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event.as_ref());
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_the_json_clients_send() {
        let generator = Generator::new();
        let ids: Vec<String> = (0..10).map(|index| format!("org_{index}")).collect();
        let single = Pool::new(&generator, 0, 3, 1);
        let body: serde_json::Value = serde_json::from_slice(&single.bodies(&ids)[1]).expect("json");
        assert_eq!(body["organization_id"], ids[generator.organization_of_request(1)]);
        assert_eq!(body["event"], serde_json::to_value(generator.event(1)).expect("json"));
        let batch = Pool::new(&generator, 100, 2, 5);
        let body: serde_json::Value = serde_json::from_slice(&batch.bodies(&ids)[1]).expect("json");
        assert_eq!(body["events"].as_array().map(Vec::len), Some(5));
        assert_eq!(
            body["events"][0],
            serde_json::to_value(generator.event(105)).expect("json")
        );
    }
}
