//! The request journal: every exchange in order, with who presented what — by principal
//! name, never by secret. It is the evidence behind every verdict, so redaction happens when
//! an entry is *recorded*: nothing secret is ever stored, exported or printed.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

/// Request headers worth keeping (others are noise); `authorization` is summarised, never kept.
const REQUEST_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "content-length",
    "content-range",
    "range",
    "user-agent",
    "x-registry-auth",
];
/// Response headers worth keeping.
const RESPONSE_HEADERS: &[&str] = &[
    "www-authenticate",
    "location",
    "docker-content-digest",
    "content-type",
    "content-length",
    "content-range",
    "range",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "oci-subject",
];
/// Form and query keys whose values are secrets.
const SECRET_KEYS: &[&str] = &[
    "password",
    "refresh_token",
    "access_token",
    "client_secret",
    "token",
    "code",
    // storage URL signatures (Azure SAS, S3 presigned)
    "sig",
    "X-Amz-Signature",
    "X-Amz-Credential",
];

/// What credential a request carried, described without the secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuthRecord {
    /// `none`, `basic`, `bearer` or the unknown scheme's name.
    pub scheme: String,
    /// The username of Basic credentials (usernames are not secrets; `AWS`, app ids…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The principal the credential belongs to, when it is one of ours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// For tokens: which registry issued it (for leak detection) and its label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The outcome the profile decided: `ok`, `anonymous`, `bad-credentials`, `expired`…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
}

/// One exchange.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub seq: u64,
    /// RFC 3339 time the request arrived.
    pub time: String,
    pub duration_ms: f64,
    /// The virtual registry that served it (its configured name).
    pub registry: String,
    /// The `Host` (or `:authority`) the client sent.
    pub host: String,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub request_headers: BTreeMap<String, String>,
    pub auth: AuthRecord,
    /// Decoded form fields of token requests (`grant_type`, `scope`, `service`…), redacted.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub form: BTreeMap<String, String>,
    pub status: u16,
    pub response_headers: BTreeMap<String, String>,
    /// Profile remarks: "identity token used as refresh_token", "fault: reset"…
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Set when the request presented another registry's credential or token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak: Option<String>,
    /// Set when an injected fault shaped the exchange: the action (`status 503`, `reset`…);
    /// the note says which rule (and the seed of a probability rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// Knows every secret of a run and the label to show instead — and, for the leak detector
/// ([`crate::leak`]), which registry each secret and each token signing key belongs to.
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: RwLock<Vec<(String, String)>>,
    /// secret → (registry, principal)
    owners: RwLock<HashMap<String, (String, String)>>,
    /// token key id → registry whose issuer signs with it
    issuers: RwLock<HashMap<String, String>>,
}

impl Redactor {
    /// Registers a secret (a password, a token) and how to refer to it.
    pub fn add(&self, secret: &str, label: &str) {
        // Very short strings would redact innocent text; secrets are never that short here.
        if secret.len() < 4 {
            return;
        }
        let mut s = self.secrets.write().unwrap_or_else(|p| p.into_inner());
        if !s.iter().any(|(k, _)| k == secret) {
            s.push((secret.to_owned(), label.to_owned()));
            // longest first, so a secret containing another is replaced whole
            s.sort_by_key(|b| std::cmp::Reverse(b.0.len()));
        }
    }

    /// Records that `secret` is the credential of `principal` of `registry` (and redacts it).
    pub fn claim(&self, secret: &str, registry: &str, principal: &str) {
        self.add(secret, &format!("secret of {principal}"));
        if secret.len() < 4 {
            return;
        }
        self.owners
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                secret.to_owned(),
                (registry.to_owned(), principal.to_owned()),
            );
    }

    /// Records that tokens whose header says `kid` are signed by `registry`'s issuer.
    pub fn claim_issuer(&self, kid: &str, registry: &str) {
        self.issuers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kid.to_owned(), registry.to_owned());
    }

    /// `(registry, principal)` owning a secret, when it is a registered credential.
    pub fn owner_of_secret(&self, secret: &str) -> Option<(String, String)> {
        self.owners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(secret)
            .cloned()
    }

    /// The registry whose issuer signs with `kid`.
    pub fn owner_of_kid(&self, kid: &str) -> Option<String> {
        self.issuers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
            .cloned()
    }

    /// The label of a registered secret, or of a token recognised by its shape (a JWT, a
    /// bearer refresh token).
    pub fn label_of(&self, secret: &str) -> Option<String> {
        let stored = {
            let secrets = self.secrets.read().unwrap_or_else(|p| p.into_inner());
            secrets
                .iter()
                .find(|(k, _)| k == secret)
                .map(|(_, l)| l.clone())
        };
        stored.or_else(|| {
            self.jwt_label(secret)
                .or_else(|| is_refresh_token(secret).then(|| REFRESH_TOKEN_LABEL.into()))
        })
    }

    /// How many secrets are stored (registered credentials; minted tokens are recognised by
    /// their shape instead, so this does not grow with the tokens a run mints).
    pub fn stored_secrets(&self) -> usize {
        self.secrets.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The label of a JWT: which registry's issuer signed it (by its `kid`) and its subject.
    fn jwt_label(&self, token: &str) -> Option<String> {
        use base64::Engine as _;
        let mut parts = token.split('.');
        let (header, payload) = (parts.next()?, parts.next()?);
        let _signature = parts.next()?;
        if parts.next().is_some() || payload.is_empty() {
            return None;
        }
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header: serde_json::Value =
            serde_json::from_slice(&engine.decode(header).ok()?).ok()?;
        header.get("alg")?;
        let registry = header
            .get("kid")
            .and_then(|k| k.as_str())
            .and_then(|kid| self.owner_of_kid(kid));
        let sub = engine
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|c| c.get("sub").and_then(|s| s.as_str()).map(str::to_owned))
            .filter(|s| !s.is_empty())
            .map(|s| format!(" (sub {})", self.redact_stored(&s)))
            .unwrap_or_default();
        Some(match registry {
            Some(r) => format!("token issued by {r}{sub}"),
            None => format!("JWT{sub}"),
        })
    }

    pub fn redact(&self, text: &str) -> String {
        let out = self.redact_stored(text);
        let out = self.redact_jwts(&out);
        redact_refresh_tokens(&out)
    }

    /// Replaces the registered secrets.
    fn redact_stored(&self, text: &str) -> String {
        let secrets = self.secrets.read().unwrap_or_else(|p| p.into_inner());
        let mut out = text.to_owned();
        for (secret, label) in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), &format!("[{label}]"));
            }
        }
        out
    }

    /// Replaces every JWT (three base64url segments whose first decodes to a JOSE header),
    /// whoever issued it: access tokens, ACR refresh tokens, upstream tokens.
    fn redact_jwts(&self, text: &str) -> String {
        if !text.contains("eyJ") {
            return text.to_owned();
        }
        let is_token_byte =
            |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        let mut copied = 0;
        while let Some(found) = text[i..].find("eyJ") {
            let start = i + found;
            let mut end = start;
            while end < bytes.len() && is_token_byte(bytes[end]) {
                end += 1;
            }
            // At most three segments make the token; a trailing `.` belongs to the text.
            let run = &text[start..end];
            let token_len = run
                .match_indices('.')
                .nth(2)
                .map_or(run.len(), |(dot, _)| dot);
            let token = &run[..token_len];
            match self.jwt_label(token) {
                Some(label) => {
                    out.push_str(&text[copied..start]);
                    out.push_str(&format!("[{label}]"));
                    copied = start + token_len;
                    i = copied;
                }
                None => i = start + 3,
            }
        }
        out.push_str(&text[copied..]);
        out
    }
}

const REFRESH_TOKEN_LABEL: &str = "refresh token";

/// A bearer profile's refresh token: `rt-` and a UUID.
fn is_refresh_token(text: &str) -> bool {
    text.strip_prefix("rt-")
        .is_some_and(|u| u.len() == 36 && uuid::Uuid::parse_str(u).is_ok())
}

/// Replaces every `rt-<uuid>` (minted refresh tokens are recognised, not stored).
fn redact_refresh_tokens(text: &str) -> String {
    if !text.contains("rt-") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("rt-") {
        let candidate = rest.get(at..at + 39);
        if let Some(c) = candidate.filter(|c| is_refresh_token(c)) {
            out.push_str(&rest[..at]);
            out.push_str(&format!("[{REFRESH_TOKEN_LABEL}]"));
            rest = &rest[at + c.len()..];
        } else {
            out.push_str(&rest[..at + 3]);
            rest = &rest[at + 3..];
        }
    }
    out.push_str(rest);
    out
}

/// How much a journal keeps. Past either bound the oldest entries are dropped (and counted);
/// a soak test must not grow the process without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalLimits {
    /// Most entries kept; 0 turns the journal off (every entry is counted as dropped).
    pub max_entries: usize,
    /// Most bytes kept, by [`Entry::approx_size`].
    pub max_bytes: usize,
}

impl JournalLimits {
    /// 20 000 entries or 32 MiB (as [`Entry::approx_size`] counts), whichever comes first:
    /// a matrix cell records tens to hundreds of requests, a long soak keeps its most recent
    /// ~20 000 as evidence, and a process that ran a million requests holds no more than
    /// ~2× what it held after ten thousand (`cargo xtask flood`, docs/limits.md).
    pub const DEFAULT: Self = Self {
        max_entries: 20_000,
        max_bytes: 32 * 1024 * 1024,
    };

    /// Records nothing (sequence numbers still advance; every entry counts as dropped).
    pub const OFF: Self = Self {
        max_entries: 0,
        max_bytes: 0,
    };

    pub fn is_off(&self) -> bool {
        self.max_entries == 0 || self.max_bytes == 0
    }
}

impl Default for JournalLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Longest header value kept; the rest is replaced by a `…(+N bytes)` marker.
pub const MAX_HEADER_VALUE: usize = 1024;
/// Longest path, query or note kept.
pub const MAX_TEXT: usize = 4096;

/// Cuts `text` to at most `max` bytes (at a character boundary) and says how much was cut.
fn cap(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("…(+{cut} bytes)"));
}

impl Entry {
    /// The memory the entry holds once kept, as the allocator sees it: the entry itself (its
    /// slot in the ring), every string's heap block and every map's tree nodes, each rounded
    /// up the way glibc's malloc rounds a request (16-byte chunks with an 8-byte header,
    /// 32 bytes at least). Counting only string lengths undercounted a small GET's entry
    /// ~3× (measured by `cargo xtask flood`, docs/limits.md); `tests/journal_size.rs` checks
    /// this model against a counting allocator.
    pub fn approx_size(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| heap_block(s.capacity()));
        let text = |s: &String| heap_block(s.capacity());
        let map = |m: &BTreeMap<String, String>| {
            btree_nodes(m.len()) + m.iter().map(|(k, v)| text(k) + text(v)).sum::<usize>()
        };
        std::mem::size_of::<(Entry, usize)>()
            + text(&self.time)
            + text(&self.registry)
            + text(&self.host)
            + text(&self.method)
            + text(&self.path)
            + opt(&self.query)
            + map(&self.request_headers)
            + map(&self.response_headers)
            + map(&self.form)
            + text(&self.auth.scheme)
            + opt(&self.auth.username)
            + opt(&self.auth.principal)
            + opt(&self.auth.token)
            + opt(&self.auth.verdict)
            + heap_block(self.notes.capacity() * std::mem::size_of::<String>())
            + self.notes.iter().map(text).sum::<usize>()
            + opt(&self.leak)
            + opt(&self.fault)
    }
}

impl Entry {
    fn shrink_to_fit(&mut self) {
        let maps = [
            &mut self.request_headers,
            &mut self.response_headers,
            &mut self.form,
        ];
        for map in maps {
            // Keys are short literals copied once; values may have been rebuilt or cut.
            for v in map.values_mut() {
                v.shrink_to_fit();
            }
        }
        for s in [
            &mut self.time,
            &mut self.path,
            &mut self.host,
            &mut self.method,
        ]
        .into_iter()
        .chain(self.notes.iter_mut())
        {
            s.shrink_to_fit();
        }
        self.notes.shrink_to_fit();
        for s in [
            &mut self.query,
            &mut self.auth.username,
            &mut self.auth.token,
            &mut self.leak,
        ]
        .into_iter()
        .flatten()
        {
            s.shrink_to_fit();
        }
    }
}

/// The bytes a heap block of `requested` bytes takes (0 for no allocation): glibc rounds
/// `requested + 8` up to 16 with a 32-byte minimum chunk.
fn heap_block(requested: usize) -> usize {
    if requested == 0 {
        0
    } else {
        (requested + 8).div_ceil(16).max(2) * 16
    }
}

/// The node blocks of a `BTreeMap<String, String>` with `len` items: leaves of up to 11
/// items (~550 bytes each), and internal nodes above them once there is more than one leaf.
fn btree_nodes(len: usize) -> usize {
    const CAPACITY: usize = 11;
    const LEAF: usize = 2 * CAPACITY * std::mem::size_of::<String>() + 16;
    const INTERNAL: usize = LEAF + (CAPACITY + 1) * std::mem::size_of::<usize>();
    if len == 0 {
        return 0;
    }
    // Nodes are at least half full after splits; count them as ~⅔ full.
    let leaves = len.div_ceil(CAPACITY * 2 / 3).max(1);
    let internals = if leaves > 1 {
        leaves.div_ceil(CAPACITY * 2 / 3)
    } else {
        0
    };
    leaves * heap_block(LEAF) + internals * heap_block(INTERNAL)
}

/// The journal of one fake-registry process (all virtual registries share it).
#[derive(Debug)]
pub struct Journal {
    state: Mutex<State>,
    limits: JournalLimits,
    pub redactor: Arc<Redactor>,
}

/// Entries in `seq` order (a ring: the oldest leave from the front in O(1)), with the byte
/// count they hold. One lock, so sequence numbers and order always agree.
#[derive(Debug)]
struct State {
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
    /// The sequence number of the last entry recorded (kept or not).
    last: u64,
    dropped: u64,
}

impl Default for Journal {
    fn default() -> Self {
        Self::with_limits(JournalLimits::DEFAULT)
    }
}

impl Journal {
    /// A journal keeping at most `capacity` entries (and the default byte budget).
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_limits(JournalLimits {
            max_entries: capacity,
            ..JournalLimits::DEFAULT
        })
    }

    pub fn with_limits(limits: JournalLimits) -> Self {
        Self {
            state: Mutex::new(State {
                entries: VecDeque::new(),
                bytes: 0,
                last: 0,
                dropped: 0,
            }),
            limits,
            redactor: Arc::default(),
        }
    }

    pub fn limits(&self) -> JournalLimits {
        self.limits
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an entry; every string in it is redacted first, then long values are capped.
    pub fn record(&self, mut e: Entry) -> u64 {
        let r = &self.redactor;
        e.path = r.redact(&e.path);
        e.query = e.query.map(|q| redact_pairs(&q, r));
        for (name, v) in e
            .request_headers
            .iter_mut()
            .chain(e.response_headers.iter_mut())
        {
            *v = if name == "x-registry-auth" {
                redact_registry_auth(v, r)
            } else {
                r.redact(v)
            };
        }
        // A redirect's Location may carry a signed URL: its signature is a credential.
        if let Some(location) = e.response_headers.get_mut("location")
            && let Some((base, query)) = location.split_once('?')
        {
            *location = format!("{base}?{}", redact_pairs(query, r));
        }
        for (k, v) in e.form.iter_mut() {
            *v = if SECRET_KEYS.contains(&k.as_str()) {
                // Say *which* secret it was when it is one of ours; drop it either way.
                format!("[{}]", r.label_of(v).unwrap_or_else(|| "redacted".into()))
            } else {
                r.redact(v)
            };
        }
        for n in e.notes.iter_mut() {
            *n = r.redact(n);
        }
        for v in [&mut e.auth.username, &mut e.auth.token, &mut e.leak]
            .into_iter()
            .flatten()
        {
            *v = r.redact(v);
        }
        // Redacted first, capped second: a cut can never leave half a secret behind.
        for v in e
            .request_headers
            .values_mut()
            .chain(e.response_headers.values_mut())
            .chain(e.form.values_mut())
        {
            cap(v, MAX_HEADER_VALUE);
        }
        cap(&mut e.path, MAX_TEXT);
        if let Some(q) = e.query.as_mut() {
            cap(q, MAX_TEXT);
        }
        for n in e.notes.iter_mut() {
            cap(n, MAX_TEXT);
        }
        // A truncated or rebuilt string keeps its old allocation: give back what the entry
        // does not use, so it holds what `approx_size` counts (and a copy of it the same).
        e.shrink_to_fit();
        let size = e.approx_size();
        let mut state = self.state();
        state.last += 1;
        e.seq = state.last;
        let seq = e.seq;
        if self.limits.is_off() || size > self.limits.max_bytes {
            state.dropped += 1;
            return seq;
        }
        while !state.entries.is_empty()
            && (state.entries.len() >= self.limits.max_entries
                || state.bytes + size > self.limits.max_bytes)
        {
            if let Some((_, old)) = state.entries.pop_front() {
                state.bytes -= old;
                state.dropped += 1;
            }
        }
        state.bytes += size;
        state.entries.push_back((e, size));
        seq
    }

    /// Entries with `seq` greater than `after` (0 for all) that are still kept.
    pub fn since(&self, after: u64) -> Vec<Entry> {
        let state = self.state();
        let first = state.entries.partition_point(|(e, _)| e.seq <= after);
        state
            .entries
            .range(first..)
            .map(|(e, _)| e.clone())
            .collect()
    }

    pub fn all(&self) -> Vec<Entry> {
        self.since(0)
    }

    /// The sequence number of the last entry recorded: a marker to query "what happened
    /// since". Monotonic, whatever was dropped or cleared.
    pub fn mark(&self) -> u64 {
        self.state().last
    }

    /// How many entries were dropped to stay within the limits (since the last `clear`).
    pub fn dropped(&self) -> u64 {
        self.state().dropped
    }

    /// How many entries are kept now.
    pub fn len(&self) -> usize {
        self.state().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate bytes the kept entries hold (what the byte budget bounds).
    pub fn bytes(&self) -> usize {
        self.state().bytes
    }

    /// Forgets every entry and the dropped count; sequence numbers keep counting.
    pub fn clear(&self) {
        let mut state = self.state();
        state.entries.clear();
        state.bytes = 0;
        state.dropped = 0;
    }

    /// HTTP Archive 1.2 export (what browsers and proxies read), from the redacted entries.
    pub fn to_har(&self, after: u64) -> serde_json::Value {
        har_of(self.since(after))
    }
}

/// `X-Registry-Auth` is base64url JSON holding a password or an identity token: only its
/// non-secret fields (`username`, `serveraddress`) are kept, as a label.
fn redact_registry_auth(value: &str, r: &Redactor) -> String {
    use base64::Engine as _;
    let engines = [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ];
    let decoded = engines
        .iter()
        .find_map(|e| e.decode(value.trim()).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(serde_json::Value::Object(fields)) = decoded else {
        return format!("[redacted X-Registry-Auth, {} bytes]", value.len());
    };
    let mut kept = Vec::new();
    for (k, v) in &fields {
        let lower = k.to_ascii_lowercase();
        match (lower.as_str(), v.as_str()) {
            ("username" | "serveraddress", Some(text)) => {
                let mut text = r.redact(text);
                cap(&mut text, 256);
                kept.push(format!("{lower}={text}"));
            }
            _ => kept.push(format!("{lower}=[redacted]")),
        }
    }
    format!("[X-Registry-Auth {}]", kept.join(" "))
}

/// HTTP Archive 1.2 of (already redacted) entries.
pub fn har_of(entries: Vec<Entry>) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = entries
            .into_iter()
            .map(|e| {
                let headers = |m: &BTreeMap<String, String>| -> Vec<serde_json::Value> {
                    m.iter().map(|(k, v)| serde_json::json!({"name": k, "value": v})).collect()
                };
                let query = e.query.clone().unwrap_or_default();
                serde_json::json!({
                    "startedDateTime": e.time,
                    "time": e.duration_ms,
                    "request": {
                        "method": e.method,
                        "url": format!("https://{}{}{}", e.host, e.path, if query.is_empty() { String::new() } else { format!("?{query}") }),
                        "httpVersion": "HTTP/1.1",
                        "headers": headers(&e.request_headers),
                        "queryString": [],
                        "cookies": [],
                        "headersSize": -1,
                        "bodySize": -1,
                    },
                    "response": {
                        "status": e.status,
                        "statusText": "",
                        "httpVersion": "HTTP/1.1",
                        "headers": headers(&e.response_headers),
                        "cookies": [],
                        "content": {"size": -1, "mimeType": e.response_headers.get("content-type").cloned().unwrap_or_default()},
                        "redirectURL": e.response_headers.get("location").cloned().unwrap_or_default(),
                        "headersSize": -1,
                        "bodySize": -1,
                    },
                    "cache": {},
                    "timings": {"send": 0, "wait": e.duration_ms, "receive": 0},
                    "comment": serde_json::to_string(&serde_json::json!({"registry": e.registry, "auth": e.auth, "form": e.form, "notes": e.notes, "leak": e.leak, "fault": e.fault})).unwrap_or_default(),
                })
            })
            .collect();
    serde_json::json!({"log": {"version": "1.2", "creator": {"name": "regcompat fake-registry", "version": env!("CARGO_PKG_VERSION")}, "entries": entries}})
}

/// Keeps the headers of `names` from a header map, as text.
pub fn select_headers(headers: &http::HeaderMap, names: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in names {
        let values: Vec<&str> = headers
            .get_all(*name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !values.is_empty() {
            out.insert((*name).to_owned(), values.join(", "));
        }
    }
    out
}

pub fn request_headers(headers: &http::HeaderMap) -> BTreeMap<String, String> {
    select_headers(headers, REQUEST_HEADERS)
}

pub fn response_headers(headers: &http::HeaderMap) -> BTreeMap<String, String> {
    select_headers(headers, RESPONSE_HEADERS)
}

/// Redacts a query string: secret keys lose their values, everything else passes the
/// redactor.
fn redact_pairs(query: &str, r: &Redactor) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_KEYS.contains(&k) => format!("{k}=[redacted]"),
            _ => r.redact(pair),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> Entry {
        Entry {
            seq: 0,
            time: "2026-01-01T00:00:00Z".into(),
            duration_ms: 1.0,
            registry: "acr".into(),
            host: "myregistry.azurecr.io".into(),
            method: "POST".into(),
            path: path.into(),
            query: Some("scope=repository:a:pull&refresh_token=rt-SECRET-123&service=x".into()),
            request_headers: BTreeMap::from([("user-agent".into(), "ua rt-SECRET-123".into())]),
            auth: AuthRecord::default(),
            form: BTreeMap::from([
                ("grant_type".into(), "refresh_token".into()),
                ("refresh_token".into(), "rt-SECRET-123".into()),
                ("password".into(), "unknown-pass".into()),
            ]),
            status: 200,
            response_headers: BTreeMap::new(),
            notes: vec!["saw rt-SECRET-123".into()],
            leak: None,
            fault: None,
        }
    }

    #[test]
    fn no_secret_survives_recording_or_export() {
        let j = Journal::default();
        j.redactor.add("rt-SECRET-123", "refresh token of sp");
        j.record(entry("/oauth2/token/rt-SECRET-123"));
        let json = serde_json::to_string(&j.all()).unwrap();
        let har = j.to_har(0).to_string();
        for text in [&json, &har] {
            assert!(!text.contains("rt-SECRET-123"), "{text}");
            assert!(
                !text.contains("unknown-pass"),
                "an unregistered password is still dropped: {text}"
            );
        }
        assert!(json.contains("refresh token of sp"));
        assert!(json.contains("\"grant_type\":\"refresh_token\""));
    }

    #[test]
    fn sequence_marks_and_capacity() {
        let j = Journal::with_capacity(3);
        let before = j.mark();
        for i in 0..5 {
            j.record(entry(&format!("/v2/{i}")));
        }
        let all = j.all();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].seq, before + 3);
        assert_eq!(j.since(before + 4).len(), 1);
    }

    #[test]
    fn byte_budget_bounds_memory_and_counts_drops() {
        let budget = 256 * 1024;
        let j = Journal::with_limits(JournalLimits {
            max_entries: 1_000_000,
            max_bytes: budget,
        });
        let long = "x".repeat(10_000);
        let total = 3_000u64;
        let mut mid = 0;
        for i in 0..total {
            let mut e = entry(&format!("/v2/{i}"));
            e.request_headers.insert("user-agent".into(), long.clone());
            e.request_headers.insert("accept".into(), long.clone());
            j.record(e);
            if i == total - 11 {
                mid = j.mark();
            }
        }
        let kept = j.all();
        // The memory proxy: what is kept, measured independently of the journal's counter.
        let sum: usize = kept.iter().map(Entry::approx_size).sum();
        assert!(sum <= budget, "{sum} > {budget}");
        assert_eq!(sum, j.bytes());
        assert!(!kept.is_empty());
        assert_eq!(j.dropped(), total - kept.len() as u64);
        assert_eq!(j.mark(), total);
        // Long header values are capped with a marker saying how much was cut.
        let ua = &kept[0].request_headers["user-agent"];
        assert!(ua.len() < MAX_HEADER_VALUE + 32, "{}", ua.len());
        assert!(ua.ends_with(&format!("…(+{} bytes)", 10_000 - MAX_HEADER_VALUE)));
        // `since` across eviction: exactly the entries after the mark, in order.
        let after = j.since(mid);
        assert_eq!(after.len(), 10);
        assert_eq!(after[0].seq, mid + 1);
        assert_eq!(after[9].seq, total);
        assert!(kept.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        // A mark older than anything kept returns what is kept.
        assert_eq!(j.since(1).len(), kept.len());
    }

    #[test]
    fn entry_bound_is_a_ring_and_clear_keeps_sequence() {
        let j = Journal::with_capacity(100);
        for i in 0..1_000 {
            j.record(entry(&format!("/v2/{i}")));
        }
        assert_eq!(j.len(), 100);
        assert_eq!(j.dropped(), 900);
        assert_eq!(j.all()[0].seq, 901);
        j.clear();
        assert_eq!((j.len(), j.dropped(), j.bytes()), (0, 0, 0));
        assert_eq!(j.record(entry("/v2/x")), 1_001);
        assert_eq!(j.since(1_000).len(), 1);
    }

    #[test]
    fn an_off_journal_keeps_nothing_but_counts() {
        let j = Journal::with_limits(JournalLimits::OFF);
        for i in 0..10 {
            j.record(entry(&format!("/v2/{i}")));
        }
        assert!(j.is_empty());
        assert_eq!(j.dropped(), 10);
        assert_eq!(j.mark(), 10);
    }
}
