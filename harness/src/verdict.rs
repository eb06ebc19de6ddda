//! From what happened to a verdict: each step's outcome against its expectation, the
//! journal assertions of the scenario, and the checks every cell gets (the client reached
//! the fake; no credential leaked).

use crate::scenario::{Count, JournalExpect, Scenario};
use fake_registry::journal::Entry;
use reports::{CheckRecord, StepRecord, Verdict};

/// The checks of a cell whose client ran: `steps` are the invocation records, of which
/// `steps_run` scenario steps completed (a step may take several invocations).
pub fn checks(
    scenario: &Scenario,
    steps: &[StepRecord],
    steps_run: usize,
    journal: &[Entry],
) -> Vec<CheckRecord> {
    let planned = scenario.steps.len();
    let mut out = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let succeeded = s.exit_code == Some(0);
        let expected_success = s.expected == "success";
        let detail = if s.timed_out {
            format!(
                "timed out after {} ms (process group killed)",
                s.duration_ms
            )
        } else {
            match s.exit_code {
                Some(c) => format!("exit code {c}"),
                None => "killed by a signal".into(),
            }
        };
        out.push(CheckRecord {
            description: format!("command {} ({}) ends in {}", i + 1, s.action, s.expected),
            passed: !s.timed_out && succeeded == expected_success,
            detail,
        });
    }
    if steps_run < planned {
        out.push(CheckRecord {
            description: format!("all {planned} steps ran"),
            passed: false,
            detail: format!("stopped after {steps_run} of {planned} steps: the last command did not end as expected"),
        });
    }
    out.push(CheckRecord {
        description: "the client talked to the fake registry".into(),
        passed: !journal.is_empty(),
        detail: format!("{} journal entries", journal.len()),
    });
    if scenario.expect.no_leaks {
        let leaks: Vec<String> = journal
            .iter()
            .filter_map(|e| {
                e.leak
                    .as_ref()
                    .map(|l| format!("#{} {} {}: {l}", e.seq, e.method, e.path))
            })
            .collect();
        out.push(CheckRecord {
            description: "no request presented another registry's credential".into(),
            passed: leaks.is_empty(),
            detail: leaks.join("; "),
        });
    }
    for name in &scenario.expect.no_authorization_to {
        let hits: Vec<String> = journal
            .iter()
            .filter(|e| &e.registry == name && e.auth.scheme != "none" && !e.auth.scheme.is_empty())
            .map(|e| format!("#{} {} {} ({})", e.seq, e.method, e.path, e.auth.scheme))
            .collect();
        let seen = journal.iter().filter(|e| &e.registry == name).count();
        out.push(CheckRecord {
            description: format!("no Authorization reached {name}"),
            passed: hits.is_empty(),
            detail: if hits.is_empty() {
                format!("{seen} requests to {name}, none with Authorization")
            } else {
                hits.join("; ")
            },
        });
    }
    for j in &scenario.expect.journal {
        out.push(journal_check(j, journal));
    }
    out
}

/// The verdict the checks add up to.
pub fn verdict(checks: &[CheckRecord]) -> (Verdict, String) {
    match checks.iter().find(|c| !c.passed) {
        None => (Verdict::Pass, format!("{} checks passed", checks.len())),
        Some(c) => {
            let reason = if c.detail.is_empty() {
                c.description.clone()
            } else {
                format!("{}: {}", c.description, c.detail)
            };
            (Verdict::Fail, reason)
        }
    }
}

fn journal_check(j: &JournalExpect, journal: &[Entry]) -> CheckRecord {
    let count: Count = j.count();
    let matching: Vec<&Entry> = journal.iter().filter(|e| matches(j, e)).collect();
    let seqs: Vec<String> = matching
        .iter()
        .take(20)
        .map(|e| format!("#{}", e.seq))
        .collect();
    CheckRecord {
        description: j.that.clone(),
        passed: count.holds(matching.len()),
        detail: format!(
            "expected {count} matching requests, saw {}{}",
            matching.len(),
            if seqs.is_empty() {
                String::new()
            } else {
                format!(" ({})", seqs.join(", "))
            }
        ),
    }
}

/// Whether entry `e` matches every field the expectation gives.
pub fn matches(j: &JournalExpect, e: &Entry) -> bool {
    let r = &j.request;
    if r.registry.as_ref().is_some_and(|x| x != &e.registry) {
        return false;
    }
    if r.method.as_ref().is_some_and(|x| {
        !x.split('|')
            .any(|m| m.trim().eq_ignore_ascii_case(&e.method))
    }) {
        return false;
    }
    if r.path.as_ref().is_some_and(|p| !glob_match(p, &e.path)) {
        return false;
    }
    if r.query
        .as_ref()
        .is_some_and(|q| !e.query.as_deref().unwrap_or("").contains(q.as_str()))
    {
        return false;
    }
    if j.status.is_some_and(|s| s != e.status) {
        return false;
    }
    if let Some(a) = &j.auth {
        if a.scheme
            .as_ref()
            .is_some_and(|x| !x.eq_ignore_ascii_case(&e.auth.scheme))
        {
            return false;
        }
        if a.username
            .as_ref()
            .is_some_and(|x| Some(x) != e.auth.username.as_ref())
        {
            return false;
        }
        if a.principal
            .as_ref()
            .is_some_and(|x| Some(x) != e.auth.principal.as_ref())
        {
            return false;
        }
        if a.verdict
            .as_ref()
            .is_some_and(|x| Some(x) != e.auth.verdict.as_ref())
        {
            return false;
        }
    }
    for (k, v) in &j.form {
        if e.form.get(k) != Some(v) {
            return false;
        }
    }
    if j.note
        .as_ref()
        .is_some_and(|n| !e.notes.iter().any(|x| x.contains(n.as_str())))
    {
        return false;
    }
    true
}

/// `*` matches any run of characters (slashes included); everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    // iterative wildcard matching with one backtrack point: linear-ish and bounded
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_paths() {
        assert!(glob_match("/v2/*/manifests/*", "/v2/team/app/manifests/1"));
        assert!(glob_match("/oauth2/token", "/oauth2/token"));
        assert!(!glob_match("/oauth2/token", "/oauth2/exchange"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("/v2/*/blobs/*", "/v2/"));
    }
}
