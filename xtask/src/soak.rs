//! `cargo xtask soak` and `cargo xtask flood`: long runs against a fake registry started in
//! this process on loopback, so the process's RSS (`VmRSS` of `/proc/self/status`) is the
//! registry's plus its clients'. Every loop is bounded by a request count and by time.
//!
//! - soak: N workers push (monolithic, POST+PUT and chunked uploads, then a manifest) and pull
//!   (HEAD/GET of blobs and manifests) for a duration, on the memory backend, the disk backend
//!   and the generic bearer token profile (token dance included); every acknowledged digest is
//!   read back at the end; RSS and p50/p99 of the first and the last tenth of the run are
//!   compared.
//! - flood: K keep-alive clients GET one seeded 1 KiB blob N times (journal on, default
//!   limits); p50 and RSS after the first window of requests and at the end are compared.
//!
//! The content pushed is random but drawn from a bounded, seeded universe (`POOL_BLOBS` blobs of
//! 1 B–1 MiB, `POOL_MANIFESTS` manifests over them): every push really uploads, but what the
//! registry stores stops growing once the pool is stored, so a growing RSS means a leak.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use bytes::Bytes;
use fake_registry::FakeRegistry;
use fake_registry::auth::{Directory, Grant, Principal, PrincipalKind};
use fake_registry::journal::{Journal, JournalLimits};
use fake_registry::profile::bearer::BearerOptions;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Distinct blobs the workers draw from.
const POOL_BLOBS: usize = 64;
/// Distinct manifests (1–3 layers of the pool each) the workers draw from.
const POOL_MANIFESTS: usize = 256;
/// Largest blob.
const MAX_BLOB: u64 = 1 << 20;
/// The auth backend's credentials (a soak principal, nothing else).
const SOAK_USER: &str = "soak";
const SOAK_SECRET: &str = "soak-S3cret";
/// A worker forgets its token every this many operations (the dance again).
const TOKEN_EVERY: u64 = 100;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

// ---------------------------------------------------------------------------------------------
// Command line

#[derive(clap::Args)]
pub struct SoakArgs {
    /// How long each backend is driven: `120s`, `2m`, `1h`, `500ms` or seconds.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Concurrent workers per backend.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// A backend's run also stops after this many requests.
    #[arg(long, default_value_t = 5_000_000)]
    pub max_requests: u64,
    /// Backends to run, comma-separated (default: memory,disk,auth).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub backend: Vec<Backend>,
    /// Seed of the blob contents and of the workers' choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Memory storage, open profile.
    Memory,
    /// Disk storage (`--storage` in a temporary directory), open profile.
    Disk,
    /// Memory storage behind the generic bearer token profile (challenge, token, retry).
    Auth,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Disk => "disk",
            Backend::Auth => "auth (bearer)",
        }
    }
}

#[derive(clap::Args)]
pub struct FloodArgs {
    /// Requests in all.
    #[arg(long, default_value_t = 1_000_000)]
    pub requests: u64,
    /// Concurrent keep-alive clients (one connection each).
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// p50 and RSS are taken after this many requests (p50 of the first WINDOW) and at the
    /// end (p50 of the last WINDOW).
    #[arg(long, default_value_t = 10_000)]
    pub window: u64,
    /// Give up (and fail) after this long.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The registry's journal bound in entries (default: `JournalLimits::DEFAULT`); 0 = off.
    #[arg(long, default_value_t = JournalLimits::DEFAULT.max_entries)]
    pub journal_entries: usize,
    /// The registry's journal bound in approximate bytes (default: `JournalLimits::DEFAULT`).
    #[arg(long, default_value_t = JournalLimits::DEFAULT.max_bytes)]
    pub journal_bytes: usize,
}

/// `120s`, `2m`, `1h`, `500ms`, `1.5m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 120s, 2m, 1h, 500ms)"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1000.0,
        "m" | "min" | "mins" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {s:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 7.0 * 86400.0 {
        return Err(format!("{s:?}: a duration between 1 ms and 7 days"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn run_soak(args: SoakArgs) -> Result<()> {
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    let backends = if args.backend.is_empty() {
        vec![Backend::Memory, Backend::Disk, Backend::Auth]
    } else {
        args.backend.clone()
    };
    let config = SoakConfig {
        duration: args.duration,
        workers: args.workers,
        max_requests: args.max_requests,
        seed: args.seed,
    };
    if backends.len() > 1 {
        return soak_in_children(&args, &backends);
    }
    let rt = runtime()?;
    let mut failed = Vec::new();
    for backend in backends {
        let summary = rt.block_on(soak_backend(backend, &config))?;
        summary.print();
        for f in summary.failures() {
            failed.push(format!("{}: {f}", backend.name()));
        }
    }
    if !failed.is_empty() {
        bail!("soak failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

/// Several backends: each in a process of its own (this binary again with one `--backend`),
/// so one backend's heap is not in the next one's RSS.
fn soak_in_children(args: &SoakArgs, backends: &[Backend]) -> Result<()> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let mut failed = Vec::new();
    for &backend in backends {
        let value = match backend {
            Backend::Memory => "memory",
            Backend::Disk => "disk",
            Backend::Auth => "auth",
        };
        let status = std::process::Command::new(&exe)
            .arg("soak")
            .arg(format!("--duration={}ms", args.duration.as_millis()))
            .arg(format!("--workers={}", args.workers))
            .arg(format!("--max-requests={}", args.max_requests))
            .arg(format!("--seed={}", args.seed))
            .arg(format!("--backend={value}"))
            .status()
            .with_context(|| format!("running the {value} soak"))?;
        if !status.success() {
            failed.push(backend.name());
        }
    }
    if !failed.is_empty() {
        bail!("soak failed on: {}", failed.join(", "));
    }
    Ok(())
}

pub fn run_flood(args: FloodArgs) -> Result<()> {
    if args.clients == 0 || args.window == 0 || args.requests < 2 * args.window {
        bail!("--clients and --window must be at least 1 and --requests at least 2 × --window");
    }
    let rt = runtime()?;
    let result = rt.block_on(flood(&args))?;
    result.print();
    let failures = result.failures();
    if !failures.is_empty() {
        bail!("flood failed: {}", failures.join("; "));
    }
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

// ---------------------------------------------------------------------------------------------
// Measurement helpers

/// The process's resident set (`VmRSS`), in bytes; 0 where `/proc` is missing.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn fmt_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else if us >= 1000 {
        format!("{:.2} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

fn ratio(end: u64, start: u64) -> f64 {
    if start == 0 {
        f64::INFINITY
    } else {
        end as f64 / start as f64
    }
}

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB as usize;

/// A log-linear histogram of microseconds (32 sub-buckets per power of two: ~3 % precision)
/// of fixed size, so measuring does not grow the RSS it measures.
#[derive(Clone)]
pub struct Hist {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }
}

impl Hist {
    fn index(v: u64) -> usize {
        if v < SUB {
            v as usize
        } else {
            let e = 63 - v.leading_zeros();
            let shift = e - SUB_BITS;
            ((u64::from(e - SUB_BITS) + 1) * SUB + (v >> shift) - SUB) as usize
        }
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            i
        } else {
            let k = i / SUB;
            let m = i % SUB + SUB;
            let shift = k - 1;
            (m << shift) + ((1u64 << shift) >> 1)
        }
    }

    pub fn record(&mut self, us: u64) {
        self.counts[Self::index(us)] += 1;
        self.total += 1;
    }

    pub fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0 < q ≤ 1) in µs; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let target = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return Self::value(i);
            }
        }
        0
    }
}

/// splitmix64: the seeded choices and blob contents (no dependency for a few random bytes).
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5EED_5EED_5EED_5EED)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

// ---------------------------------------------------------------------------------------------
// The soak

pub struct SoakConfig {
    pub duration: Duration,
    pub workers: usize,
    pub max_requests: u64,
    pub seed: u64,
}

struct Blob {
    data: Bytes,
    digest: String,
}

struct ManifestDoc {
    body: Bytes,
    digest: String,
    layers: Vec<usize>,
}

/// The bounded universe of content the workers push.
struct Pool {
    config: Blob,
    blobs: Vec<Blob>,
    manifests: Vec<ManifestDoc>,
}

impl Pool {
    fn generate(seed: u64) -> Pool {
        let mut rng = Rng::new(seed);
        let blobs: Vec<Blob> = (0..POOL_BLOBS)
            .map(|_| {
                let size = 1 + rng.below(MAX_BLOB) as usize;
                let mut data = vec![0u8; size];
                rng.fill(&mut data);
                let digest = sha256(&data);
                Blob {
                    data: data.into(),
                    digest,
                }
            })
            .collect();
        let config = Blob {
            data: Bytes::from_static(b"{}"),
            digest: sha256(b"{}"),
        };
        let manifests = (0..POOL_MANIFESTS)
            .map(|i| {
                let n = 1 + rng.below(3) as usize;
                let mut layers: Vec<usize> = Vec::new();
                while layers.len() < n {
                    let l = rng.below(POOL_BLOBS as u64) as usize;
                    if !layers.contains(&l) {
                        layers.push(l);
                    }
                }
                let doc = serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_EMPTY, "digest": config.digest, "size": 2},
                    "layers": layers.iter().map(|&l| serde_json::json!({
                        "mediaType": OCI_LAYER,
                        "digest": blobs[l].digest,
                        "size": blobs[l].data.len(),
                    })).collect::<Vec<_>>(),
                    "annotations": {"org.regcompat.soak": i.to_string()},
                });
                let body = serde_json::to_vec(&doc).unwrap_or_default();
                ManifestDoc {
                    digest: sha256(&body),
                    body: body.into(),
                    layers,
                }
            })
            .collect();
        Pool {
            config,
            blobs,
            manifests,
        }
    }
}

struct Shared {
    start: Instant,
    duration: Duration,
    max_requests: u64,
    requests: AtomicU64,
    errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Shared {
    fn error(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut v) = self.first_errors.lock()
            && v.len() < 10
        {
            v.push(msg);
        }
    }

    /// Which tenth of the planned duration `t` falls in.
    fn decile(&self, t: Instant) -> usize {
        let f = t.duration_since(self.start).as_secs_f64() / self.duration.as_secs_f64();
        ((f * 10.0) as usize).min(9)
    }

    fn running(&self) -> bool {
        self.start.elapsed() < self.duration
            && self.requests.load(Ordering::Relaxed) < self.max_requests
    }
}

type Answer = std::result::Result<(StatusCode, HeaderMap, Bytes), String>;

struct Worker {
    id: usize,
    repo: String,
    base: String,
    http: reqwest::Client,
    rng: Rng,
    pool: Arc<Pool>,
    shared: Arc<Shared>,
    auth: bool,
    token: Option<String>,
    /// Latencies per tenth of the run; not recorded while verifying.
    hists: Vec<Hist>,
    measuring: bool,
    blobs: BTreeSet<usize>,
    manifests: BTreeSet<usize>,
}

impl Worker {
    fn url(&self, path_or_location: &str) -> String {
        if path_or_location.starts_with('/') {
            format!("{}{}", self.base, path_or_location)
        } else {
            path_or_location.to_owned()
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder, authed: bool) -> Answer {
        let req = match (&self.token, authed) {
            (Some(t), true) => req.bearer_auth(t),
            _ => req,
        };
        let t0 = Instant::now();
        if self.measuring {
            self.shared.requests.fetch_add(1, Ordering::Relaxed);
        }
        let out = match req.send().await {
            Ok(r) => {
                let status = r.status();
                let headers = r.headers().clone();
                match r.bytes().await {
                    Ok(b) => Ok((status, headers, b)),
                    Err(e) => Err(format!("reading the body: {e}")),
                }
            }
            Err(e) => Err(format!("{e}")),
        };
        if self.measuring {
            let d = self.shared.decile(t0);
            self.hists[d].record(t0.elapsed().as_micros() as u64);
        }
        out
    }

    /// Sends `req` and expects `want`.
    async fn call(
        &mut self,
        what: &str,
        req: reqwest::RequestBuilder,
        authed: bool,
        want: u16,
    ) -> Option<(HeaderMap, Bytes)> {
        let got = self.send(req, authed).await;
        self.expect(what, got, want)
    }

    /// The answer if its status is `want`; otherwise an unexpected error, counted.
    fn expect(&self, what: &str, got: Answer, want: u16) -> Option<(HeaderMap, Bytes)> {
        match got {
            Ok((s, h, b)) if s.as_u16() == want => Some((h, b)),
            Ok((s, _, b)) => {
                let body = String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned();
                self.shared.error(format!(
                    "worker {}: {what}: {s} (expected {want}): {body}",
                    self.id
                ));
                None
            }
            Err(e) => {
                self.shared
                    .error(format!("worker {}: {what}: {e}", self.id));
                None
            }
        }
    }

    fn location(&self, what: &str, h: &HeaderMap) -> Option<String> {
        let loc = h.get("location").and_then(|v| v.to_str().ok());
        if loc.is_none() {
            self.shared
                .error(format!("worker {}: {what}: no Location", self.id));
        }
        loc.map(|l| self.url(l))
    }

    /// The token dance: an unauthenticated request (the expected 401 challenge), then the
    /// realm with Basic credentials for the challenge's service and this repository.
    async fn dance(&mut self) -> bool {
        let probe = self
            .http
            .get(self.url(&format!("/v2/{}/tags/list", self.repo)));
        let Some((h, _)) = self.call("challenge probe", probe, false, 401).await else {
            return false;
        };
        let challenge = h
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let (Some(realm), Some(service)) = (
            challenge_param(&challenge, "realm"),
            challenge_param(&challenge, "service"),
        ) else {
            self.shared.error(format!(
                "worker {}: challenge without realm/service: {challenge:?}",
                self.id
            ));
            return false;
        };
        let scope = format!("repository:{}:pull,push", self.repo);
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{SOAK_USER}:{SOAK_SECRET}"));
        let req = self
            .http
            .get(realm)
            .query(&[("service", service.as_str()), ("scope", scope.as_str())])
            .header("authorization", format!("Basic {basic}"));
        let Some((_, body)) = self.call("token", req, false, 200).await else {
            return false;
        };
        let token = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["token"].as_str().map(str::to_owned));
        if token.is_none() {
            self.shared
                .error(format!("worker {}: token answer without a token", self.id));
        }
        self.token = token;
        self.token.is_some()
    }

    /// Uploads blob `idx` (`None`: the config) by `mode`: 0 monolithic POST, 1 POST + PUT,
    /// 2 chunked (POST, 1–4 PATCHes, PUT).
    async fn push_blob(&mut self, idx: Option<usize>, mode: u64) -> bool {
        let pool = self.pool.clone();
        let blob = idx.map_or(&pool.config, |i| &pool.blobs[i]);
        let start_url = self.url(&format!("/v2/{}/blobs/uploads/", self.repo));
        let done = match mode {
            0 => {
                let req = self
                    .http
                    .post(&start_url)
                    .query(&[("digest", blob.digest.as_str())])
                    .header("content-type", "application/octet-stream")
                    .body(blob.data.clone());
                self.call("monolithic upload", req, true, 201).await
            }
            _ => {
                let req = self.http.post(&start_url);
                let Some((h, _)) = self.call("upload start", req, true, 202).await else {
                    return false;
                };
                let Some(mut loc) = self.location("upload start", &h) else {
                    return false;
                };
                let mut last = Bytes::new();
                if mode == 1 {
                    last = blob.data.clone();
                } else {
                    let len = blob.data.len();
                    let pieces = 1 + self.rng.below(4) as usize;
                    let mut at = 0;
                    for p in 0..pieces {
                        let end = if p + 1 == pieces {
                            len
                        } else {
                            (at + 1 + self.rng.below((len - at) as u64) as usize).min(len)
                        };
                        if end <= at {
                            continue;
                        }
                        let req = self
                            .http
                            .patch(&loc)
                            .header("content-type", "application/octet-stream")
                            .header("content-range", format!("{at}-{}", end - 1))
                            .body(blob.data.slice(at..end));
                        let Some((h, _)) = self.call("chunk", req, true, 202).await else {
                            return false;
                        };
                        let Some(next) = self.location("chunk", &h) else {
                            return false;
                        };
                        loc = next;
                        at = end;
                    }
                }
                let req = self
                    .http
                    .put(&loc)
                    .query(&[("digest", blob.digest.as_str())])
                    .header("content-type", "application/octet-stream")
                    .body(last);
                self.call("upload close", req, true, 201).await
            }
        };
        let Some((h, _)) = done else {
            return false;
        };
        let said = h.get("docker-content-digest").and_then(|v| v.to_str().ok());
        if said != Some(blob.digest.as_str()) {
            self.shared.error(format!(
                "worker {}: upload of {} answered digest {said:?}",
                self.id, blob.digest
            ));
            return false;
        }
        if let Some(i) = idx {
            self.blobs.insert(i);
        }
        true
    }

    async fn push_image(&mut self, m: usize) {
        if !self.push_blob(None, 0).await {
            return;
        }
        let layers = self.pool.manifests[m].layers.clone();
        for l in layers {
            let mode = self.rng.below(3);
            if !self.push_blob(Some(l), mode).await {
                return;
            }
        }
        let pool = self.pool.clone();
        let doc = &pool.manifests[m];
        let req = self
            .http
            .put(self.url(&format!("/v2/{}/manifests/m{m}", self.repo)))
            .header("content-type", OCI_MANIFEST)
            .body(doc.body.clone());
        let Some((h, _)) = self.call("manifest put", req, true, 201).await else {
            return;
        };
        let said = h.get("docker-content-digest").and_then(|v| v.to_str().ok());
        if said != Some(doc.digest.as_str()) {
            self.shared.error(format!(
                "worker {}: manifest m{m} answered digest {said:?}, not {}",
                self.id, doc.digest
            ));
            return;
        }
        self.manifests.insert(m);
    }

    fn pick(&mut self, set: &BTreeSet<usize>) -> Option<usize> {
        if set.is_empty() {
            return None;
        }
        let n = self.rng.below(set.len() as u64) as usize;
        set.iter().nth(n).copied()
    }

    /// One read of something acknowledged: HEAD or GET of a blob, HEAD of a manifest by tag,
    /// GET of a manifest by digest. Returns whether it was right.
    async fn pull(&mut self, kind: u64) -> bool {
        let pool = self.pool.clone();
        let blobs = self.blobs.clone();
        let manifests = self.manifests.clone();
        match kind {
            0 | 1 => {
                let Some(i) = self.pick(&blobs) else {
                    return true;
                };
                let b = &pool.blobs[i];
                let url = self.url(&format!("/v2/{}/blobs/{}", self.repo, b.digest));
                if kind == 0 {
                    let req = self.http.head(url);
                    let Some((h, _)) = self.call("blob HEAD", req, true, 200).await else {
                        return false;
                    };
                    let len = h.get("content-length").and_then(|v| v.to_str().ok());
                    if len != Some(b.data.len().to_string().as_str()) {
                        self.shared.error(format!(
                            "worker {}: HEAD {} says length {len:?}, not {}",
                            self.id,
                            b.digest,
                            b.data.len()
                        ));
                        return false;
                    }
                    true
                } else {
                    let req = self.http.get(url);
                    let Some((_, body)) = self.call("blob GET", req, true, 200).await else {
                        return false;
                    };
                    if body != b.data {
                        self.shared.error(format!(
                            "worker {}: GET {} returned other content ({} bytes)",
                            self.id,
                            b.digest,
                            body.len()
                        ));
                        return false;
                    }
                    true
                }
            }
            _ => {
                let Some(m) = self.pick(&manifests) else {
                    return true;
                };
                let doc = &pool.manifests[m];
                if kind == 2 {
                    let url = self.url(&format!("/v2/{}/manifests/m{m}", self.repo));
                    let req = self.http.head(url).header("accept", OCI_MANIFEST);
                    let Some((h, _)) = self.call("manifest HEAD", req, true, 200).await else {
                        return false;
                    };
                    let said = h.get("docker-content-digest").and_then(|v| v.to_str().ok());
                    if said != Some(doc.digest.as_str()) {
                        self.shared.error(format!(
                            "worker {}: tag m{m} resolves to {said:?}, not {}",
                            self.id, doc.digest
                        ));
                        return false;
                    }
                    true
                } else {
                    let url = self.url(&format!("/v2/{}/manifests/{}", self.repo, doc.digest));
                    let req = self.http.get(url).header("accept", OCI_MANIFEST);
                    let Some((_, body)) = self.call("manifest GET", req, true, 200).await else {
                        return false;
                    };
                    if body != doc.body {
                        self.shared.error(format!(
                            "worker {}: manifest {} returned other content",
                            self.id, doc.digest
                        ));
                        return false;
                    }
                    true
                }
            }
        }
    }

    async fn run(&mut self) {
        let mut ops: u64 = 0;
        while self.shared.running() {
            if self.auth && (self.token.is_none() || ops.is_multiple_of(TOKEN_EVERY)) {
                self.token = None;
                self.dance().await;
            }
            if self.manifests.is_empty() || self.rng.below(10) < 4 {
                let m = self.rng.below(POOL_MANIFESTS as u64) as usize;
                self.push_image(m).await;
            } else {
                let kind = self.rng.below(4);
                self.pull(kind).await;
            }
            ops += 1;
        }
    }

    /// Reads back everything this worker saw acknowledged (not measured, not counted as load):
    /// returns (readable, unreadable).
    async fn verify(&mut self) -> (u64, u64) {
        self.measuring = false;
        // Errors here are unreadable digests, not load errors: count them apart.
        let before = self.shared.errors.load(Ordering::Relaxed);
        if self.auth {
            self.dance().await;
        }
        let mut ok = 0;
        let mut bad = 0;
        let pool = self.pool.clone();
        let blobs: Vec<usize> = self.blobs.iter().copied().collect();
        for i in blobs {
            let b = &pool.blobs[i];
            let url = self.url(&format!("/v2/{}/blobs/{}", self.repo, b.digest));
            let good = match self.send(self.http.get(url), true).await {
                Ok((s, _, body)) => s == StatusCode::OK && body == b.data,
                Err(_) => false,
            };
            if good {
                ok += 1;
            } else {
                bad += 1;
                self.shared.error(format!(
                    "worker {}: acknowledged blob {} unreadable or wrong",
                    self.id, b.digest
                ));
            }
        }
        let manifests: Vec<usize> = self.manifests.iter().copied().collect();
        for m in manifests {
            let doc = &pool.manifests[m];
            let by_digest = self.url(&format!("/v2/{}/manifests/{}", self.repo, doc.digest));
            let by_tag = self.url(&format!("/v2/{}/manifests/m{m}", self.repo));
            let a = self
                .send(
                    self.http.get(by_digest).header("accept", OCI_MANIFEST),
                    true,
                )
                .await;
            let b = self
                .send(self.http.get(by_tag).header("accept", OCI_MANIFEST), true)
                .await;
            let good = matches!(&a, Ok((s, _, body)) if *s == StatusCode::OK && *body == doc.body)
                && matches!(&b, Ok((s, _, body)) if *s == StatusCode::OK && *body == doc.body);
            if good {
                ok += 1;
            } else {
                bad += 1;
                self.shared.error(format!(
                    "worker {}: acknowledged manifest {} (tag m{m}) unreadable or wrong",
                    self.id, doc.digest
                ));
            }
        }
        // Keep the load's error count as it was; unreadable digests are reported apart.
        self.shared.errors.store(before, Ordering::Relaxed);
        (ok, bad)
    }
}

/// `key="value"` of a `WWW-Authenticate` challenge.
fn challenge_param(challenge: &str, key: &str) -> Option<String> {
    let needle = format!("{key}=\"");
    let at = challenge.find(&needle)? + needle.len();
    let rest = &challenge[at..];
    Some(rest[..rest.find('"')?].to_owned())
}

fn soak_directory() -> Directory {
    Directory {
        principals: vec![Principal {
            name: "soak-bot".into(),
            kind: PrincipalKind::User,
            username: Some(SOAK_USER.into()),
            secret: SOAK_SECRET.into(),
            grants: vec![Grant {
                repositories: "soak/**".into(),
                actions: vec!["pull".into(), "push".into()],
            }],
            effective_from: None,
            expires_at: None,
        }],
        anonymous: Vec::new(),
    }
}

/// What one backend's soak measured.
pub struct SoakSummary {
    pub backend: Backend,
    pub requests: u64,
    pub elapsed: Duration,
    pub errors: u64,
    pub first_errors: Vec<String>,
    pub verified: u64,
    pub unreadable: u64,
    pub rss_start: u64,
    pub rss_end: u64,
    /// (p50, p99) in µs of the first and the last tenth with requests.
    pub first: (u64, u64),
    pub last: (u64, u64),
}

impl SoakSummary {
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.errors > 0 {
            out.push(format!("{} unexpected errors", self.errors));
        }
        if self.unreadable > 0 {
            out.push(format!(
                "{} acknowledged digests unreadable",
                self.unreadable
            ));
        }
        if ratio(self.rss_end, self.rss_start) > 2.0 {
            out.push(format!(
                "RSS grew from {} to {} (more than 2×)",
                mib(self.rss_start),
                mib(self.rss_end)
            ));
        }
        if ratio(self.last.0, self.first.0) > 2.0 {
            out.push(format!(
                "p50 grew from {} to {} (more than 2×)",
                fmt_us(self.first.0),
                fmt_us(self.last.0)
            ));
        }
        out
    }

    pub fn print(&self) {
        let secs = self.elapsed.as_secs_f64();
        println!(
            "soak {}: {} requests in {:.1} s ({:.0}/s), {} unexpected errors, {} acknowledged digests read back, {} unreadable",
            self.backend.name(),
            self.requests,
            secs,
            self.requests as f64 / secs.max(1e-9),
            self.errors,
            self.verified,
            self.unreadable
        );
        println!(
            "  RSS      start (after 10%) {}, end {} (×{:.2})",
            mib(self.rss_start),
            mib(self.rss_end),
            ratio(self.rss_end, self.rss_start)
        );
        println!(
            "  latency  first 10%: p50 {} p99 {}; last 10%: p50 {} p99 {} (p50 ×{:.2})",
            fmt_us(self.first.0),
            fmt_us(self.first.1),
            fmt_us(self.last.0),
            fmt_us(self.last.1),
            ratio(self.last.0, self.first.0)
        );
        for e in &self.first_errors {
            println!("  error: {e}");
        }
    }
}

/// One backend: start the registry, run the workers for the duration (or the request cap),
/// read everything acknowledged back.
pub async fn soak_backend(backend: Backend, config: &SoakConfig) -> Result<SoakSummary> {
    let pool = Arc::new(Pool::generate(config.seed));
    let dir = tempfile::tempdir().context("creating the storage directory")?;
    let mut builder = FakeRegistry::builder().name("soak");
    match backend {
        Backend::Memory => {}
        Backend::Disk => builder = builder.storage_dir(dir.path()),
        Backend::Auth => {
            builder = builder.bearer(BearerOptions::new("soak.test"), soak_directory())
        }
    }
    let registry = builder.start().await.context("starting the registry")?;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        duration: config.duration,
        max_requests: config.max_requests,
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_errors: Mutex::new(Vec::new()),
    });
    let rss_start = Arc::new(AtomicU64::new(0));
    let monitor = {
        let rss_start = rss_start.clone();
        let at = shared.start + config.duration / 10;
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            rss_start.store(rss_bytes(), Ordering::Relaxed);
        })
    };
    let mut tasks = Vec::new();
    for id in 0..config.workers {
        let mut w = Worker {
            id,
            repo: format!("soak/w{id}"),
            base: registry.url(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .context("building an HTTP client")?,
            rng: Rng::new(config.seed.wrapping_mul(1000).wrapping_add(id as u64 + 1)),
            pool: pool.clone(),
            shared: shared.clone(),
            auth: backend == Backend::Auth,
            token: None,
            hists: vec![Hist::default(); 10],
            measuring: true,
            blobs: BTreeSet::new(),
            manifests: BTreeSet::new(),
        };
        tasks.push(tokio::spawn(async move {
            w.run().await;
            w
        }));
    }
    let mut workers = Vec::new();
    for t in tasks {
        workers.push(t.await.context("a worker panicked")?);
    }
    let elapsed = shared.start.elapsed();
    let rss_end = rss_bytes();
    if !monitor.is_finished() {
        monitor.abort();
    }
    let rss_start = match rss_start.load(Ordering::Relaxed) {
        0 => rss_end,
        v => v,
    };
    let errors = shared.errors.load(Ordering::Relaxed);
    let requests = shared.requests.load(Ordering::Relaxed);
    let mut hists = vec![Hist::default(); 10];
    for w in &workers {
        for (h, wh) in hists.iter_mut().zip(&w.hists) {
            h.merge(wh);
        }
    }
    let verify: Vec<_> = workers
        .into_iter()
        .map(|mut w| tokio::spawn(async move { w.verify().await }))
        .collect();
    let (mut verified, mut unreadable) = (0, 0);
    for v in verify {
        let (ok, bad) = v.await.context("a verifier panicked")?;
        verified += ok;
        unreadable += bad;
    }
    let first_errors = shared
        .first_errors
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    registry.shutdown().await;
    drop(dir);
    let filled: Vec<&Hist> = hists.iter().filter(|h| h.count() > 0).collect();
    let pq = |h: Option<&&Hist>| h.map_or((0, 0), |h| (h.quantile(0.5), h.quantile(0.99)));
    Ok(SoakSummary {
        backend,
        requests,
        elapsed,
        errors,
        first_errors,
        verified,
        unreadable,
        rss_start,
        rss_end,
        first: pq(filled.first()),
        last: pq(filled.last()),
    })
}

// ---------------------------------------------------------------------------------------------
// The flood

pub struct FloodResult {
    pub requests: u64,
    pub window: u64,
    pub clients: usize,
    pub elapsed: Duration,
    pub errors: u64,
    pub first_error: Option<String>,
    pub p50_start: u64,
    pub p50_end: u64,
    pub p99_start: u64,
    pub p99_end: u64,
    pub rss_start: u64,
    pub rss_end: u64,
    pub journal_start: (usize, u64),
    pub journal_end: (usize, u64),
    /// The journal's own size estimate of its entries at the end (`Entry::approx_size`).
    pub journal_bytes: usize,
    pub journal_limits: (usize, usize),
}

impl FloodResult {
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.errors > 0 {
            out.push(format!(
                "{} requests failed (first: {})",
                self.errors,
                self.first_error.as_deref().unwrap_or("?")
            ));
        }
        if ratio(self.p50_end, self.p50_start) > 2.0 {
            out.push(format!(
                "p50 {} → {} (more than 2×)",
                fmt_us(self.p50_start),
                fmt_us(self.p50_end)
            ));
        }
        if ratio(self.rss_end, self.rss_start) > 2.0 {
            out.push(format!(
                "RSS {} → {} (more than 2×)",
                mib(self.rss_start),
                mib(self.rss_end)
            ));
        }
        out
    }

    pub fn print(&self) {
        let secs = self.elapsed.as_secs_f64();
        println!(
            "flood: {} GETs of a 1 KiB blob by {} keep-alive clients in {:.1} s ({:.0}/s), {} errors",
            self.requests,
            self.clients,
            secs,
            self.requests as f64 / secs.max(1e-9),
            self.errors
        );
        println!(
            "  after {:>9} requests: p50 {} (p99 {}), RSS {}, journal {} entries ({} dropped)",
            self.window,
            fmt_us(self.p50_start),
            fmt_us(self.p99_start),
            mib(self.rss_start),
            self.journal_start.0,
            self.journal_start.1
        );
        println!(
            "  after {:>9} requests: p50 {} (p99 {}), RSS {}, journal {} entries ({} dropped)",
            self.requests,
            fmt_us(self.p50_end),
            fmt_us(self.p99_end),
            mib(self.rss_end),
            self.journal_end.0,
            self.journal_end.1
        );
        println!(
            "  journal limits {} entries / {}; at the end its entries' approximate size is {}",
            self.journal_limits.0,
            mib(self.journal_limits.1 as u64),
            mib(self.journal_bytes as u64)
        );
        println!(
            "  ratio end/start: p50 ×{:.2}, RSS ×{:.2} (limit 2)",
            ratio(self.p50_end, self.p50_start),
            ratio(self.rss_end, self.rss_start)
        );
    }
}

/// RSS and the journal's (entries, dropped) at one moment.
type Sample = (u64, (usize, u64));

fn journal_state(j: &Journal) -> (usize, u64) {
    (j.len(), j.dropped())
}

pub async fn flood(args: &FloodArgs) -> Result<FloodResult> {
    let registry = FakeRegistry::builder()
        .name("flood")
        .journal_limits(JournalLimits {
            max_entries: args.journal_entries,
            max_bytes: args.journal_bytes,
        })
        .start()
        .await
        .context("starting the registry")?;
    let mut blob = vec![0u8; 1024];
    Rng::new(7).fill(&mut blob);
    let digest = sha256(&blob);
    let seed = reqwest::Client::new()
        .post(format!("{}/v2/flood/blob/blobs/uploads/", registry.url()))
        .query(&[("digest", digest.as_str())])
        .header("content-type", "application/octet-stream")
        .body(blob.clone())
        .send()
        .await
        .context("seeding the blob")?;
    if seed.status() != StatusCode::CREATED {
        bail!("seeding the blob: {}", seed.status());
    }
    let url = format!("{}/v2/flood/blob/blobs/{digest}", registry.url());
    let blob = Bytes::from(blob);
    let deadline = Instant::now() + args.timeout;
    let next = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let at_window: Arc<Mutex<Option<Sample>>> = Arc::new(Mutex::new(None));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .http1_only()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building an HTTP client")?;
        let (url, blob, next, completed, errors, first_error, at_window) = (
            url.clone(),
            blob.clone(),
            next.clone(),
            completed.clone(),
            errors.clone(),
            first_error.clone(),
            at_window.clone(),
        );
        let journal = registry.journal().clone();
        let (total, window) = (args.requests, args.window);
        tasks.push(tokio::spawn(async move {
            let mut early = Hist::default();
            let mut late = Hist::default();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= total || Instant::now() >= deadline {
                    break;
                }
                let t0 = Instant::now();
                let ok = match http.get(&url).send().await {
                    Ok(r) if r.status() == StatusCode::OK => match r.bytes().await {
                        Ok(b) if b == blob => Ok(()),
                        Ok(b) => Err(format!("wrong content ({} bytes)", b.len())),
                        Err(e) => Err(format!("reading the body: {e}")),
                    },
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(e.to_string()),
                };
                let us = t0.elapsed().as_micros() as u64;
                if let Err(e) = ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut f) = first_error.lock()
                        && f.is_none()
                    {
                        *f = Some(e);
                    }
                }
                if seq < window {
                    early.record(us);
                }
                if seq >= total - window {
                    late.record(us);
                }
                if completed.fetch_add(1, Ordering::Relaxed) + 1 == window
                    && let Ok(mut w) = at_window.lock()
                {
                    *w = Some((rss_bytes(), journal_state(&journal)));
                }
            }
            (early, late)
        }));
    }
    let mut early = Hist::default();
    let mut late = Hist::default();
    for t in tasks {
        let (e, l) = t.await.context("a flood client panicked")?;
        early.merge(&e);
        late.merge(&l);
    }
    let elapsed = start.elapsed();
    let rss_end = rss_bytes();
    let journal_end = journal_state(registry.journal());
    // After RSS was sampled: a copy of the entries, to size them as the journal does.
    let journal_bytes: usize = registry
        .journal()
        .all()
        .iter()
        .map(|e| e.approx_size())
        .sum();
    let done = completed.load(Ordering::Relaxed);
    registry.shutdown().await;
    if done < args.requests {
        bail!(
            "only {done} of {} requests done within {:?}",
            args.requests,
            args.timeout
        );
    }
    let (rss_start, journal_start) = at_window
        .lock()
        .ok()
        .and_then(|w| *w)
        .unwrap_or((rss_end, journal_end));
    let first_error = first_error.lock().ok().and_then(|f| f.clone());
    Ok(FloodResult {
        requests: args.requests,
        window: args.window,
        clients: args.clients,
        elapsed,
        errors: errors.load(Ordering::Relaxed),
        first_error,
        p50_start: early.quantile(0.5),
        p50_end: late.quantile(0.5),
        p99_start: early.quantile(0.99),
        p99_end: late.quantile(0.99),
        rss_start,
        rss_end,
        journal_start,
        journal_end,
        journal_bytes,
        journal_limits: (args.journal_entries, args.journal_bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3 fortnights").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn histogram_quantiles_within_a_few_percent() {
        let mut h = Hist::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 / 50_000.0 - 1.0).abs() < 0.04, "{p50}");
        assert!((p99 / 99_000.0 - 1.0).abs() < 0.04, "{p99}");
        for v in [0, 1, 31, 32, 33, 63, 64, 1000, 1 << 40] {
            let i = Hist::index(v);
            assert!(i < BUCKETS);
            let back = Hist::value(i) as f64;
            assert!(
                v < 64 || (back / v as f64 - 1.0).abs() < 0.04,
                "{v} → {back}"
            );
        }
    }

    #[test]
    fn challenge_params() {
        let c = r#"Bearer realm="http://127.0.0.1:1/token",service="soak.test",scope="repository:a:pull""#;
        assert_eq!(
            challenge_param(c, "realm").as_deref(),
            Some("http://127.0.0.1:1/token")
        );
        assert_eq!(challenge_param(c, "service").as_deref(), Some("soak.test"));
        assert_eq!(challenge_param(c, "error"), None);
    }

    /// ~3 s of the soak on the memory backend: no unexpected error, everything acknowledged
    /// readable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn short_soak_on_memory_is_clean() {
        let config = SoakConfig {
            duration: Duration::from_secs(3),
            workers: 4,
            max_requests: 100_000,
            seed: 3,
        };
        let s = soak_backend(Backend::Memory, &config).await.expect("soak");
        s.print();
        assert_eq!(s.errors, 0, "{:?}", s.first_errors);
        assert_eq!(s.unreadable, 0);
        assert!(s.requests > 0 && s.verified > 0);
    }

    /// The auth profile's token dance, briefly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn short_soak_with_tokens_is_clean() {
        let config = SoakConfig {
            duration: Duration::from_secs(1),
            workers: 2,
            max_requests: 20_000,
            seed: 4,
        };
        let s = soak_backend(Backend::Auth, &config).await.expect("soak");
        assert_eq!(s.errors, 0, "{:?}", s.first_errors);
        assert_eq!(s.unreadable, 0);
        assert!(s.verified > 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_flood_counts_every_request() {
        let args = FloodArgs {
            requests: 2_000,
            clients: 4,
            window: 500,
            timeout: Duration::from_secs(60),
            journal_entries: 1000,
            journal_bytes: JournalLimits::DEFAULT.max_bytes,
        };
        let r = flood(&args).await.expect("flood");
        assert_eq!(r.errors, 0, "{:?}", r.first_error);
        assert!(r.p50_start > 0 && r.p50_end > 0 && r.rss_start > 0);
        // The journal stayed bounded: 1000 entries kept, the rest dropped and counted.
        assert_eq!(r.journal_end.0, 1000);
        assert!(r.journal_end.1 >= 1000);
    }
}
