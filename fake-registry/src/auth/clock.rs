//! A clock the tests can move: token expiry, ECR's 12-hour credentials and ACR's permission
//! propagation are tested without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
enum Inner {
    /// System time plus an offset (seconds) that `advance` grows.
    System(AtomicI64),
    /// A fixed time that only `advance` moves.
    Manual(AtomicI64),
}

impl Clock {
    pub fn system() -> Self {
        Self {
            inner: Arc::new(Inner::System(AtomicI64::new(0))),
        }
    }

    pub fn manual(unix_seconds: i64) -> Self {
        Self {
            inner: Arc::new(Inner::Manual(AtomicI64::new(unix_seconds))),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        match &*self.inner {
            Inner::System(offset) => system_now() + offset.load(Ordering::SeqCst),
            Inner::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Moves time forward (or back, with a negative value) for everyone sharing this clock.
    pub fn advance(&self, seconds: i64) {
        match &*self.inner {
            Inner::System(v) | Inner::Manual(v) => {
                v.fetch_add(seconds, Ordering::SeqCst);
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_is_shared_by_clones() {
        let c = Clock::system();
        let before = c.now();
        let other = c.clone();
        other.advance(3600);
        assert!(c.now() >= before + 3600);
        let m = Clock::manual(5);
        m.advance(-2);
        assert_eq!(m.now(), 3);
    }
}
