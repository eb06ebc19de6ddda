//! The listener's idle and request-body limits (`listener::ConnectionLimits`,
//! `docs/limits.md`), shortened to a few hundred milliseconds: an HTTP/2 connection with no
//! open stream is closed even though it answers pings; a request body that drips or stalls is
//! cut off (HTTP/1: `408` and close, HTTP/2: the stream is reset, the connection goes on);
//! time the server spends (a `delay` fault) does not count against the client, and a request
//! in flight keeps its connection open; a fast upload is untouched; the admin API has the
//! same limits.
//!
//! Every wait is bounded generously (20 s) so a broken server fails the test instead of
//! hanging it; the only timing assertions are lower bounds, which load cannot break.

use bytes::Bytes;
use fake_registry::config::FleetConfig;
use fake_registry::digest::Digest;
use fake_registry::fleet::{Fleet, FleetOptions, RunningFleet};
use fake_registry::listener::ConnectionLimits;
use fake_registry::{FakeRegistry, RunningRegistry};
use futures_util::StreamExt as _;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rstest::rstest;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The shortened limit under test.
const LIMIT: Duration = Duration::from_millis(400);
/// How long a test waits for something the server must do within `LIMIT`.
const BOUND: Duration = Duration::from_secs(20);
/// A syntactically valid digest no dripped body will ever match.
const ZERO_DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn short_limits() -> ConnectionLimits {
    ConnectionLimits {
        idle: LIMIT,
        body_idle: LIMIT,
        ..ConnectionLimits::default()
    }
}

async fn registry() -> RunningRegistry {
    FakeRegistry::builder()
        .connection_limits(short_limits())
        .start()
        .await
        .expect("registry starts")
}

type ClientBody = BoxBody<Bytes, std::io::Error>;

/// An HTTP/2 connection with prior knowledge (h2c) and the task driving it, which ends when
/// the connection does. `pings`: the client sends keep-alive pings every 100 ms, idle or not.
async fn h2c(
    addr: SocketAddr,
    pings: bool,
) -> (
    hyper::client::conn::http2::SendRequest<ClientBody>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    if pings {
        builder
            .keep_alive_interval(Duration::from_millis(100))
            .keep_alive_while_idle(true);
    }
    let (sender, connection) = builder
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    (sender, tokio::spawn(connection))
}

fn empty() -> ClientBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body that sends one byte every 50 ms for ever.
fn drip() -> ClientBody {
    let bytes = futures_util::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Some((Ok(Frame::data(Bytes::from_static(b"x"))), ()))
    });
    BodyExt::boxed(StreamBody::new(bytes))
}

fn request(method: &str, path: &str, body: ClientBody) -> http::Request<ClientBody> {
    http::Request::builder()
        .method(method)
        .uri(format!("http://registry{path}"))
        .body(body)
        .expect("request")
}

/// Reads until the server closes (EOF or reset), at most `BOUND`.
async fn read_until_closed(mut reader: impl tokio::io::AsyncRead + Unpin) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let read_all = async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, read_all)
        .await
        .expect("the server closes the connection");
    seen
}

/// Hyper's HTTP/2 keep-alive pings prove the peer is alive, not that it uses the
/// connection: one that answers every ping but opens no stream is closed (GOAWAY) once it
/// has had no open stream for the idle limit.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_even_when_it_answers_pings() {
    let reg = registry().await;
    let (mut sender, connection) = h2c(reg.addr(), true).await;
    let started = Instant::now();
    let response = sender
        .send_request(request("GET", "/v2/", empty()))
        .await
        .expect("GET /v2/");
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    response.into_body().collect().await.expect("body");
    let ended = tokio::time::timeout(BOUND, connection)
        .await
        .expect("the server closes the idle connection")
        .expect("connection task");
    assert!(ended.is_ok(), "closed gracefully: {ended:?}");
    assert!(started.elapsed() >= LIMIT, "not before the idle limit");
    assert!(sender.is_closed());
    reg.shutdown().await;
}

/// An HTTP/1 body that stops coming after its first bytes: the server answers `408` and
/// closes the connection once it has waited the body limit.
#[tokio::test]
async fn a_stalled_http1_body_gets_408_and_the_connection_closes() {
    let reg = registry().await;
    let mut tcp = tokio::net::TcpStream::connect(reg.addr())
        .await
        .expect("connect");
    let started = Instant::now();
    tcp.write_all(
        format!(
            "POST /v2/slow/blobs/uploads/?digest={ZERO_DIGEST} HTTP/1.1\r\nHost: registry\r\n\
             Content-Length: 100000\r\n\r\n0123456789"
        )
        .as_bytes(),
    )
    .await
    .expect("send headers and 10 bytes");
    let seen = read_until_closed(&mut tcp).await;
    assert!(started.elapsed() >= LIMIT, "not before the body limit");
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("HTTP/1.1 408 "), "{seen}");
    assert!(
        seen.to_ascii_lowercase().contains("connection: close"),
        "{seen}"
    );
    assert!(seen.contains("request body too slow"), "{seen}");
    let journal = reg.journal().all();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].status, 408);
    assert!(
        journal[0]
            .notes
            .iter()
            .any(|n| n.starts_with("request body too slow")),
        "{:?}",
        journal[0].notes
    );
    reg.shutdown().await;
}

/// A body that keeps coming, one byte every 50 ms (20 B/s, under 1 KiB per limit), is cut
/// off: before, it held its connection for as long as bytes kept coming.
#[tokio::test]
async fn a_dripping_http1_body_is_cut_off() {
    let reg = registry().await;
    let tcp = tokio::net::TcpStream::connect(reg.addr())
        .await
        .expect("connect");
    let (reader, mut writer) = tcp.into_split();
    let started = Instant::now();
    writer
        .write_all(
            format!(
                "POST /v2/slow/blobs/uploads/?digest={ZERO_DIGEST} HTTP/1.1\r\nHost: registry\r\n\
                 Content-Length: 1000000\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("send headers");
    let dripping = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if writer.write_all(b"x").await.is_err() {
                break;
            }
        }
    });
    let seen = read_until_closed(reader).await;
    dripping.abort();
    assert!(started.elapsed() >= LIMIT, "not before the body limit");
    // The 408 is written before the close; a byte the client drips after it can make the
    // client's kernel drop it (a reset), so the wire may show nothing. The journal says what
    // the server answered.
    let seen = String::from_utf8_lossy(&seen);
    assert!(
        seen.is_empty() || seen.starts_with("HTTP/1.1 408 "),
        "{seen}"
    );
    let journal = reg.journal().all();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].status, 408);
    reg.shutdown().await;
}

/// Over HTTP/2 a dripping body's stream is reset; the connection's other streams go on.
#[tokio::test]
async fn a_dripping_http2_body_resets_its_stream_only() {
    let reg = registry().await;
    let (mut sender, _connection) = h2c(reg.addr(), false).await;
    let started = Instant::now();
    let path = format!("/v2/slow/blobs/uploads/?digest={ZERO_DIGEST}");
    let outcome = tokio::time::timeout(BOUND, sender.send_request(request("POST", &path, drip())))
        .await
        .expect("the server gives up on the body");
    let error = outcome.expect_err("the stream is reset");
    assert!(started.elapsed() >= LIMIT, "not before the body limit");
    // The same connection still serves a new stream.
    sender.ready().await.expect("connection still open");
    let response = sender
        .send_request(request("GET", "/v2/", empty()))
        .await
        .expect("GET /v2/ on the same connection");
    assert_eq!(response.status(), http::StatusCode::OK, "after {error:?}");
    let journal = reg.journal().all();
    assert_eq!(journal.len(), 2);
    assert_eq!(journal[0].status, 0, "closed without a response");
    assert!(
        journal[0]
            .notes
            .iter()
            .any(|n| n.starts_with("request body too slow")),
        "{:?}",
        journal[0].notes
    );
    reg.shutdown().await;
}

/// An upload of 16 MiB, as fast as loopback goes, over HTTP/1.1 and HTTP/2: the body limit
/// (1 KiB per wait of 400 ms) never trips and the blob is stored whole.
#[rstest]
#[case::http1(false)]
#[case::http2(true)]
#[tokio::test]
async fn a_fast_upload_is_not_affected(#[case] http2: bool) {
    let reg = registry().await;
    let mut client = reqwest::Client::builder().no_proxy().timeout(BOUND);
    client = if http2 {
        client.http2_prior_knowledge()
    } else {
        client.http1_only()
    };
    let client = client.build().expect("client");
    let blob: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let digest = Digest::sha256(&blob);
    let response = client
        .post(format!(
            "{}/v2/fast/blobs/uploads/?digest={digest}",
            reg.url()
        ))
        .body(blob.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let stored = client
        .get(format!("{}/v2/fast/blobs/{digest}", reg.url()))
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("blob");
    assert!(stored[..] == blob[..], "stored whole");
    reg.shutdown().await;
}

const HOST: &str = "limits.example.test";

async fn fleet(net: u8) -> (RunningFleet, tempfile::TempDir) {
    let toml = format!(
        r#"
[[host]]
name = "open"
hostname = "{HOST}"
[host.profile]
kind = "open"
"#
    );
    let hosts = FleetConfig::parse(&toml, "t.toml")
        .expect("config")
        .into_hosts(0)
        .expect("hosts");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = FleetOptions::new(dir.path());
    options.first_address = Ipv4Addr::new(127, 0, net, 2);
    options.connection_limits = short_limits();
    let fleet = Fleet::start(hosts, options).await.expect("fleet starts");
    (fleet, dir)
}

/// The server delays the upload for almost four times the body (and idle) limit before its
/// handler reads the body, which the client sends meanwhile in pieces. The body is smaller
/// than the minimum a window needs (80 bytes, 1 KiB), so had the delay counted as waiting,
/// the body would be cut when the handler reads it; only time the server spends waiting for
/// bytes counts, so the upload succeeds. Over HTTP/2 the open stream keeps the connection from
/// counting as idle.
#[rstest]
#[case::http1(false, 250)]
#[case::http2(true, 251)]
#[tokio::test]
async fn server_time_does_not_count_against_the_client(#[case] http2: bool, #[case] net: u8) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (fleet, _dir) = fleet(net).await;
    let delay_ms = 1500;
    let rule = serde_json::json!({
        "match": {"host": "open", "method": "POST", "path": "/v2/**"},
        "action": {"type": "delay", "ms": delay_ms},
    });
    fleet
        .faults()
        .add(serde_json::from_value(rule).expect("rule"))
        .expect("fault added");
    let pem = std::fs::read(fleet.ca_pem_path()).expect("CA");
    let mut client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA"))
        .resolve(HOST, fleet.host("open").expect("host").addr)
        .no_proxy()
        .timeout(BOUND);
    client = if http2 {
        client.http2_prior_knowledge()
    } else {
        client.http1_only()
    };
    let client = client.build().expect("client");
    // 8 pieces of 10 bytes, 50 ms apart: all sent while the server is still delaying.
    let piece = b"0123456789".to_vec();
    let blob = piece.repeat(8);
    let digest = Digest::sha256(&blob);
    let pieces = futures_util::stream::iter(0..8).then(move |_| {
        let piece = piece.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, std::io::Error>(piece)
        }
    });
    let started = Instant::now();
    let response = client
        .post(format!(
            "https://{HOST}/v2/delayed/blobs/uploads/?digest={digest}"
        ))
        .body(reqwest::Body::wrap_stream(pieces))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let expected = if http2 {
        reqwest::Version::HTTP_2
    } else {
        reqwest::Version::HTTP_11
    };
    assert_eq!(response.version(), expected);
    assert!(started.elapsed() >= Duration::from_millis(delay_ms));
    let journal = fleet.journal().all();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].status, 201);
    assert_eq!(journal[0].fault.as_deref(), Some("delay 1500ms"));
    fleet.shutdown().await;
}

/// The admin API is served by the same listener code with the fleet's limits: a JSON body
/// that stalls gets `408`.
#[tokio::test]
async fn the_admin_api_has_the_same_limits() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (fleet, _dir) = fleet(252).await;
    let admin = fleet
        .admin_url()
        .expect("admin API")
        .trim_start_matches("http://")
        .to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&admin)
        .await
        .expect("connect");
    tcp.write_all(
        format!(
            "POST /_regcompat/faults HTTP/1.1\r\nHost: {admin}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"match\":"
        )
        .as_bytes(),
    )
    .await
    .expect("send headers and the start of the body");
    let seen = read_until_closed(&mut tcp).await;
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.starts_with("HTTP/1.1 408 "), "{seen}");
    assert!(fleet.faults().list().is_empty());
    fleet.shutdown().await;
}
