//! Serving connections: the accept loop, the optional TLS handshake, HTTP/1.1 and HTTP/2 (by
//! ALPN over TLS, by prior knowledge in clear text), and graceful shutdown.
//!
//! Every request carries a [`ConnectionInfo`] in its extensions (and axum's
//! `ConnectInfo<SocketAddr>` with the peer), so handlers can tell which name a client dialled
//! (SNI) and over which protocol.
//!
//! A connection's failure — a handshake that fails or times out, a protocol error, oversized
//! headers — is logged at debug level and affects no other connection; the accept loop never
//! stops on an accept error (`EMFILE` and the like: logged, retried after 50 ms).
//!
//! Time limits ([`ConnectionLimits`], `docs/limits.md`): the TLS handshake, the first bytes and
//! each HTTP/1 request's headers (hyper's header-read timeout), a connection with no request
//! in flight (an idle HTTP/1 keep-alive connection or an HTTP/2 connection with no open
//! stream: closed gracefully, GOAWAY on HTTP/2), and a request body that arrives too slowly
//! (fewer than [`ConnectionLimits::body_min_bytes`] in a [`ConnectionLimits::body_idle`] of
//! the server waiting for it: HTTP/1 answers `408` and closes, HTTP/2 resets the stream).

use axum::extract::ConnectInfo;
use axum::response::Response;
use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for open connections to finish before closing them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a client has to send its first bytes, and an HTTP/1 client each request's headers
/// (an idle keep-alive connection waits for the next request's headers, so it closes too).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may go without a request in flight (HTTP/2: without an open stream)
/// before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The window of server waiting time in which a request body must bring
/// [`BODY_MIN_BYTES`].
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The least a request body must bring in each [`BODY_IDLE_TIMEOUT`] of waiting: 1 KiB in
/// 30 s, ~34 B/s. Far below any real link or a client starved on a loaded machine, so no real
/// upload is cut; a drip (a byte a second, the slow-POST attack) is. A byte floor alone (the
/// time between two reads, as nginx's `client_body_timeout`) would let a byte every 29 s hold
/// a connection for ever.
pub const BODY_MIN_BYTES: u64 = 1024;

/// The time limits every listener applies to a connection (`docs/limits.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// TLS handshake ([`HANDSHAKE_TIMEOUT`]).
    pub handshake: Duration,
    /// First bytes of a connection, then each HTTP/1 request's headers, including the wait
    /// for the next request on a kept-alive connection ([`HEADER_READ_TIMEOUT`]).
    pub header_read: Duration,
    /// A connection with no request in flight for this long is closed gracefully: an idle
    /// HTTP/1 keep-alive connection (`header_read` bounds that too), an HTTP/2 connection
    /// with no open stream (GOAWAY), whether or not the client answers pings
    /// ([`IDLE_TIMEOUT`]). A response still being sent keeps its request in flight.
    pub idle: Duration,
    /// A request body must bring [`Self::body_min_bytes`] in every `body_idle` the server
    /// spends waiting for it ([`BODY_IDLE_TIMEOUT`]); the server's own time (a handler, a
    /// `delay` fault, a disk write) does not count. Otherwise the request is abandoned:
    /// HTTP/1 answers `408` and closes the connection, HTTP/2 resets the stream.
    pub body_idle: Duration,
    /// See [`Self::body_idle`] ([`BODY_MIN_BYTES`]); `0` turns the body limit off.
    pub body_min_bytes: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            handshake: HANDSHAKE_TIMEOUT,
            header_read: HEADER_READ_TIMEOUT,
            idle: IDLE_TIMEOUT,
            body_idle: BODY_IDLE_TIMEOUT,
            body_min_bytes: BODY_MIN_BYTES,
        }
    }
}
/// Pause after an accept error (such as `EMFILE`) before accepting again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Put in a response's extensions to close the connection instead of answering (a fault):
/// HTTP/1 closes the connection without writing anything, HTTP/2 resets the stream.
#[derive(Debug, Clone, Copy)]
pub struct AbortConnection;

/// The service error that makes hyper drop a connection on purpose.
#[derive(Debug)]
struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection aborted on purpose (fault)")
    }
}

impl std::error::Error for Aborted {}

impl From<std::convert::Infallible> for Aborted {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// What a request's connection looks like; in every request's extensions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The address the client connected to.
    pub local: SocketAddr,
    /// The server name the client sent in its TLS ClientHello (none without TLS, and none for
    /// a client that dialled an IP address).
    pub sni: Option<String>,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The protocol agreed by ALPN (`h2`, `http/1.1`), if any.
    pub alpn: Option<String>,
}

/// Serves `app` on `listener` until `shutdown` completes, over TLS when `tls` is given.
///
/// On shutdown: stops accepting, asks every connection to finish (HTTP/1 closes once the
/// request in flight is answered, idle keep-alive connections at once; HTTP/2 sends GOAWAY),
/// waits up to [`SHUTDOWN_GRACE`], then closes whatever is left and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_limits(listener, tls, app, shutdown, ConnectionLimits::default()).await
}

/// [`serve`] with explicit connection time limits.
pub async fn serve_with_limits(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let builders = Arc::new(Builders::new(limits));
    // Cancels TLS handshakes in progress and asks every connection to close gracefully when
    // shutdown starts.
    let stopping = CancellationToken::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let connection = Connection {
                        builders: builders.clone(),
                        acceptor: acceptor.clone(),
                        app: app.clone(),
                        stopping: stopping.clone(),
                    };
                    connections.spawn(connection.run(stream, peer));
                }
                Err(e) if is_connection_error(&e) => {
                    tracing::debug!(error = %e, "accept: connection failed before it was accepted");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying shortly");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
    drop(listener);
    stopping.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(
            remaining = connections.len(),
            "connections still open after the grace period; closing them"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// HTTP connection builders: one that tells HTTP/1 from HTTP/2 by the first bytes, one for
/// connections whose ALPN already said `h2`.
struct Builders {
    auto: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
    limits: ConnectionLimits,
}

impl Builders {
    fn new(limits: ConnectionLimits) -> Self {
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read)
            .keep_alive(true);
        auto.http2().timer(TokioTimer::new());
        let h2 = auto.clone().http2_only();
        Self { auto, h2, limits }
    }
}

/// Errors of one would-be connection, not of the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

struct Connection {
    builders: Arc<Builders>,
    acceptor: Option<TlsAcceptor>,
    app: axum::Router,
    stopping: CancellationToken,
}

impl Connection {
    async fn run(self, stream: TcpStream, peer: SocketAddr) {
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "connection lost before it was served");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        match self.acceptor.clone() {
            None => {
                let info = ConnectionInfo {
                    peer,
                    local,
                    sni: None,
                    tls: false,
                    alpn: None,
                };
                self.serve_http(stream, info).await;
            }
            Some(acceptor) => {
                let handshake = tokio::select! {
                    () = self.stopping.cancelled() => return,
                    r = tokio::time::timeout(self.builders.limits.handshake, acceptor.accept(stream)) => r,
                };
                let stream = match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let session = stream.get_ref().1;
                let info = ConnectionInfo {
                    peer,
                    local,
                    sni: session.server_name().map(str::to_owned),
                    tls: true,
                    alpn: session
                        .alpn_protocol()
                        .map(|p| String::from_utf8_lossy(p).into_owned()),
                };
                self.serve_http(stream, info).await;
            }
        }
    }

    async fn serve_http<IO>(self, io: IO, info: ConnectionInfo)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let peer = info.peer;
        let h2_by_alpn = info.alpn.as_deref() == Some("h2");
        let limits = self.builders.limits;
        let activity = Arc::new(Activity::new());
        let tracker = activity.clone();
        let app = self.app;
        let service = tower::service_fn(move |req: http::Request<Incoming>| {
            // Counted from the moment hyper hands the request over until its response body
            // is dropped (sent or abandoned): that is what keeps a connection from being idle.
            let in_flight = tracker.start();
            let app = app.clone();
            let info = info.clone();
            async move {
                let version = req.version();
                let slow = SlowBody::new(limits);
                let mut req = req.map(|body| axum::body::Body::new(MinRate::new(body, &slow)));
                req.extensions_mut().insert(ConnectInfo(info.peer));
                req.extensions_mut().insert(info);
                req.extensions_mut().insert(slow.clone());
                let response = match app.oneshot(req).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                // Whatever the handler made of the broken body, the client gets the answer
                // for a body that was too slow (the virtual host has already journaled it).
                let response = if slow.tripped() {
                    slow.response(version)
                } else {
                    response
                };
                if response.extensions().get::<AbortConnection>().is_some() {
                    return Err(Aborted);
                }
                Ok(response.map(|body| {
                    axum::body::Body::new(InFlightBody {
                        body,
                        _in_flight: in_flight,
                    })
                }))
            }
        });
        let service = TowerToHyperService::new(service);
        // hyper's header timeout starts once the protocol is known; telling HTTP/1 from
        // HTTP/2 waits for the first bytes, so those get the same limit.
        let io = TokioIo::new(FirstReadTimeout::new(io, limits.header_read));
        // A client that chose HTTP/2 by ALPN gets it without sniffing its preface.
        let builder = if h2_by_alpn {
            &self.builders.h2
        } else {
            &self.builders.auto
        };
        let mut connection = std::pin::pin!(builder.serve_connection(io, service));
        // hyper closes neither an HTTP/2 connection without streams (its keep-alive pings
        // only catch a peer that stops answering) nor, for shutdown, any connection by
        // itself: both ask it to close gracefully.
        let reason = tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = activity.idle_for(limits.idle, Instant::now()) => "idle",
            () = self.stopping.cancelled() => "shutdown",
        };
        tracing::debug!(%peer, reason, "closing the connection gracefully");
        connection.as_mut().graceful_shutdown();
        // An HTTP/2 graceful close waits for the client to answer a ping; one that never
        // does must not keep the connection: it is dropped once nothing has been in flight
        // for the shutdown grace. Requests still in flight finish (each bounded by the body
        // limit and the client reading its answer).
        let closing = Instant::now();
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
            () = activity.idle_for(SHUTDOWN_GRACE, closing) => {
                tracing::debug!(%peer, "graceful close not completed; connection dropped");
            }
        }
    }
}

/// The requests in flight on one connection, and since when there has been none.
struct Activity {
    /// (requests in flight, when the count last dropped to zero or the connection began)
    state: Mutex<(usize, Instant)>,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new((0, Instant::now())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, Instant)> {
        // The state is two plain values, consistent at every point a panic could occur.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.lock().0 += 1;
        InFlight(self.clone())
    }

    /// Returns once no request has been in flight for `limit`, counting from `from` at the
    /// earliest.
    async fn idle_for(&self, limit: Duration, from: Instant) {
        loop {
            let (open, since) = *self.lock();
            if open > 0 {
                // Re-checked after a while rather than woken on every change: a connection
                // busy for a long time costs one timer per `limit`.
                tokio::time::sleep(limit).await;
                continue;
            }
            let deadline = since.max(from) + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One request in flight; dropped with its response body.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.0 = state.0.saturating_sub(1);
        if state.0 == 0 {
            state.1 = Instant::now();
        }
    }
}

/// A response body that keeps its request in flight until hyper has sent it (or given up).
struct InFlightBody {
    body: axum::body::Body,
    /// Held for its `Drop`.
    _in_flight: InFlight,
}

impl HttpBody for InFlightBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// In every request's extensions: whether its body was abandoned for arriving too slowly
/// ([`ConnectionLimits::body_idle`]), so the virtual host can journal the answer the client
/// gets.
#[derive(Debug, Clone)]
pub struct SlowBody {
    tripped: Arc<AtomicBool>,
    min_bytes: u64,
    window: Duration,
}

impl SlowBody {
    fn new(limits: ConnectionLimits) -> Self {
        Self {
            tripped: Arc::new(AtomicBool::new(false)),
            min_bytes: limits.body_min_bytes,
            window: limits.body_idle,
        }
    }

    /// Whether the body was abandoned.
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    fn trip(&self) -> BodyTooSlow {
        self.tripped.store(true, Ordering::Release);
        self.error()
    }

    fn error(&self) -> BodyTooSlow {
        BodyTooSlow {
            min_bytes: self.min_bytes,
            window: self.window,
        }
    }

    /// For the journal: why the request was abandoned.
    pub fn note(&self) -> String {
        self.error().to_string()
    }

    /// What the client gets instead of the handler's answer: HTTP/1 a `408` that closes the
    /// connection (nothing has been sent yet: the handler had not answered), HTTP/2 a reset
    /// stream (the connection's other streams go on).
    pub fn response(&self, version: http::Version) -> Response {
        let mut response = Response::new(axum::body::Body::from(format!("{}\n", self.error())));
        if version >= http::Version::HTTP_2 {
            response.extensions_mut().insert(AbortConnection);
            return response;
        }
        *response.status_mut() = http::StatusCode::REQUEST_TIMEOUT;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        response
    }
}

/// The error a too-slow request body ends with.
#[derive(Debug, Clone, thiserror::Error)]
#[error("request body too slow: fewer than {min_bytes} bytes in {window:?} of waiting for them")]
pub struct BodyTooSlow {
    min_bytes: u64,
    window: Duration,
}

/// A request body that must bring `min_bytes` in every `window` the server spends waiting
/// for it. Only time between a poll that found no data and the next poll counts: while the
/// server is busy elsewhere (a handler, a `delay` fault, a disk write) the body is not
/// polled, and the client, whose bytes queue up meanwhile, is not blamed for it.
struct MinRate<B> {
    inner: B,
    slow: SlowBody,
    /// Bytes delivered in the current window.
    bytes: u64,
    /// Waiting time of the current window before the current wait.
    waited: Duration,
    /// When the current wait began: the inner body last had no data for a poll.
    waiting_since: Option<Instant>,
    /// Wakes the body when the current window's waiting time is used up.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> MinRate<B> {
    fn new(inner: B, slow: &SlowBody) -> Self {
        Self {
            inner,
            slow: slow.clone(),
            bytes: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
        }
    }

    fn give_up(&mut self) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        self.timer = None;
        Poll::Ready(Some(Err(Box::new(self.slow.trip()))))
    }
}

impl<B> HttpBody for MinRate<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.get_mut();
        if this.slow.tripped() {
            return this.give_up();
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.remaining() as u64;
                }
                if this.bytes >= this.slow.min_bytes {
                    // Enough for this window: the next one starts now.
                    this.bytes = 0;
                    this.waited = Duration::ZERO;
                } else if this.waited >= this.slow.window {
                    return this.give_up();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.timer = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.slow.min_bytes == 0 {
                    return Poll::Pending;
                }
                let since = *this.waiting_since.get_or_insert_with(Instant::now);
                let deadline = since + this.slow.window.saturating_sub(this.waited);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return this.give_up();
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.slow.tripped() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Fails the first read of a connection that brings no bytes within the limit; later reads
/// pass through untouched.
struct FirstReadTimeout<IO> {
    io: IO,
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> FirstReadTimeout<IO> {
    fn new(io: IO, limit: Duration) -> Self {
        Self {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(limit))),
        }
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstReadTimeout<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if result.is_err() || buf.filled().len() > before {
                    self.deadline = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = self
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if !expired {
                    return Poll::Pending;
                }
                self.deadline = None;
                Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no request bytes within the header read timeout",
                )))
            }
        }
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FirstReadTimeout<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use http_body_util::channel::{Channel, Sender};

    const WINDOW: Duration = Duration::from_secs(1);

    /// A body the test feeds by hand, limited to 10 bytes per second of waiting.
    fn body() -> (Sender<Bytes>, MinRate<Channel<Bytes>>, SlowBody) {
        let (tx, channel) = Channel::new(64);
        let slow = SlowBody::new(ConnectionLimits {
            body_idle: WINDOW,
            body_min_bytes: 10,
            ..ConnectionLimits::default()
        });
        let body = MinRate::new(channel, &slow);
        (tx, body, slow)
    }

    /// Reads frames until the body ends (`Ok`) or fails (`Err`).
    async fn read_to_end(body: &mut MinRate<Channel<Bytes>>) -> Result<u64, axum::BoxError> {
        let mut total = 0;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                total += data.len() as u64;
            }
        }
        Ok(total)
    }

    #[tokio::test(start_paused = true)]
    async fn a_drip_is_cut_after_one_window_of_waiting() {
        let (mut tx, mut body, slow) = body();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if tx.send_data(Bytes::from_static(b"x")).await.is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        let error = read_to_end(&mut body).await.expect_err("cut off");
        assert!(error.is::<BodyTooSlow>(), "{error}");
        assert!(slow.tripped());
        assert_eq!(started.elapsed(), WINDOW);
        // Once cut, the body stays failed.
        assert!(body.frame().await.is_some_and(|f| f.is_err()));
    }

    #[tokio::test(start_paused = true)]
    async fn enough_bytes_in_each_window_is_never_cut() {
        let (mut tx, mut body, slow) = body();
        tokio::spawn(async move {
            // 10 bytes every 900 ms for 20 windows, as slow as the limit allows.
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(900)).await;
                if tx.send_data(Bytes::from(vec![0u8; 10])).await.is_err() {
                    return;
                }
            }
        });
        assert_eq!(read_to_end(&mut body).await.expect("not cut"), 200);
        assert!(!slow.tripped());
    }

    /// Time the server spends without polling the body (a handler's work, a `delay` fault)
    /// is not the client's: only waits for data count, and they add up across the pause.
    #[tokio::test(start_paused = true)]
    async fn time_the_server_spends_elsewhere_does_not_count() {
        let (mut tx, mut body, slow) = body();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            tx.send_data(Bytes::from_static(b"a")).await.ok();
            // Sent while the server is busy: queued until it polls again.
            tokio::time::sleep(Duration::from_secs(1)).await;
            tx.send_data(Bytes::from_static(b"b")).await.ok();
            tx
        });
        // 600 ms of waiting for the first byte.
        let frame = body.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.into_data().ok().as_deref(), Some(&b"a"[..]));
        // The server works for 10 windows without reading the body …
        tokio::time::sleep(10 * WINDOW).await;
        // … and then finds the next byte at once.
        let frame = body.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.into_data().ok().as_deref(), Some(&b"b"[..]));
        assert!(!slow.tripped());
        // The window's waiting time carries on: 400 ms more without data cut it (2 bytes of
        // 10 in 600 + 400 ms of waiting).
        let _tx = sender.await.expect("sender");
        let started = Instant::now();
        assert!(body.frame().await.is_some_and(|f| f.is_err()));
        assert!(slow.tripped());
        assert_eq!(started.elapsed(), Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_min_bytes_turns_the_limit_off() {
        let (mut tx, channel) = Channel::<Bytes>::new(1);
        let slow = SlowBody::new(ConnectionLimits {
            body_idle: WINDOW,
            body_min_bytes: 0,
            ..ConnectionLimits::default()
        });
        let mut body = MinRate::new(channel, &slow);
        tokio::spawn(async move {
            tokio::time::sleep(100 * WINDOW).await;
            tx.send_data(Bytes::from_static(b"late")).await.ok();
        });
        assert_eq!(read_to_end(&mut body).await.expect("not cut"), 4);
        assert!(!slow.tripped());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_without_requests_in_flight() {
        let activity = Arc::new(Activity::new());
        let began = Instant::now();
        let request = activity.start();
        // A request in flight for 5 s keeps a 1 s idle limit from firing …
        let idle = activity.idle_for(WINDOW, began);
        tokio::pin!(idle);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), idle.as_mut())
                .await
                .is_err()
        );
        // … which counts from the end of the request.
        drop(request);
        let ended = Instant::now();
        idle.await;
        assert_eq!(ended.elapsed(), WINDOW);
    }

    #[test]
    fn too_slow_answers_408_on_http1_and_resets_http2() {
        let slow = SlowBody::new(ConnectionLimits::default());
        let r = slow.response(http::Version::HTTP_11);
        assert_eq!(r.status(), http::StatusCode::REQUEST_TIMEOUT);
        assert_eq!(r.headers()[http::header::CONNECTION], "close");
        assert!(r.extensions().get::<AbortConnection>().is_none());
        let r = slow.response(http::Version::HTTP_2);
        assert!(r.extensions().get::<AbortConnection>().is_some());
        assert_eq!(
            slow.note(),
            "request body too slow: fewer than 1024 bytes in 30s of waiting for them"
        );
    }
}
