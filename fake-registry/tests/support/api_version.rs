//! A Docker Engine API version adapter for tests: a unix socket that forwards every
//! connection to an older dockerd, rewriting the version in request paths (`/v1.49/…` →
//! `/v1.41/…`, equal length, so no framing changes).
//!
//! Why: testcontainers-rs (bollard) speaks Docker API 1.49 and never negotiates, and
//! Debian's dockerd 20.10 — the only dockerd this machine has — answers up to 1.41 and
//! refuses newer clients ("client version 1.49 is too new"). The calls testcontainers makes
//! (create with host network and bind mounts, start, logs, inspect, stop, remove) exist in
//! 1.41 with the same shape. Only request paths are touched; a body is forwarded as it is.

use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

pub struct ApiVersionAdapter {
    path: PathBuf,
}

impl ApiVersionAdapter {
    /// Listens at `path`; connections go to the dockerd at `daemon`, speaking `to`
    /// (`b"1.41"`) where the client says `from` (`b"1.49"`). It runs on a thread and
    /// runtime of its own: testcontainers removes a container from a blocking `Drop`, which
    /// would starve an adapter on the test's own runtime.
    pub fn start(path: &Path, daemon: &Path, from: &'static [u8; 4], to: &'static [u8; 4]) -> Self {
        let _ = std::fs::remove_file(path);
        let listener =
            std::os::unix::net::UnixListener::bind(path).expect("bind the adapter socket");
        listener.set_nonblocking(true).expect("non-blocking");
        let daemon = daemon.to_owned();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the adapter's runtime");
            runtime.block_on(async move {
                let listener = UnixListener::from_std(listener).expect("listener");
                while let Ok((client, _)) = listener.accept().await {
                    let daemon = daemon.clone();
                    tokio::spawn(async move {
                        if let Ok(server) = UnixStream::connect(&daemon).await {
                            relay(client, server, from, to).await;
                        }
                    });
                }
            });
        });
        Self {
            path: path.to_owned(),
        }
    }

    /// `unix://…`, for DOCKER_HOST.
    pub fn url(&self) -> String {
        format!("unix://{}", self.path.display())
    }
}

impl Drop for ApiVersionAdapter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn relay(client: UnixStream, server: UnixStream, from: &[u8; 4], to: &[u8; 4]) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let pattern: Vec<u8> = [b" /v".as_slice(), from.as_slice(), b"/"].concat();
    let replacement: Vec<u8> = [b" /v".as_slice(), to.as_slice(), b"/"].concat();
    let upstream = async move {
        // A tail that could begin the pattern waits for the next read (so a path split
        // across two reads is still rewritten) — but never longer than a moment: a client
        // that sent a whole request waits for its answer.
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let read = tokio::time::timeout(
                std::time::Duration::from_millis(20),
                client_read.read(&mut buf),
            )
            .await;
            let held = match read {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    pending.extend_from_slice(&buf[..n]);
                    rewrite(&mut pending, &pattern, &replacement);
                    partial_prefix(&pending, &pattern)
                }
                Err(_) => 0,
            };
            let ready = pending.len() - held;
            if server_write.write_all(&pending[..ready]).await.is_err() {
                return;
            }
            pending.drain(..ready);
        }
        let _ = server_write.write_all(&pending).await;
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// How many bytes at the end of `bytes` are a proper prefix of `pattern`.
fn partial_prefix(bytes: &[u8], pattern: &[u8]) -> usize {
    (1..pattern.len())
        .rev()
        .find(|&k| bytes.len() >= k && bytes[bytes.len() - k..] == pattern[..k])
        .unwrap_or(0)
}

fn rewrite(bytes: &mut [u8], pattern: &[u8], replacement: &[u8]) {
    let mut i = 0;
    while i + pattern.len() <= bytes.len() {
        if &bytes[i..i + pattern.len()] == pattern {
            bytes[i..i + pattern.len()].copy_from_slice(replacement);
            i += pattern.len();
        } else {
            i += 1;
        }
    }
}

#[test]
fn only_a_possible_start_of_the_pattern_is_held_back() {
    assert_eq!(partial_prefix(b"HTTP/1.1\r\n\r\n", b" /v1.49/"), 0);
    assert_eq!(partial_prefix(b"GET /v1", b" /v1.49/"), 4);
    assert_eq!(partial_prefix(b"GET ", b" /v1.49/"), 1);
}

#[test]
fn request_paths_are_rewritten_in_place() {
    let mut request =
        b"POST /v1.49/containers/create HTTP/1.1\r\nHost: d\r\n\r\n{\"x\":\"/v1.49/\"}".to_vec();
    rewrite(&mut request, b" /v1.49/", b" /v1.41/");
    assert_eq!(
        request,
        b"POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\n\r\n{\"x\":\"/v1.49/\"}".to_vec()
    );
}
