//! Expectations → checks → verdict. Journal assertions operate on the fleet journal's
//! entries as JSON (`fake_registry::journal::Entry` serialised), so they read exactly what
//! the reports show.

use reports::model::{CheckRecord, StepRecord, Verdict};
use serde_json::Value;

use crate::scenario::{Expect, JournalExpect};

fn field<'a>(entry: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(entry, |v, k| v.get(k))
}

fn text_is(entry: &Value, path: &[&str], want: &str) -> bool {
    match field(entry, path) {
        Some(Value::String(s)) => s.eq_ignore_ascii_case(want),
        Some(Value::Number(n)) => n.to_string() == want,
        _ => false,
    }
}

/// `*` at the end of a pattern matches any suffix.
fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

/// Whether one journal entry matches an expectation's request/auth/form.
pub fn matches(e: &JournalExpect, entry: &Value) -> bool {
    let r = &e.request;
    r.registry
        .as_deref()
        .is_none_or(|x| text_is(entry, &["registry"], x))
        && r.method
            .as_deref()
            .is_none_or(|x| text_is(entry, &["method"], x))
        && r.path.as_deref().is_none_or(|p| {
            field(entry, &["path"])
                .and_then(Value::as_str)
                .is_some_and(|path| path_matches(p, path))
        })
        && r.status
            .is_none_or(|s| field(entry, &["status"]).and_then(Value::as_u64) == Some(u64::from(s)))
        && e.auth.iter().all(|(k, v)| text_is(entry, &["auth", k], v))
        && e.form.iter().all(|(k, v)| {
            field(entry, &["form", k])
                .and_then(Value::as_str)
                .is_some_and(|s| s == v)
        })
}

fn describe(e: &JournalExpect) -> String {
    if let Some(d) = &e.description {
        return d.clone();
    }
    let r = &e.request;
    let mut parts = vec![];
    for (k, v) in [
        ("registry", &r.registry),
        ("method", &r.method),
        ("path", &r.path),
    ] {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    }
    if let Some(s) = r.status {
        parts.push(format!("status={s}"));
    }
    parts.extend(e.auth.iter().map(|(k, v)| format!("auth.{k}={v}")));
    parts.extend(e.form.iter().map(|(k, v)| format!("form.{k}={v}")));
    format!("requests with {} occur {}", parts.join(" "), e.count)
}

fn seqs(entries: &[&Value]) -> String {
    let s: Vec<String> = entries
        .iter()
        .take(20)
        .filter_map(|e| field(e, &["seq"]).map(|v| format!("#{v}")))
        .collect();
    s.join(",")
}

/// Check the registry-side expectations against the cell's journal.
pub fn check_journal(expect: &Expect, journal: &[Value]) -> Vec<CheckRecord> {
    let mut out = Vec::new();
    for e in &expect.journal {
        let hits: Vec<&Value> = journal.iter().filter(|j| matches(e, j)).collect();
        out.push(CheckRecord {
            description: describe(e),
            passed: e.count.holds(hits.len()),
            detail: format!(
                "{} matching entr{} {}(expected {})",
                hits.len(),
                if hits.len() == 1 { "y" } else { "ies" },
                if hits.is_empty() {
                    String::new()
                } else {
                    format!("{} ", seqs(&hits))
                },
                e.count
            ),
        });
    }
    if expect.no_leaks {
        let leaks: Vec<&Value> = journal
            .iter()
            .filter(|j| field(j, &["leak"]).is_some_and(|l| !l.is_null()))
            .collect();
        out.push(CheckRecord {
            description: "no credential reached a registry it does not belong to".into(),
            passed: leaks.is_empty(),
            detail: if leaks.is_empty() {
                format!("{} entries, none flagged", journal.len())
            } else {
                format!("leaks at {}", seqs(&leaks))
            },
        });
    }
    for host in &expect.no_authorization_to {
        let carrying: Vec<&Value> = journal
            .iter()
            .filter(|j| text_is(j, &["registry"], host))
            .filter(|j| {
                field(j, &["request_headers", "authorization"]).is_some()
                    || field(j, &["auth", "scheme"])
                        .and_then(Value::as_str)
                        .is_some_and(|s| s != "none")
            })
            .collect();
        out.push(CheckRecord {
            description: format!("no Authorization reached {host}"),
            passed: carrying.is_empty(),
            detail: if carrying.is_empty() {
                "none".into()
            } else {
                format!("carried at {}", seqs(&carrying))
            },
        });
    }
    out
}

/// A check per step: did it succeed or fail as the scenario says?
pub fn check_step(step: &StepRecord) -> CheckRecord {
    let succeeded = step.exit_code == Some(0) && !step.timed_out;
    let passed = match step.expected.as_str() {
        "failure" => !succeeded && !step.timed_out,
        _ => succeeded,
    };
    let observed = if step.timed_out {
        "timed out".to_string()
    } else {
        match step.exit_code {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".into(),
        }
    };
    CheckRecord {
        description: format!("`{}` ends in {}", step.action, step.expected),
        passed,
        detail: observed,
    }
}

/// The cell's verdict from its checks: a real run is `pass` only if every check held
/// and the journal proves the client talked to the fake.
pub fn decide(checks: &[CheckRecord], journal: &[Value]) -> (Verdict, String) {
    if let Some(first) = checks.iter().find(|c| !c.passed) {
        return (
            Verdict::Fail,
            format!("{}: {}", first.description, first.detail),
        );
    }
    if journal.is_empty() {
        return (
            Verdict::Fail,
            "the fake registry saw no request from the client".into(),
        );
    }
    (Verdict::Pass, format!("{} checks held", checks.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Count, RequestMatch};
    use serde_json::json;

    fn token_entry(seq: u64, grant: &str) -> Value {
        json!({"seq": seq, "registry": "acr", "method": "POST", "path": "/oauth2/token",
               "status": 200, "auth": {"scheme": "none"}, "form": {"grant_type": grant}})
    }

    fn expect(grant: &str, count: Count) -> JournalExpect {
        JournalExpect {
            description: None,
            request: RequestMatch {
                registry: Some("acr".into()),
                method: Some("POST".into()),
                path: Some("/oauth2/*".into()),
                status: None,
            },
            auth: Default::default(),
            form: [("grant_type".to_string(), grant.to_string())].into(),
            count,
        }
    }

    #[test]
    fn journal_expectations_count_matching_entries() {
        let journal = vec![token_entry(1, "refresh_token"), token_entry(2, "password")];
        let ex = Expect {
            journal: vec![
                expect("refresh_token", Count::AtLeast(1)),
                expect("access_token", Count::AtLeast(1)),
                expect("password", Count::Exactly(0)),
            ],
            ..Default::default()
        };
        let checks = check_journal(&ex, &journal);
        assert!(checks[0].passed);
        assert!(checks[0].detail.contains("#1"));
        assert!(!checks[1].passed);
        assert!(!checks[2].passed);
        let (v, reason) = decide(&checks, &journal);
        assert_eq!(v, Verdict::Fail);
        assert!(reason.contains("access_token"), "{reason}");
    }

    #[test]
    fn leaks_and_authorization_to_storage_are_caught() {
        let journal = vec![
            json!({"seq": 1, "registry": "storage", "auth": {"scheme": "bearer"}, "leak": "acr token"}),
        ];
        let ex = Expect {
            no_leaks: true,
            no_authorization_to: vec!["storage".into()],
            journal: vec![],
        };
        let checks = check_journal(&ex, &journal);
        assert_eq!(checks.len(), 2);
        assert!(checks.iter().all(|c| !c.passed));
    }

    #[test]
    fn an_empty_journal_never_passes() {
        assert_eq!(decide(&[], &[]).0, Verdict::Fail);
    }
}
