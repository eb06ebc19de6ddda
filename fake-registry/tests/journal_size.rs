//! The journal's byte budget counts `Entry::approx_size`; this checks that the model matches
//! what the allocator really hands out for representative entries. Before the model counted
//! allocator blocks and tree nodes, a small GET's entry was counted at ~1/3 of its memory, so
//! the 64 MiB budget held ~190 MiB (docs/limits.md, the flood measurement).
//!
//! One test in its own binary: the counting allocator is process-wide, and no other test may
//! allocate while it measures.

use fake_registry::journal::{AuthRecord, Entry};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static BLOCK_BYTES: AtomicUsize = AtomicUsize::new(0);
static REQUESTED: AtomicUsize = AtomicUsize::new(0);

/// glibc's chunk for a request: `size + 8` rounded up to 16, at least 32.
fn chunk(size: usize) -> usize {
    (size + 8).div_ceil(16).max(2) * 16
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            BLOCK_BYTES.fetch_add(chunk(layout.size()), Ordering::Relaxed);
            REQUESTED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn blob_get() -> Entry {
    Entry {
        seq: 1,
        time: "2026-11-30T15:00:00.123Z".into(),
        duration_ms: 0.4,
        registry: "open".into(),
        host: "127.0.0.1:5000".into(),
        method: "GET".into(),
        path: "/v2/flood/blobs/sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
            .into(),
        query: None,
        request_headers: headers(&[("accept", "*/*"), ("user-agent", "regcompat-flood/0.1")]),
        auth: AuthRecord {
            scheme: "none".into(),
            ..AuthRecord::default()
        },
        form: BTreeMap::new(),
        status: 200,
        response_headers: headers(&[
            ("content-length", "1024"),
            ("content-type", "application/octet-stream"),
            (
                "docker-content-digest",
                "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
            ),
        ]),
        notes: Vec::new(),
        leak: None,
        fault: None,
    }
}

fn token_post() -> Entry {
    let mut e = blob_get();
    e.method = "POST".into();
    e.path = "/oauth2/token".into();
    e.request_headers = headers(&[
        ("content-type", "application/x-www-form-urlencoded"),
        ("content-length", "912"),
        ("user-agent", &"containerd/v2.0.3 ".repeat(4)),
    ]);
    e.form = headers(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", "[secret of identity]"),
        ("scope", "repository:base/run:pull"),
        ("service", "myregistry.azurecr.io"),
    ]);
    e.auth = AuthRecord {
        scheme: "none".into(),
        principal: Some("identity".into()),
        verdict: Some("ok".into()),
        ..AuthRecord::default()
    };
    e.notes = vec!["identity token used as refresh_token".into()];
    e
}

fn many_headers() -> Entry {
    let mut e = blob_get();
    let pairs: Vec<(String, String)> = (0..30)
        .map(|i| (format!("x-header-{i:02}"), "v".repeat(40 + i)))
        .collect();
    e.request_headers = pairs.into_iter().collect();
    e.query = Some("n=100&last=".to_string() + &"a".repeat(300));
    e
}

#[test]
fn approx_size_matches_what_the_allocator_hands_out() {
    for (name, entry) in [
        ("blob GET", blob_get()),
        ("token POST", token_post()),
        ("30 headers", many_headers()),
    ] {
        BLOCK_BYTES.store(0, Ordering::SeqCst);
        REQUESTED.store(0, Ordering::SeqCst);
        COUNTING.store(true, Ordering::SeqCst);
        // A clone allocates every string and node of the entry exactly once.
        let copy = entry.clone();
        COUNTING.store(false, Ordering::SeqCst);
        let measured = BLOCK_BYTES.load(Ordering::SeqCst) + std::mem::size_of::<(Entry, usize)>();
        let requested = REQUESTED.load(Ordering::SeqCst);
        let modelled = copy.approx_size();
        eprintln!(
            "{name}: modelled {modelled} B, allocator blocks + slot {measured} B, requested {requested} B"
        );
        // Never optimistic by more than 10 %, never more than 30 % pessimistic.
        assert!(
            modelled * 10 >= measured * 9,
            "{name}: the model ({modelled} B) undercounts the allocator ({measured} B)"
        );
        assert!(
            modelled * 10 <= measured * 13,
            "{name}: the model ({modelled} B) overcounts the allocator ({measured} B)"
        );
        drop(copy);
    }
}
