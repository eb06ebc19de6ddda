//! The checks every `fault-tolerance` scenario gets on top of its own (docs/verdicts.md):
//! read from the journal, where an injected fault marks its exchange.
//!
//! - **Success rests on intact content.** When the cell's last step reports success, every
//!   resource a fault answered was afterwards served whole (2xx, or a 3xx to the storage
//!   host that serves it; no fault) to the client: a
//!   client that exits 0 after a corrupted, truncated, reset or refused answer without
//!   fetching the resource again accepted content it never received intact.
//! - **Retry-After is honoured.** A request retried after a faulted `429`/`503` carrying
//!   `Retry-After: N` starts at least N seconds after that answer (RFC 9110 §10.2.3).

use fake_registry::journal::Entry;
use reports::resilience::journal_time_ms;
use reports::{CheckRecord, StepRecord};

/// Slack for a retry measured against `Retry-After`: the journal's clock has millisecond
/// resolution and the answer's end is when the registry finished sending it.
const RETRY_AFTER_SLACK_MS: f64 = 100.0;

pub fn checks(entries: &[Entry], steps: &[StepRecord]) -> Vec<CheckRecord> {
    vec![
        intact_after_fault(entries, steps),
        retry_after_honoured(entries),
    ]
}

fn intact_after_fault(entries: &[Entry], steps: &[StepRecord]) -> CheckRecord {
    let description = "a reported success rests on content served intact after each fault".into();
    let succeeded = steps
        .iter()
        .rfind(|s| !s.preparation)
        .is_some_and(|s| s.exit_code == Some(0));
    if !succeeded {
        return CheckRecord {
            description,
            passed: true,
            detail: "the client did not report success".into(),
        };
    }
    let mut missing = Vec::new();
    // A delay leaves the registry's own answer, whatever its status: not a fault to recover
    // from.
    let faulted: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.fault.is_some() && !delayed_only(e))
        .collect();
    for (n, e) in faulted.iter().enumerate() {
        // Only the last fault on each path matters.
        if faulted[n + 1..].iter().any(|later| later.path == e.path) {
            continue;
        }
        let intact = entries
            .iter()
            .any(|later| later.seq > e.seq && later.path == e.path && intact_answer(later));
        if !intact {
            missing.push(format!(
                "{} {} ({})",
                e.method,
                e.path,
                e.fault.as_deref().unwrap_or_default()
            ));
        }
    }
    CheckRecord {
        description,
        passed: missing.is_empty(),
        detail: if missing.is_empty() {
            format!(
                "{} faulted exchange(s), each followed by an intact answer",
                faulted.len()
            )
        } else {
            format!(
                "the client exited 0 but never received intact: {}",
                missing.join(", ")
            )
        },
    }
}

/// A 2xx (or a redirect to where the content is: ACR's and ECR's blob GETs) with nothing
/// done to its content: no fault, or only a delay (a slow registry serves the right bytes).
fn intact_answer(e: &Entry) -> bool {
    (e.fault.is_none() || delayed_only(e)) && (200..400).contains(&e.status)
}

/// The fault only held the answer back (`delay …ms`).
fn delayed_only(e: &Entry) -> bool {
    e.fault.as_deref().is_some_and(|f| f.starts_with("delay "))
}

fn retry_after_honoured(entries: &[Entry]) -> CheckRecord {
    let mut waits = Vec::new();
    let mut early = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.fault.is_none() || !matches!(e.status, 429 | 503) {
            continue;
        }
        let Some(asked) = e
            .response_headers
            .get("retry-after")
            .and_then(|v| v.trim().parse::<f64>().ok())
        else {
            continue;
        };
        let Some(next) = entries[i + 1..].iter().find(|n| n.path == e.path) else {
            continue;
        };
        let (Some(start), Some(retried)) = (journal_time_ms(&e.time), journal_time_ms(&next.time))
        else {
            continue;
        };
        let waited = (retried - (start + e.duration_ms)) / 1000.0;
        let line = format!(
            "{} {}: waited {waited:.2} s of {asked} s",
            next.method, e.path
        );
        if waited * 1000.0 + RETRY_AFTER_SLACK_MS < asked * 1000.0 {
            early.push(line);
        } else {
            waits.push(line);
        }
    }
    CheckRecord {
        description: "a retry after Retry-After waited as long as it asked".into(),
        passed: early.is_empty(),
        detail: match (early.is_empty(), waits.is_empty()) {
            (false, _) => format!("retried too soon: {}", early.join("; ")),
            (true, true) => "no retry of an answer carrying Retry-After".into(),
            (true, false) => waits.join("; "),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fake_registry::journal::AuthRecord;
    use std::collections::BTreeMap;

    fn entry(seq: u64, time: &str, path: &str, status: u16, fault: Option<&str>) -> Entry {
        let mut response_headers = BTreeMap::new();
        if status == 429 {
            response_headers.insert("retry-after".into(), "2".into());
        }
        Entry {
            seq,
            time: time.into(),
            duration_ms: 10.0,
            registry: "acr".into(),
            host: "myregistry.azurecr.io".into(),
            method: "GET".into(),
            path: path.into(),
            query: None,
            request_headers: BTreeMap::new(),
            auth: AuthRecord::default(),
            form: BTreeMap::new(),
            status,
            response_headers,
            notes: vec![],
            leak: None,
            fault: fault.map(str::to_owned),
        }
    }

    fn step(exit: i32) -> StepRecord {
        StepRecord {
            step: 0,
            action: "pull".into(),
            argv: vec![],
            repro: String::new(),
            exit_code: Some(exit),
            timed_out: false,
            duration_ms: 1000,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            expected: "any".into(),
            preparation: false,
        }
    }

    const BLOB: &str = "/v2/base/run/blobs/sha256:aa";
    const MANIFEST: &str = "/v2/base/run/manifests/1";

    #[test]
    fn success_without_an_intact_fetch_fails_and_a_failure_does_not() {
        let journal = [entry(
            1,
            "2026-11-30T10:00:00.000Z",
            BLOB,
            200,
            Some("corrupt last byte"),
        )];
        let c = intact_after_fault(&journal, &[step(0)]);
        assert!(!c.passed, "{c:?}");
        assert!(c.detail.contains(BLOB), "{}", c.detail);
        assert!(intact_after_fault(&journal, &[step(1)]).passed);
        let retried = [
            journal[0].clone(),
            entry(2, "2026-11-30T10:00:01.000Z", BLOB, 200, None),
        ];
        assert!(intact_after_fault(&retried, &[step(0)]).passed);
    }

    #[test]
    fn a_delay_is_no_fault_to_recover_from_whatever_the_status() {
        let slow = [
            entry(
                1,
                "2026-11-30T10:00:00.000Z",
                "/v2/",
                401,
                Some("delay 3000ms"),
            ),
            entry(
                2,
                "2026-11-30T10:00:03.000Z",
                BLOB,
                200,
                Some("delay 3000ms"),
            ),
        ];
        let c = intact_after_fault(&slow, &[step(0)]);
        assert!(c.passed, "{c:?}");
        // a corrupted answer after a delayed one still needs an intact one after it
        let mut broken = slow.to_vec();
        broken.push(entry(
            3,
            "2026-11-30T10:00:06.000Z",
            BLOB,
            200,
            Some("corrupt last byte"),
        ));
        assert!(!intact_after_fault(&broken, &[step(0)]).passed);
    }

    #[test]
    fn a_retry_sooner_than_retry_after_fails() {
        let soon = [
            entry(
                1,
                "2026-11-30T10:00:00.000Z",
                MANIFEST,
                429,
                Some("too_many_requests retry-after=2"),
            ),
            entry(2, "2026-11-30T10:00:00.300Z", MANIFEST, 200, None),
        ];
        let c = retry_after_honoured(&soon);
        assert!(!c.passed);
        assert!(c.detail.contains("waited 0.29 s of 2 s"), "{}", c.detail);
        let later = [
            soon[0].clone(),
            entry(2, "2026-11-30T10:00:02.050Z", MANIFEST, 200, None),
        ];
        assert!(retry_after_honoured(&later).passed);
        // no retry at all is not judged here
        assert!(retry_after_honoured(&soon[..1]).passed);
    }
}
