//! Reading what a handler left of a request body before the response goes out.
//!
//! A handler that answers early — GitLab's `POST /jwt/auth` 404, a challenge, a fault — drops
//! the request body unread. Over HTTP/2 hyper then resets the stream while the client is still
//! sending, and a client such as curl may never see the answer. [`track`] hands the handler a
//! body whose remainder stays reachable; [`Unread::drain`] reads that remainder (at most
//! [`DRAIN_LIMIT`] bytes, for at most [`DRAIN_TIMEOUT`]) once the response is ready, so the
//! stream is complete before the response is sent. Larger or slower bodies are left alone: the
//! connection's ordinary handling (HTTP/1 closes it) applies.

use axum::body::Body;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// The most a handler's leftover body is read for.
pub const DRAIN_LIMIT: u64 = 64 * 1024;
/// How long reading a leftover body may take.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

type Shared = Arc<Mutex<Option<Body>>>;

/// The body handed to the handler: reads through to the shared original.
struct Tracked(Shared);

/// What stays behind to drain the body after the handler is done with it.
pub struct Unread(Shared);

/// Splits a request body into the one the handler reads and the handle that drains the rest.
pub fn track(body: Body) -> (Body, Unread) {
    let shared: Shared = Arc::new(Mutex::new(Some(body)));
    (Body::new(Tracked(shared.clone())), Unread(shared))
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .map(HttpBody::size_hint)
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Unread {
    /// Reads whatever the handler left, bounded by [`DRAIN_LIMIT`] and [`DRAIN_TIMEOUT`].
    pub async fn drain(self) {
        let body = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut body) = body else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        // A body announced larger than the limit is not read at all.
        if body.size_hint().lower() > DRAIN_LIMIT {
            return;
        }
        let read = async {
            let mut seen = 0u64;
            while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
                let Ok(frame) = frame else { return };
                if let Some(data) = frame.data_ref() {
                    seen += data.len() as u64;
                    if seen > DRAIN_LIMIT {
                        return;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, read).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn the_handler_reads_through_and_nothing_is_left() {
        let (body, unread) = track(Body::from("abc"));
        let bytes = body.collect().await.expect("reads").to_bytes();
        assert_eq!(&bytes[..], b"abc");
        unread.drain().await;
    }

    #[tokio::test]
    async fn a_dropped_body_is_drained_afterwards() {
        let (body, unread) = track(Body::from(vec![7u8; 1000]));
        drop(body);
        let shared = unread.0.clone();
        unread.drain().await;
        assert!(shared.lock().expect("lock").is_none());
    }
}
