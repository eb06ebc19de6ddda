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

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
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

/// The time limits every listener applies to a connection (`docs/limits.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// TLS handshake ([`HANDSHAKE_TIMEOUT`]).
    pub handshake: Duration,
    /// First bytes of a connection, then each HTTP/1 request's headers, including the wait
    /// for the next request on a kept-alive connection ([`HEADER_READ_TIMEOUT`]).
    pub header_read: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            handshake: HANDSHAKE_TIMEOUT,
            header_read: HEADER_READ_TIMEOUT,
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
    let graceful = GracefulShutdown::new();
    // Cancels TLS handshakes in progress when shutdown starts.
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
                        watcher: graceful.watcher(),
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
        graceful.shutdown().await;
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
    watcher: hyper_util::server::graceful::Watcher,
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
        let service = self
            .app
            .map_request(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(info.clone());
                req.extensions_mut().insert(ConnectInfo(info.peer));
                req
            })
            .map_result(|result| match result {
                Ok(response) if response.extensions().get::<AbortConnection>().is_some() => {
                    Err(Aborted)
                }
                Ok(response) => Ok(response),
                Err(never) => match never {},
            });
        let service = TowerToHyperService::new(service);
        // hyper's header timeout starts once the protocol is known; telling HTTP/1 from
        // HTTP/2 waits for the first bytes, so those get the same limit.
        let io = TokioIo::new(FirstReadTimeout::new(io, self.builders.limits.header_read));
        // A client that chose HTTP/2 by ALPN gets it without sniffing its preface.
        let builder = if h2_by_alpn {
            &self.builders.h2
        } else {
            &self.builders.auto
        };
        let result = self
            .watcher
            .watch(builder.serve_connection(io, service))
            .await;
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
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
