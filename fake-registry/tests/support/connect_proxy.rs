//! A tiny HTTP CONNECT proxy for tests: lets an HTTP client that cannot override DNS (such
//! as `oci-client`) reach fleet hostnames like `myregistry.azurecr.io` on their loopback
//! addresses. It only ever dials the addresses it was given (all loopback, checked), so a
//! test can never reach the outside network through it; an unknown host gets 502.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEAD: usize = 8 * 1024;

pub struct ConnectProxy {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectProxy {
    /// `routes`: `host:port` as clients dial it → the loopback address to connect to.
    pub async fn start(routes: HashMap<String, SocketAddr>) -> Self {
        for (name, addr) in &routes {
            assert!(
                addr.ip().is_loopback(),
                "route {name} → {addr} is not loopback"
            );
        }
        let routes = Arc::new(routes);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let routes = routes.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(120), tunnel(stream, &routes))
                        .await;
                });
            }
        });
        Self { addr, task }
    }

    /// `http://127.0.0.1:PORT`, for `https_proxy`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tunnel(
    mut client: TcpStream,
    routes: &HashMap<String, SocketAddr>,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD || client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let upstream = match (method, routes.get(target)) {
        ("CONNECT", Some(addr)) => TcpStream::connect(addr).await.ok(),
        _ => None,
    };
    let Some(mut upstream) = upstream else {
        client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
            .await?;
        return Ok(());
    };
    client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
