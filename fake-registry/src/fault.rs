//! Injected faults: rules that make a virtual host misbehave on purpose (a 503 on the third
//! manifest GET, a hang before the headers of a token request, a truncated blob…), so that
//! scenarios can check how clients retry, time out and report.
//!
//! A rule is *match* (which requests) + *when* (which of the matching requests) + *times* (how
//! many applications at most) + *action* (what happens). Rules are checked in the order they
//! were added; the first that fires wins. Every application adds the journal note
//! `fault: <rule id> <action>` to the request's entry.
//!
//! In a fleet config (`[[host.fault]]`, the host implied) and in the admin API
//! (`POST /_regcompat/faults`, JSON) a rule reads:
//!
//! ```toml
//! [[host.fault]]
//! match = { method = "GET", path = "/v2/**/manifests/*" }   # host, token_endpoint
//! when = { nth = 3 }              # nth = N, probability = 0.5 (+ seed), or nothing = every
//! times = 1
//! action = { type = "status", code = 503 }
//! ```
//!
//! `when`: nothing → every matching request; `nth = N` → the Nth matching request (1-based)
//! and, if `times` allows, the ones after it (`times` defaults to 1 for `nth`, unlimited
//! otherwise); `probability = p` → each matching request with probability `p`, drawn from a
//! generator seeded by `seed` (random when absent; the seed is written in every note so a run
//! can be replayed).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The longest a `hang` or `delay` may last: every loop and wait is bounded.
pub const MAX_WAIT_MS: u64 = 600_000;
/// How long `hang` holds a request when the rule does not say.
pub const DEFAULT_HANG_MS: u64 = 60_000;

/// One rule as configured (TOML or JSON).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// A name for notes and the admin API; `fault-N` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, rename = "match")]
    pub matcher: FaultMatch,
    #[serde(default)]
    pub when: FaultWhen,
    /// Applications at most (default: 1 for `nth`, unlimited otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    pub action: FaultAction,
}

/// Which requests a rule looks at; every given field must match.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultMatch {
    /// The host's configured name (`acr`) or a hostname it serves (`myregistry.azurecr.io`,
    /// its realm or storage host); implicit for faults declared under a `[[host]]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `GET`, `HEAD`, `POST`… (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// A glob on the path: `*` within one segment, `**` across segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `true`: only requests outside `/v2/` (token endpoints and realms); `false`: only `/v2/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<bool>,
}

/// Which of the matching requests a rule fires on.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultWhen {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nth: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Only requests arriving within this many milliseconds after the rule was added (a
    /// fleet's own rules: after the fleet started). ACR's role assignments take minutes to
    /// apply: 403 for a while, then the same request succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_ms: Option<u64>,
}

/// What happens to a request a rule fires on.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultAction {
    /// Answer with this status instead of serving the request. Without `body`, a spec error
    /// body (`{"errors":[…]}`, `application/json`).
    Status {
        code: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
    /// Wait `ms` milliseconds, then serve the request normally.
    Delay { ms: u64 },
    /// Send nothing (not even headers) for `max_ms` (default 60 s), then close the connection.
    Hang {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_ms: Option<u64>,
    },
    /// Close the connection without a response (HTTP/2: reset the stream).
    Reset,
    /// Serve the request, announcing the whole `Content-Length`, but send only the first
    /// `bytes` bytes of the body, then close the connection.
    Truncate { bytes: u64 },
    /// 429 `TOOMANYREQUESTS` with `Retry-After: <retry_after>` (seconds).
    TooManyRequests { retry_after: u64 },
    /// Serve the request whole, with its announced length, but with the byte at offset `at`
    /// (default: the last byte) inverted: the content no longer matches its digest. Only a
    /// client that verifies what it fetches notices.
    Corrupt {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<u64>,
    },
}

impl FaultAction {
    /// Short text for journal notes: `status 503`, `hang 60000ms`…
    pub fn describe(&self) -> String {
        match self {
            Self::Status { code, .. } => format!("status {code}"),
            Self::Delay { ms } => format!("delay {ms}ms"),
            Self::Hang { max_ms } => format!("hang {}ms", max_ms.unwrap_or(DEFAULT_HANG_MS)),
            Self::Reset => "reset".into(),
            Self::Truncate { bytes } => format!("truncate {bytes}"),
            Self::TooManyRequests { retry_after } => {
                format!("too_many_requests retry-after={retry_after}")
            }
            Self::Corrupt { at: Some(at) } => format!("corrupt byte {at}"),
            Self::Corrupt { at: None } => "corrupt last byte".into(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultError {
    #[error("`when.probability` must be between 0 and 1, not {0}")]
    Probability(f64),
    #[error("`when` takes either `nth` or `probability`, not both")]
    NthAndProbability,
    #[error("`when.nth` counts from 1")]
    NthZero,
    #[error("`action.code` {0} is not an HTTP status (100–599)")]
    Status(u16),
    #[error("`action.headers`: {0:?} is not a valid header")]
    Header(String),
    #[error("`{field}` is {ms} ms; at most {MAX_WAIT_MS} ms")]
    TooLong { field: &'static str, ms: u64 },
    #[error("a rule with id {0:?} already exists")]
    DuplicateId(String),
}

impl FaultError {
    /// The dotted field of the rule the error is about (`when.probability`), for located
    /// config errors.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Probability(_) => "when.probability",
            Self::NthAndProbability => "when",
            Self::NthZero => "when.nth",
            Self::Status(_) => "action.code",
            Self::Header(_) => "action.headers",
            Self::TooLong { field, .. } => field,
            Self::DuplicateId(_) => "id",
        }
    }
}

impl FaultConfig {
    /// Checks what serde cannot: ranges, header syntax.
    pub fn validate(&self) -> Result<(), FaultError> {
        match (self.when.nth, self.when.probability) {
            (Some(_), Some(_)) => return Err(FaultError::NthAndProbability),
            (Some(0), _) => return Err(FaultError::NthZero),
            (_, Some(p)) if !(0.0..=1.0).contains(&p) || p.is_nan() => {
                return Err(FaultError::Probability(p));
            }
            _ => {}
        }
        if let Some(ms) = self.when.within_ms
            && ms > MAX_WAIT_MS
        {
            return Err(FaultError::TooLong {
                field: "when.within_ms",
                ms,
            });
        }
        match &self.action {
            FaultAction::Status { code, headers, .. } => {
                if !(100..=599).contains(code) {
                    return Err(FaultError::Status(*code));
                }
                for (k, v) in headers {
                    if http::HeaderName::from_bytes(k.as_bytes()).is_err()
                        || http::HeaderValue::from_str(v).is_err()
                    {
                        return Err(FaultError::Header(k.clone()));
                    }
                }
            }
            FaultAction::Delay { ms } if *ms > MAX_WAIT_MS => {
                return Err(FaultError::TooLong {
                    field: "action.ms",
                    ms: *ms,
                });
            }
            FaultAction::Hang { max_ms: Some(ms) } if *ms > MAX_WAIT_MS => {
                return Err(FaultError::TooLong {
                    field: "action.max_ms",
                    ms: *ms,
                });
            }
            _ => {}
        }
        Ok(())
    }
}

/// What a rule looks at in a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The configured name of the registry serving the request.
    pub registry: &'a str,
    /// The hostname the client addressed (no port).
    pub hostname: &'a str,
    pub method: &'a str,
    pub path: &'a str,
}

impl RequestFacts<'_> {
    fn is_token_endpoint(&self) -> bool {
        !(self.path == "/v2" || self.path.starts_with("/v2/"))
    }
}

/// A fault that fired: which rule, what to do, and the note for the journal.
#[derive(Debug, Clone)]
pub struct Fired {
    pub rule: String,
    pub action: FaultAction,
    pub note: String,
}

/// A rule with its counters, as the admin API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    pub id: String,
    #[serde(flatten)]
    pub config: FaultConfig,
    /// Matching requests seen so far.
    pub seen: u64,
    /// Times the rule fired.
    pub applied: u64,
    /// The generator seed of a `probability` rule (the configured one or the drawn one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

struct Rule {
    id: String,
    config: FaultConfig,
    seed: Option<u64>,
    /// When the rule was added (for `when.within_ms`).
    added: std::time::Instant,
    state: Mutex<RuleState>,
}

struct RuleState {
    seen: u64,
    applied: u64,
    rng: SplitMix64,
}

impl Rule {
    fn matches(&self, facts: &RequestFacts<'_>) -> bool {
        let m = &self.config.matcher;
        m.host
            .as_deref()
            .is_none_or(|h| h == facts.registry || h.eq_ignore_ascii_case(facts.hostname))
            && m.method
                .as_deref()
                .is_none_or(|x| x.eq_ignore_ascii_case(facts.method))
            && m.path
                .as_deref()
                .is_none_or(|p| glob(p.as_bytes(), facts.path.as_bytes()))
            && m.token_endpoint
                .is_none_or(|t| t == facts.is_token_endpoint())
    }

    /// Counts a matching request and decides whether the rule fires on it.
    fn fire(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.seen += 1;
        let when = &self.config.when;
        let limit = self
            .config
            .times
            .unwrap_or(if when.nth.is_some() { 1 } else { u64::MAX });
        if s.applied >= limit {
            return false;
        }
        if when
            .within_ms
            .is_some_and(|ms| self.added.elapsed() > std::time::Duration::from_millis(ms))
        {
            return false;
        }
        let fires = match (when.nth, when.probability) {
            (Some(n), _) => s.seen >= n,
            (None, Some(p)) => s.rng.next_f64() < p,
            (None, None) => true,
        };
        if fires {
            s.applied += 1;
        }
        fires
    }
}

/// The fault rules of a fleet (shared by all its hosts and the admin API).
#[derive(Default)]
pub struct Faults {
    rules: RwLock<Vec<Arc<Rule>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.list()).finish()
    }
}

impl Faults {
    /// Adds a rule (validated) and returns its id.
    pub fn add(&self, config: FaultConfig) -> Result<String, FaultError> {
        config.validate()?;
        let mut rules = self.rules.write().unwrap_or_else(|p| p.into_inner());
        let id = match &config.id {
            Some(id) => {
                if rules.iter().any(|r| &r.id == id) {
                    return Err(FaultError::DuplicateId(id.clone()));
                }
                id.clone()
            }
            None => loop {
                let n = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
                let id = format!("fault-{n}");
                if !rules.iter().any(|r| r.id == id) {
                    break id;
                }
            },
        };
        let seed = config
            .when
            .probability
            .map(|_| config.when.seed.unwrap_or_else(random_seed));
        rules.push(Arc::new(Rule {
            id: id.clone(),
            seed,
            added: std::time::Instant::now(),
            state: Mutex::new(RuleState {
                seen: 0,
                applied: 0,
                rng: SplitMix64(seed.unwrap_or(0)),
            }),
            config,
        }));
        Ok(id)
    }

    pub fn list(&self) -> Vec<RuleView> {
        self.rules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|r| {
                let s = r.state.lock().unwrap_or_else(|p| p.into_inner());
                RuleView {
                    id: r.id.clone(),
                    config: r.config.clone(),
                    seen: s.seen,
                    applied: s.applied,
                    seed: r.seed,
                }
            })
            .collect()
    }

    /// Removes one rule; `false` if there was none with that id.
    pub fn remove(&self, id: &str) -> bool {
        let mut rules = self.rules.write().unwrap_or_else(|p| p.into_inner());
        let before = rules.len();
        rules.retain(|r| r.id != id);
        rules.len() != before
    }

    pub fn clear(&self) {
        self.rules
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The fault to apply to this request, if a rule fires. Every rule that matches counts the
    /// request, in order, until one fires.
    pub fn pick(&self, facts: &RequestFacts<'_>) -> Option<Fired> {
        let rules = self.rules.read().unwrap_or_else(|p| p.into_inner()).clone();
        for rule in rules {
            if rule.matches(facts) && rule.fire() {
                let mut note = format!("fault: {} {}", rule.id, rule.config.action.describe());
                if let Some(seed) = rule.seed {
                    note.push_str(&format!(" (seed {seed})"));
                }
                return Some(Fired {
                    rule: rule.id.clone(),
                    action: rule.config.action.clone(),
                    note,
                });
            }
        }
        None
    }
}

/// `*` matches within one path segment, `**` across segments.
pub fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => (0..=s.len()).any(|i| glob(&p[2..], &s[i..])),
        Some(b'*') => (0..=s.len())
            .take_while(|&i| i == 0 || s[i - 1] != b'/')
            .any(|i| glob(&p[1..], &s[i..])),
        Some(&c) => s.first() == Some(&c) && glob(&p[1..], &s[1..]),
    }
}

fn random_seed() -> u64 {
    let b = uuid::Uuid::new_v4();
    let bytes = b.as_bytes();
    u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

/// SplitMix64: a tiny, well-known deterministic generator; the same seed replays the same
/// decisions.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn rule(when: FaultWhen, times: Option<u64>) -> FaultConfig {
        FaultConfig {
            id: None,
            matcher: FaultMatch {
                method: Some("get".into()),
                path: Some("/v2/**/manifests/*".into()),
                ..Default::default()
            },
            when,
            times,
            action: FaultAction::Reset,
        }
    }

    fn facts(path: &str) -> RequestFacts<'_> {
        RequestFacts {
            registry: "acr",
            hostname: "myregistry.azurecr.io",
            method: "GET",
            path,
        }
    }

    fn fired(faults: &Faults, n: usize, path: &str) -> Vec<bool> {
        (0..n)
            .map(|_| faults.pick(&facts(path)).is_some())
            .collect()
    }

    #[test]
    fn nth_fires_on_the_nth_match_then_times_more() {
        let f = Faults::default();
        f.add(rule(
            FaultWhen {
                nth: Some(2),
                ..Default::default()
            },
            Some(2),
        ))
        .unwrap();
        // a request the rule does not match is not counted
        assert!(f.pick(&facts("/v2/")).is_none());
        assert_eq!(
            fired(&f, 5, "/v2/a/b/manifests/latest"),
            [false, true, true, false, false]
        );
        let view = &f.list()[0];
        assert_eq!((view.seen, view.applied), (5, 2));
    }

    #[test]
    fn probability_replays_with_its_seed_and_the_note_prints_it() {
        let when = FaultWhen {
            probability: Some(0.5),
            seed: Some(42),
            ..Default::default()
        };
        let a = Faults::default();
        a.add(rule(when.clone(), None)).unwrap();
        let b = Faults::default();
        b.add(rule(when, None)).unwrap();
        let path = "/v2/x/manifests/1";
        let run_a = fired(&a, 64, path);
        assert_eq!(run_a, fired(&b, 64, path));
        let hits = run_a.iter().filter(|x| **x).count();
        assert!((10..=54).contains(&hits), "{hits} of 64 at p=0.5");
        let note = loop {
            if let Some(x) = a.pick(&facts(path)) {
                break x.note;
            }
        };
        assert_eq!(note, "fault: fault-1 reset (seed 42)");
    }

    #[rstest]
    #[case(FaultWhen { nth: Some(1), probability: Some(0.1), ..Default::default() }, FaultError::NthAndProbability)]
    #[case(FaultWhen { nth: Some(0), ..Default::default() }, FaultError::NthZero)]
    #[case(FaultWhen { probability: Some(1.5), ..Default::default() }, FaultError::Probability(1.5))]
    fn bad_rules_are_refused(#[case] when: FaultWhen, #[case] want: FaultError) {
        assert_eq!(Faults::default().add(rule(when, None)), Err(want));
    }

    #[test]
    fn within_ms_fires_only_in_the_window_after_the_rule_was_added() {
        let f = Faults::default();
        f.add(rule(
            FaultWhen {
                within_ms: Some(200),
                ..Default::default()
            },
            None,
        ))
        .unwrap();
        let path = "/v2/x/manifests/1";
        assert_eq!(fired(&f, 3, path), [true, true, true]);
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert_eq!(fired(&f, 2, path), [false, false]);
        let view = &f.list()[0];
        assert_eq!((view.seen, view.applied), (5, 3));
    }

    #[test]
    fn ids_are_unique_and_rules_removable() {
        let f = Faults::default();
        let mut r = rule(FaultWhen::default(), None);
        r.id = Some("x".into());
        assert_eq!(f.add(r.clone()).unwrap(), "x");
        assert_eq!(f.add(r), Err(FaultError::DuplicateId("x".into())));
        assert_eq!(f.add(rule(FaultWhen::default(), None)).unwrap(), "fault-1");
        assert!(f.remove("x"));
        assert!(!f.remove("x"));
        assert_eq!(f.list().len(), 1);
        f.clear();
        assert!(f.pick(&facts("/v2/a/manifests/b")).is_none());
    }

    #[rstest]
    #[case("/v2/*/manifests/*", "/v2/a/manifests/b", true)]
    #[case("/v2/*/manifests/*", "/v2/a/b/manifests/c", false)]
    #[case("/v2/**/blobs/**", "/v2/a/b/blobs/sha256:x", true)]
    #[case("/oauth2/token", "/oauth2/token", true)]
    fn globs(#[case] p: &str, #[case] s: &str, #[case] want: bool) {
        assert_eq!(glob(p.as_bytes(), s.as_bytes()), want);
    }
}
