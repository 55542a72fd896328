//! The live tail: `GET /audit_logs/events/stream`, an organization's new events as
//! server-sent events (`text/event-stream`), with the listing's filters.
//!
//! Each event is one message: `id:` its log index, `event: audit_log_event`, `data:` the event
//! as the listing renders it. A client that reconnects with `Last-Event-ID` (browsers' `EventSource`
//! does so by itself; `last_event_id` in the query does the same) receives exactly the events
//! after that position, read back from the store, then follows new ones. Without it, the tail
//! starts at the log's head.
//!
//! The tail reads the log by position, never from memory: commits announced by
//! [`vellum_ingest::IngestService::subscribe`] only wake it to read, so an announcement lost or
//! out of order loses nothing. Between the follower and the connection sits a small bounded
//! buffer; a client that leaves it full for [`SLOW_CLIENT`] is disconnected (it may resume with
//! `Last-Event-ID`), so a slow reader costs the server a fixed amount of memory. A comment line
//! every [`KEEP_ALIVE`] keeps proxies from closing a quiet connection. Shutdown ends every tail.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{broadcast, mpsc, watch};
use vellum_core::{Event, OrganizationId, ValidationErrors};
use vellum_store::{EventFilter, Store};

use crate::AppState;
use crate::error::{ApiError, ErrorResponse, ValidationError};
use crate::events::read_event_filter;
use crate::extract::QueryPairs;

/// Time between two keep-alive comments on a quiet tail.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a client may leave the buffer full before it is disconnected.
pub const SLOW_CLIENT: Duration = Duration::from_secs(10);

/// Messages buffered between the follower and the connection.
const BUFFER: usize = 64;

/// Events read from the store at once.
const READ_BATCH: u32 = 256;

/// Tails open at once on one server; more get a 503.
pub const MAX_TAILS: usize = 256;

/// How many tails are open (shared by every clone of the state).
#[derive(Clone, Debug, Default)]
pub(crate) struct TailCount(Arc<AtomicUsize>);

/// A place among the open tails, given back when the tail ends.
struct TailSlot(TailCount);

impl TailSlot {
    fn take(count: &TailCount) -> Option<Self> {
        count
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < MAX_TAILS).then_some(open + 1)
            })
            .ok()?;
        metrics::gauge!("vellum_live_tail_subscribers").increment(1.0);
        Some(Self(count.clone()))
    }
}

impl Drop for TailSlot {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("vellum_live_tail_subscribers").decrement(1.0);
    }
}

#[utoipa::path(
    get,
    path = "/audit_logs/events/stream",
    tag = "audit-logs",
    operation_id = "AuditLogEventsController_stream",
    summary = "Follow new events (live tail)",
    description = "Vellum's addition. Server-sent events: one message per event (`id` = its log index, `event: audit_log_event`, `data` = the event as listed), keep-alive comments every 15 seconds. Takes the listing's filters. Resume with the `Last-Event-ID` header (or `last_event_id`): the events after that log index are sent first. A client that does not keep up is disconnected.",
    params(
        crate::events::EventListParams,
        ("last_event_id" = Option<u64>, Query, description = "Resume after this log index (as the `Last-Event-ID` header)."),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this log index."),
    ),
    responses(
        (status = 200, description = "The stream of events.", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such organization.", body = ErrorResponse),
        (status = 422, description = "A parameter is missing or not acceptable.", body = ValidationError),
        (status = 503, description = "Too many tails are open; retry later.", body = ErrorResponse),
    ),
)]
pub(crate) async fn stream_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let mut errors = ValidationErrors::new();
    let (organization, filter) = read_event_filter(&query, &mut errors)?;
    let resume = last_event_id(&headers, &query, &mut errors);
    let Some(organization) = organization.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };
    // Subscribed before the head is read: a commit between the two still wakes the follower.
    let woken = state.tail_wakers.register(organization, &state.ingest);
    state.store.get_organization(organization).await?;
    let size = state.store.log_tree_head(organization).await?.size;
    let next = match resume {
        None => size,
        Some(last) if last < size => last + 1,
        Some(last) => {
            return Err(ApiError::invalid_field(
                "Last-Event-ID",
                "invalid",
                format!("the log of {organization} has {size} entries: there is no event {last} to resume after"),
            ));
        }
    };
    let Some(slot) = TailSlot::take(&state.tails) else {
        return Err(ApiError::Busy {
            message: format!("{MAX_TAILS} live tails are open on this server; retry shortly."),
            code: "too_many_tails",
            retry_after_seconds: 5,
        });
    };
    let (sender, receiver) = mpsc::channel(BUFFER);
    let dropped = Arc::new(AtomicBool::new(false));
    let follower = Follower {
        store: Arc::clone(&state.store),
        organization,
        filter,
        next,
        sender,
        woken,
        stopping: state.stopping.clone(),
        dropped: Arc::clone(&dropped),
    };
    tokio::spawn(async move {
        let _slot = slot;
        follower.run().await;
    });
    let mut response = Body::new(Messages { receiver, dropped }).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx buffers responses unless told not to.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}

/// The position to resume after: the `Last-Event-ID` header, else `last_event_id`.
fn last_event_id(headers: &HeaderMap, query: &QueryPairs, errors: &mut ValidationErrors) -> Option<u64> {
    let from_header = headers
        .get("last-event-id")
        .map(|value| value.to_str().unwrap_or("\u{fffd}"));
    let (field, text) = match (from_header, query.single("last_event_id")) {
        (Some(text), _) => ("Last-Event-ID", text),
        (None, Ok(Some(text))) => ("last_event_id", text),
        (None, Ok(None)) => return None,
        (None, Err(_)) => {
            errors.push("last_event_id", "repeated", "last_event_id may be given only once");
            return None;
        }
    };
    // An empty value is what a browser sends before it has seen any id: start at the head.
    if text.is_empty() {
        return None;
    }
    match text.parse::<u64>() {
        Ok(position) if text.len() <= 20 && text.bytes().all(|byte| byte.is_ascii_digit()) => Some(position),
        _ => {
            errors.push(
                field,
                "invalid",
                format!("{field} must be a log index (a whole number)"),
            );
            None
        }
    }
}

/// Reads an organization's log from a position on and sends what matches the filter.
struct Follower {
    store: Arc<dyn Store>,
    organization: OrganizationId,
    filter: EventFilter,
    next: u64,
    sender: mpsc::Sender<Bytes>,
    woken: TailWake,
    stopping: watch::Receiver<bool>,
    /// Set when the client is dropped for not keeping up (before the sender goes).
    dropped: Arc<AtomicBool>,
}

/// What woke a caught-up follower.
enum Woken {
    /// A commit of its organization (or announcements the pump missed).
    Commit,
    /// Time for a keep-alive comment.
    KeepAlive,
    /// The client went away or the server is stopping.
    End,
}

/// Why a follower stopped sending.
enum Stop {
    /// The client went away, or the server is stopping.
    Closed,
    /// The client left the buffer full too long.
    Slow,
}

impl Follower {
    async fn run(mut self) {
        // A first comment, so that the client (and any proxy) sees the stream open at once.
        let stop = match self
            .send(Bytes::from_static(b": vellum live tail\nretry: 2000\n\n"))
            .await
        {
            Ok(()) => self.follow().await,
            Err(stop) => stop,
        };
        match stop {
            Stop::Slow => {
                self.dropped.store(true, Ordering::Release);
                tracing::info!(organization = %self.organization, "disconnected a live tail client that did not keep up");
                metrics::counter!("vellum_live_tail_disconnected_total", "reason" => "slow").increment(1);
            }
            Stop::Closed if *self.stopping.borrow() => {
                metrics::counter!("vellum_live_tail_disconnected_total", "reason" => "shutdown").increment(1);
            }
            Stop::Closed => {}
        }
    }

    async fn follow(&mut self) -> Stop {
        loop {
            if let Err(stop) = self.catch_up().await {
                return stop;
            }
            // Caught up: wait for a commit of this organization, a keep-alive, or the end.
            let keep_alive = tokio::time::sleep(KEEP_ALIVE);
            tokio::pin!(keep_alive);
            loop {
                let woken = tokio::select! {
                    changed = self.woken.receiver.changed() => match changed {
                        Ok(()) => Woken::Commit,
                        Err(_) => Woken::End,
                    },
                    () = &mut keep_alive => Woken::KeepAlive,
                    _ = self.stopping.wait_for(|stopping| *stopping) => Woken::End,
                    () = self.sender.closed() => Woken::End,
                };
                match woken {
                    Woken::Commit => break,
                    Woken::End => return Stop::Closed,
                    Woken::KeepAlive => {
                        if let Err(stop) = self.send(Bytes::from_static(b": keep-alive\n\n")).await {
                            return stop;
                        }
                        keep_alive.as_mut().reset(tokio::time::Instant::now() + KEEP_ALIVE);
                    }
                }
            }
        }
    }

    /// Sends every event from `next` to the log's head.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            let events = match self.store.stream_events(self.organization, self.next, READ_BATCH).await {
                Ok(events) => events,
                Err(error) => {
                    // The client resumes from its last id once the store answers again.
                    tracing::warn!(organization = %self.organization, %error, "the live tail cannot read the log");
                    return Err(Stop::Closed);
                }
            };
            let Some(last) = events.last().map(|event| event.log_index) else {
                return Ok(());
            };
            for event in &events {
                if matches(&self.filter, event) {
                    self.send(message(event)).await?;
                }
            }
            self.next = last + 1;
            if events.len() < READ_BATCH as usize {
                return Ok(());
            }
        }
    }

    async fn send(&self, message: Bytes) -> Result<(), Stop> {
        if *self.stopping.borrow() {
            return Err(Stop::Closed);
        }
        match tokio::time::timeout(SLOW_CLIENT, self.sender.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Closed),
            Err(_) => Err(Stop::Slow),
        }
    }
}

/// One server-sent event. The event's JSON holds no raw line breaks (JSON escapes them), so it
/// is one `data:` line.
fn message(event: &Event) -> Bytes {
    let json = crate::events::event_json(event);
    Bytes::from(format!(
        "id: {}\nevent: audit_log_event\ndata: {json}\n\n",
        event.log_index
    ))
}

/// Whether an event passes a listing's filters, as the store's listing decides it: each
/// non-empty list matches any of its values, the time range is half-open, and `search` appears,
/// ignoring ASCII case, in the action or any value of the event's parties, context or metadata.
pub(crate) fn matches(filter: &EventFilter, event: &Event) -> bool {
    let occurred = event.input.occurred_at;
    filter.range_start.is_none_or(|start| occurred >= start)
        && filter.range_end.is_none_or(|end| occurred < end)
        && vellum_core::filter::ListFilters {
            actions: &filter.actions,
            actor_ids: &filter.actor_ids,
            actor_names: &filter.actor_names,
            target_types: &filter.target_types,
            target_ids: &filter.target_ids,
        }
        .matches(&event.input)
        && filter.search.as_deref().is_none_or(|term| searched(event, term))
}

/// Whether `term` appears, ignoring ASCII case, in the action or in any value of the event as
/// rendered (never in a key, nor in Vellum's own fields: id, object, log index, erasures).
fn searched(event: &Event, term: &str) -> bool {
    let term = term.to_ascii_lowercase();
    let mut json = crate::events::event_json(event);
    if let Value::Object(fields) = &mut json {
        for own in ["object", "id", "log_index", "erased_by"] {
            fields.remove(own);
        }
    }
    contains(&json, &term)
}

fn contains(value: &Value, term: &str) -> bool {
    match value {
        Value::String(text) => text.to_ascii_lowercase().contains(term),
        Value::Number(number) => number.to_string().contains(term),
        Value::Bool(flag) => flag.to_string().contains(term),
        Value::Null => false,
        Value::Array(items) => items.iter().any(|item| contains(item, term)),
        Value::Object(fields) => fields.values().any(|item| contains(item, term)),
    }
}

/// The response body: what the follower sends, as it comes. It ends when the follower stops;
/// when the follower dropped a slow client, it fails instead, so that the connection is closed
/// (a client that does not read would otherwise keep it, waiting for its next request).
struct Messages {
    receiver: mpsc::Receiver<Bytes>,
    dropped: Arc<AtomicBool>,
}

impl http_body::Body for Messages {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.receiver.poll_recv(context).map(|message| match message {
            Some(bytes) => Some(Ok(Frame::data(bytes))),
            None if self.dropped.load(Ordering::Acquire) => Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the live tail client did not keep up",
            ))),
            None => None,
        })
    }
}

/// Wakes the tails of an organization when its events commit. One task per server hears every
/// commit announcement (`IngestService::subscribe`) and pokes the organizations' watch channels,
/// so a tail holds no announcement itself: a tail busy with a slow client keeps nothing of the
/// commits it has not looked at, and a commit of another organization costs it nothing.
#[derive(Clone, Default)]
pub(crate) struct TailWakers(Arc<WakersInner>);

#[derive(Default)]
struct WakersInner {
    organizations: Mutex<HashMap<OrganizationId, (watch::Sender<()>, usize)>>,
    pump: std::sync::OnceLock<()>,
}

impl TailWakers {
    /// Wakes from now on when `organization` commits.
    fn register(&self, organization: OrganizationId, ingest: &vellum_ingest::IngestService) -> TailWake {
        self.0.pump.get_or_init(|| {
            let inner = Arc::clone(&self.0);
            let mut committed = ingest.subscribe();
            tokio::spawn(async move {
                loop {
                    match committed.recv().await {
                        Ok(commit) => inner.wake(Some(commit.organization_id)),
                        // Announcements were missed: whoever they were for, look.
                        Err(broadcast::error::RecvError::Lagged(_)) => inner.wake(None),
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
        });
        let mut organizations = self
            .0
            .organizations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (sender, tails) = organizations
            .entry(organization)
            .or_insert_with(|| (watch::channel(()).0, 0));
        *tails += 1;
        TailWake {
            receiver: sender.subscribe(),
            organization,
            wakers: self.clone(),
        }
    }
}

impl WakersInner {
    fn wake(&self, organization: Option<OrganizationId>) {
        let organizations = self
            .organizations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match organization {
            Some(organization) => {
                if let Some((sender, _)) = organizations.get(&organization) {
                    sender.send_replace(());
                }
            }
            None => {
                for (sender, _) in organizations.values() {
                    sender.send_replace(());
                }
            }
        }
    }
}

/// One tail's registration: changes when its organization commits; gone when dropped.
struct TailWake {
    receiver: watch::Receiver<()>,
    organization: OrganizationId,
    wakers: TailWakers,
}

impl Drop for TailWake {
    fn drop(&mut self) {
        let mut organizations = self
            .wakers
            .0
            .organizations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, tails)) = organizations.get_mut(&self.organization) {
            *tails -= 1;
            if *tails == 0 {
                organizations.remove(&self.organization);
            }
        }
    }
}
