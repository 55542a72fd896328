//! Serving connections: HTTP/1.1 through hyper, with the limits that keep a client that sends
//! nothing, or half a request, from holding the process's sockets.
//!
//! Each connection is in one of three phases, and each phase has its own deadline:
//!
//! - **head**: from accept, or from the first byte of a further request on a kept-alive
//!   connection, until its header section is complete: `header_read_timeout`;
//! - **request**: from the complete head until the response body is done. The request body
//!   must arrive within `body_read_timeout` of its head (a 408 otherwise), and a response that
//!   the client stops reading closes the connection after `write_stall_timeout` without progress;
//! - **idle**: between requests on a kept-alive connection: `idle_timeout`.
//!
//! One reaper task scans the connections a few times a second and closes those past their
//! deadline, so that a request costs no timer of its own (a request body arms one only when it
//! does not arrive with its head).
//!
//! At most `max_connections` are open at once. When a new connection would exceed that, the
//! connection that has waited longest for a request (idle, or with half a head) is closed to
//! make room; if every connection is busy with a request, the new one gets a 503 and is closed.
//! Running out of file descriptors is handled the same way.
//!
//! hyper answers a request it cannot parse (a URI over 64 KiB, too many or too large headers,
//! bytes that are not HTTP) itself, with an empty body, before any of Vellum's code runs. The
//! connection's writer recognises those answers and sends Vellum's JSON error in their place,
//! with an `X-Request-ID`, so that every error the server sends has the same shape.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The limits of the connection layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// How long a client has to send a request's whole header section, from connecting (or
    /// from its first byte on a kept-alive connection).
    pub header_read_timeout: Duration,
    /// How long a client has to send a request's body, from the end of its header section.
    pub body_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long a response may wait for a client that does not read it.
    pub write_stall_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

/// The default of [`ServerLimits::max_connections`] when the process may open enough files.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// File descriptors kept free for the store, export files and the log.
const RESERVED_FILE_DESCRIPTORS: u64 = 64;

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            write_stall_timeout: Duration::from_secs(60),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ServerLimits {
    /// The most connections that fit in `open_files_limit` file descriptors (the process's
    /// `RLIMIT_NOFILE`) with room kept for everything else, capped at `wanted`.
    pub fn connections_within(wanted: usize, open_files_limit: u64) -> usize {
        let room = open_files_limit
            .saturating_sub(RESERVED_FILE_DESCRIPTORS)
            .max(open_files_limit / 2)
            .max(1);
        wanted.min(usize::try_from(room).unwrap_or(usize::MAX))
    }
}

/// Monotonic milliseconds since the first use, so phases fit in an atomic.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_millis() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

const PHASE_HEAD: u8 = 0;
const PHASE_REQUEST: u8 = 1;
const PHASE_IDLE: u8 = 2;
/// No write is waiting for the client.
const NOT_BLOCKED: u64 = u64::MAX;

/// What one connection is doing, shared by its reader, its service and the accept loop.
struct Tracker {
    phase: AtomicU8,
    phase_since: AtomicU64,
    write_blocked_since: AtomicU64,
    /// Asks the connection to close (its deadline passed, or to make room for a new one).
    close: Notify,
}

impl Tracker {
    fn new() -> Self {
        Self {
            phase: AtomicU8::new(PHASE_HEAD),
            phase_since: AtomicU64::new(now_millis()),
            write_blocked_since: AtomicU64::new(NOT_BLOCKED),
            close: Notify::new(),
        }
    }

    fn enter(&self, phase: u8) {
        self.phase_since.store(now_millis(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    /// Bytes arrived: on an idle connection, they start the next request's head.
    fn bytes_read(&self) {
        if self
            .phase
            .compare_exchange(PHASE_IDLE, PHASE_HEAD, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.phase_since.store(now_millis(), Ordering::Relaxed);
        }
    }

    /// Whether the accept loop may close this connection to make room: it waits for a request.
    fn is_waiting(&self) -> bool {
        self.phase() != PHASE_REQUEST
    }

    /// When this connection's current deadline passes, in [`now_millis`] terms.
    fn deadline(&self, limits: &ServerLimits) -> u64 {
        let since = self.phase_since.load(Ordering::Relaxed);
        let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let phase_deadline = match self.phase() {
            PHASE_HEAD => since.saturating_add(millis(limits.header_read_timeout)),
            PHASE_IDLE => since.saturating_add(millis(limits.idle_timeout)),
            _ => u64::MAX,
        };
        let blocked = self.write_blocked_since.load(Ordering::Relaxed);
        let write_deadline = if blocked == NOT_BLOCKED {
            u64::MAX
        } else {
            blocked.saturating_add(millis(limits.write_stall_timeout))
        };
        phase_deadline.min(write_deadline)
    }
}

/// The open connections, for eviction when full.
#[derive(Default)]
struct Registry {
    next_id: u64,
    open: HashMap<u64, Arc<Tracker>>,
}

impl Registry {
    /// Asks the connection that has waited longest for a request to close. Returns false when
    /// every connection is busy with one.
    fn evict_longest_waiting(&self) -> bool {
        // Ties (the same millisecond) go to the connection accepted first.
        let oldest = self
            .open
            .iter()
            .filter(|(_, tracker)| tracker.is_waiting())
            .min_by_key(|(id, tracker)| (tracker.phase_since.load(Ordering::Relaxed), **id));
        match oldest {
            Some((_, tracker)) => {
                // A stored permit: the connection closes even if its task is not waiting yet.
                tracker.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests finish
/// and returns once every connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let registry = Arc::new(Mutex::new(Registry::default()));
    let (stop_sender, stop_receiver) = watch::channel(false);
    let mut connections = JoinSet::new();
    let reaper = tokio::spawn(reap_expired_connections(Arc::clone(&registry), limits));
    let _stop_reaper = AbortOnDrop(reaper);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) if is_out_of_files(&error) => {
                let evicted = lock(&registry).evict_longest_waiting();
                tracing::warn!(%error, evicted, "out of file descriptors: closing the connection that waited longest");
                // Give the evicted connection's task a moment to close its socket.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            Err(error) => {
                tracing::debug!(%error, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let tracker = Arc::new(Tracker::new());
        let id = {
            let mut registry = lock(&registry);
            if registry.open.len() >= limits.max_connections && !registry.evict_longest_waiting() {
                drop(registry);
                refuse_busy(&stream);
                continue;
            }
            let id = registry.next_id;
            registry.next_id += 1;
            registry.open.insert(id, Arc::clone(&tracker));
            id
        };
        let registry = Arc::clone(&registry);
        let router = router.clone();
        let stop = stop_receiver.clone();
        connections.spawn(async move {
            serve_connection(stream, remote, router, Arc::clone(&tracker), limits, stop).await;
            lock(&registry).open.remove(&id);
        });
    }
    drop(listener);
    let _ = stop_sender.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Aborts a task when dropped (the reaper ends with the server, however the server ends).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lock(registry: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn is_out_of_files(error: &io::Error) -> bool {
    // EMFILE (the process's limit) and ENFILE (the system's).
    matches!(error.raw_os_error(), Some(24 | 23))
}

/// Answers a connection that cannot be served now, without waiting for it.
fn refuse_busy(stream: &TcpStream) {
    let response = error_response(
        503,
        "Service Unavailable",
        "The server is at its connection limit; retry shortly.",
        "too_many_connections",
    );
    let _ = stream.try_write(&response);
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    tracker: Arc<Tracker>,
    limits: ServerLimits,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(TrackedIo::new(stream, Arc::clone(&tracker)));
    let service_tracker = Arc::clone(&tracker);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let tracker = Arc::clone(&service_tracker);
        tracker.enter(PHASE_REQUEST);
        let deadline = tokio::time::Instant::now() + limits.body_read_timeout;
        let mut request = request.map(|body| axum::body::Body::new(DeadlineBody::new(body, deadline)));
        request.extensions_mut().insert(ConnectInfo(remote));
        let router = router.clone();
        async move {
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(infallible) => match infallible {},
            };
            let guard = RequestGuard(tracker);
            Ok::<_, Infallible>(response.map(|body| TrackedBody {
                inner: body,
                _guard: guard,
            }))
        }
    });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut stopping = *stop.borrow();
    if stopping {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, %remote, "connection ended with an error");
                }
                return;
            }
            () = tracker.close.notified() => {
                tracing::debug!(%remote, phase = tracker.phase(), "connection closed: timed out, or to make room");
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// How often the reaper looks for connections past their deadline: a quarter of the shortest
/// timeout, between 50 ms and 1 s. Deadlines are enforced to within this.
fn reaper_tick(limits: &ServerLimits) -> Duration {
    let shortest = limits
        .header_read_timeout
        .min(limits.idle_timeout)
        .min(limits.write_stall_timeout);
    (shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Closes connections whose deadline has passed. One task scans every connection's phase a few
/// times a second, so that a request costs no timer of its own.
async fn reap_expired_connections(registry: Arc<Mutex<Registry>>, limits: ServerLimits) {
    let mut ticks = tokio::time::interval(reaper_tick(&limits));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = now_millis();
        for tracker in lock(&registry).open.values() {
            if tracker.deadline(&limits) <= now {
                tracker.close.notify_one();
            }
        }
    }
}

/// Marks the end of a request when the response body is done (or dropped).
struct RequestGuard(Arc<Tracker>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.enter(PHASE_IDLE);
    }
}

/// A response body that ends its connection's request phase when it is dropped.
struct TrackedBody {
    inner: axum::body::Body,
    _guard: RequestGuard,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body did not arrive within the body read timeout.
#[derive(Debug)]
pub(crate) struct BodyReadTimeout;

impl std::fmt::Display for BodyReadTimeout {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyReadTimeout {}

/// A request body that fails with [`BodyReadTimeout`] once its deadline passes. The timer is
/// armed only when the body is not already there: most bodies arrive with their head.
struct DeadlineBody {
    inner: Incoming,
    deadline: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, deadline: tokio::time::Instant) -> Self {
        Self {
            inner,
            deadline,
            timer: None,
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyReadTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, seen by hyper: it tells the tracker when bytes arrive and when the client stops
/// reading, and replaces hyper's own empty error answers with Vellum's JSON ones.
struct TrackedIo {
    stream: TcpStream,
    tracker: Arc<Tracker>,
    /// Bytes of a replacement answer not yet written.
    replacement: Vec<u8>,
    written: usize,
}

impl TrackedIo {
    fn new(stream: TcpStream, tracker: Arc<Tracker>) -> Self {
        Self {
            stream,
            tracker,
            replacement: Vec::new(),
            written: 0,
        }
    }

    /// Writes what is left of a replacement answer.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.replacement.len() {
            let written = ready!(self.poll_tracked_write(cx, Side::Replacement))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += written;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_tracked_write(&mut self, cx: &mut Context<'_>, side: Side<'_>) -> Poll<io::Result<usize>> {
        let polled = match side {
            Side::Replacement => {
                let rest = &self.replacement[self.written..];
                Pin::new(&mut self.stream).poll_write(cx, rest)
            }
            Side::Bytes(bytes) => Pin::new(&mut self.stream).poll_write(cx, bytes),
            Side::Vectored(slices) => Pin::new(&mut self.stream).poll_write_vectored(cx, slices),
        };
        match &polled {
            Poll::Pending => {
                let _ = self.tracker.write_blocked_since.compare_exchange(
                    NOT_BLOCKED,
                    now_millis(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            // Only a store when the write had been blocked: the common case stays a load.
            Poll::Ready(_) => {
                if self.tracker.write_blocked_since.load(Ordering::Relaxed) != NOT_BLOCKED {
                    self.tracker.write_blocked_since.store(NOT_BLOCKED, Ordering::Relaxed);
                }
            }
        }
        polled
    }

    /// When `head` is hyper's own answer to an unparseable request, queues Vellum's instead.
    ///
    /// hyper sends that answer only between requests (never while a response of the service is
    /// being written), as one head with no body; the checks here are that it comes while no
    /// request is in progress and looks exactly like hyper's.
    fn replace_parse_error(&mut self, head: &[u8]) -> bool {
        if self.tracker.phase() == PHASE_REQUEST {
            return false;
        }
        let Some(response) = replacement_for(head) else {
            return false;
        };
        self.replacement = response;
        self.written = 0;
        true
    }
}

#[derive(Clone, Copy)]
enum Side<'a> {
    Replacement,
    Bytes(&'a [u8]),
    Vectored(&'a [io::IoSlice<'a>]),
}

impl AsyncRead for TrackedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.tracker.bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_drain(cx))?;
        if self.replace_parse_error(buf) {
            ready!(self.poll_drain(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        self.poll_tracked_write(cx, Side::Bytes(buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_drain(cx))?;
        if let Some(first) = slices.iter().find(|slice| !slice.is_empty())
            && self.replace_parse_error(first)
        {
            ready!(self.poll_drain(cx))?;
            return Poll::Ready(Ok(slices.iter().map(|slice| slice.len()).sum()));
        }
        self.poll_tracked_write(cx, Side::Vectored(slices))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Vellum's answer in place of hyper's automatic one, if `head` is one: a status line hyper
/// sends for a request it could not parse, a complete head, and no `X-Request-ID` (every
/// answer of Vellum's own has one).
fn replacement_for(head: &[u8]) -> Option<Vec<u8>> {
    let (status, reason, message, code) = if head.starts_with(b"HTTP/1.1 400 ") {
        (
            400,
            "Bad Request",
            "The request is not valid HTTP/1.1 (a malformed request line, path or header).",
            "malformed_request",
        )
    } else if head.starts_with(b"HTTP/1.1 414 ") {
        (414, "URI Too Long", "The request's URI is too long.", "uri_too_long")
    } else if head.starts_with(b"HTTP/1.1 431 ") {
        (
            431,
            "Request Header Fields Too Large",
            "The request's headers are too many or too large.",
            "request_headers_too_large",
        )
    } else {
        return None;
    };
    // Exactly hyper's head: a status line, then only `connection`, `content-length: 0` and
    // `date`, and nothing after it. Every answer of Vellum's own carries `x-request-id`.
    let end = head.windows(4).position(|window| window == b"\r\n\r\n")?;
    if end + 4 != head.len() {
        return None;
    }
    let head_text = std::str::from_utf8(&head[..end]).ok()?.to_ascii_lowercase();
    let mut saw_empty_length = false;
    for line in head_text.split("\r\n").skip(1) {
        let (name, value) = line.split_once(':')?;
        match (name, value.trim()) {
            ("content-length", "0") => saw_empty_length = true,
            ("connection" | "date", _) => {}
            _ => return None,
        }
    }
    saw_empty_length.then(|| error_response(status, reason, message, code))
}

/// A complete HTTP/1.1 error response in Vellum's shape, closing the connection.
fn error_response(status: u16, reason: &str, message: &str, code: &str) -> Vec<u8> {
    let body = serde_json::to_string(&crate::error::ErrorResponse {
        message: message.to_owned(),
        code: code.to_owned(),
    })
    .unwrap_or_default();
    let request_id = format!("req_{}", ulid::Ulid::generate());
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_error_heads_are_replaced_and_ours_are_not() {
        let hyper_head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 00:00:00 GMT\r\n\r\n";
        let replaced = String::from_utf8(replacement_for(hyper_head).unwrap()).unwrap();
        assert!(replaced.starts_with("HTTP/1.1 431 "), "{replaced}");
        assert!(replaced.contains("x-request-id: req_"), "{replaced}");
        let body = replaced.split("\r\n\r\n").nth(1).unwrap();
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], "request_headers_too_large");

        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nx-request-id: req_1\r\ncontent-length: 2\r\n\r\n{}";
        assert!(replacement_for(ours).is_none());
        let ours_empty = b"HTTP/1.1 400 Bad Request\r\nx-request-id: req_1\r\ncontent-length: 0\r\n\r\n";
        assert!(replacement_for(ours_empty).is_none());
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}";
        assert!(
            replacement_for(with_body).is_none(),
            "bytes after the head are not hyper's"
        );
        assert!(replacement_for(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(
            replacement_for(b"HTTP/1.1 400 Bad Req").is_none(),
            "an incomplete head is left alone"
        );
    }

    #[test]
    fn connections_fit_the_file_limit() {
        assert_eq!(ServerLimits::connections_within(4096, 1_048_576), 4096);
        assert_eq!(ServerLimits::connections_within(4096, 1024), 960);
        assert_eq!(ServerLimits::connections_within(4096, 256), 192);
        assert_eq!(ServerLimits::connections_within(4096, 100), 50);
    }

    #[test]
    fn deadlines_follow_the_phase() {
        let limits = ServerLimits::default();
        let tracker = Tracker::new();
        let start = tracker.phase_since.load(Ordering::Relaxed);
        assert_eq!(tracker.deadline(&limits), start + 10_000);
        tracker.enter(PHASE_REQUEST);
        assert_eq!(tracker.deadline(&limits), u64::MAX);
        tracker.write_blocked_since.store(5, Ordering::Relaxed);
        assert_eq!(tracker.deadline(&limits), 60_005);
        tracker.write_blocked_since.store(NOT_BLOCKED, Ordering::Relaxed);
        tracker.enter(PHASE_IDLE);
        let idle_since = tracker.phase_since.load(Ordering::Relaxed);
        assert_eq!(tracker.deadline(&limits), idle_since + 60_000);
        tracker.bytes_read();
        assert_eq!(tracker.phase(), PHASE_HEAD);
    }
}
