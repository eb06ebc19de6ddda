//! Reading what the OCI conformance suite wrote: `junit.xml` (one `<testcase>` per leaf
//! test) and `results.yaml` (per-API and per-data-set verdicts).
//!
//! The suite (as pinned) marks a test case's outcome in a `status` attribute
//! (`passed`/`skipped`/`failure`/`error`) and puts the joined error messages in
//! `<system-out>`; it writes no `<failure>` children. Both shapes are understood here, so a
//! later suite that writes standard JUnit children is judged the same.

use anyhow::{Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Skip,
    Fail,
    Error,
}

#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub outcome: Outcome,
    /// Failure/error text (empty for passes and skips).
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Junit {
    pub cases: Vec<Case>,
}

impl Junit {
    pub fn count(&self, o: Outcome) -> usize {
        self.cases.iter().filter(|c| c.outcome == o).count()
    }

    pub fn failing(&self) -> impl Iterator<Item = &Case> {
        self.cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Fail | Outcome::Error))
    }
}

pub fn parse_junit(xml: &str) -> Result<Junit> {
    let doc = roxmltree::Document::parse(xml).context("junit.xml is not well-formed XML")?;
    let mut cases = Vec::new();
    for tc in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        let name = tc.attribute("name").unwrap_or("(unnamed)").to_string();
        let child = |tag: &str| tc.children().find(|n| n.has_tag_name(tag));
        let text_of = |n: roxmltree::Node| -> String {
            let msg = n.attribute("message").unwrap_or("").trim();
            let body: String = n
                .descendants()
                .filter(|d| d.is_text())
                .filter_map(|d| d.text())
                .collect();
            let body = body.trim();
            match (msg.is_empty(), body.is_empty()) {
                (false, false) if body.starts_with(msg) => body.to_string(),
                (false, false) => format!("{msg}\n{body}"),
                (false, true) => msg.to_string(),
                _ => body.to_string(),
            }
        };
        let (outcome, mut message) = if let Some(n) = child("error") {
            (Outcome::Error, text_of(n))
        } else if let Some(n) = child("failure") {
            (Outcome::Fail, text_of(n))
        } else if child("skipped").is_some() {
            (Outcome::Skip, String::new())
        } else {
            let o = match tc
                .attribute("status")
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("failure" | "failed" | "fail") => Outcome::Fail,
                Some("error") => Outcome::Error,
                Some("skipped" | "skip" | "disabled") => Outcome::Skip,
                // No status and no child element is a pass in plain JUnit.
                Some("passed" | "pass") | None => Outcome::Pass,
                Some(_) => Outcome::Error,
            };
            (o, String::new())
        };
        if matches!(outcome, Outcome::Fail | Outcome::Error) && message.is_empty() {
            // The suite keeps the errors of a test in <system-out>.
            if let Some(n) = child("system-out") {
                message = n.text().unwrap_or("").trim().to_string();
            }
        }
        cases.push(Case {
            name,
            outcome,
            message,
        });
    }
    Ok(Junit { cases })
}

/// Fallback when the suite wrote no junit.xml (it cannot with OCI_FILTER_TEST set: the
/// never-run APIs keep status "Unknown", which its results.yaml encoder rejects, and it
/// stops there): read the test tree of its console report instead. That tree is
/// `NAME: STATUS` indented two spaces a level, each leaf's errors following as
/// `<same indent> - message`.
pub fn parse_console(out: &str) -> Junit {
    struct Node {
        indent: usize,
        case: Case,
    }
    let mut nodes: Vec<Node> = Vec::new();
    let mut lines = out.lines().skip_while(|l| l.trim_end() != "Test results");
    lines.next();
    for line in lines {
        if line.trim().is_empty() {
            break;
        }
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        if let Some(msg) = body.strip_prefix("- ") {
            if let Some(n) = nodes.last_mut() {
                push_line(&mut n.case.message, msg);
            }
            continue;
        }
        let status = body.rsplit_once(": ").and_then(|(name, st)| {
            let o = match st.trim_end() {
                "Pass" => Outcome::Pass,
                "Skip" | "Disabled" => Outcome::Skip,
                "FAIL" => Outcome::Fail,
                "Error" | "Unknown" => Outcome::Error,
                _ => return None,
            };
            Some((name, o))
        });
        match status {
            Some((name, outcome)) => nodes.push(Node {
                indent,
                case: Case {
                    name: name.to_string(),
                    outcome,
                    message: String::new(),
                },
            }),
            // The continuation of a multi-line error message.
            None => {
                if let Some(n) = nodes.last_mut().filter(|n| !n.case.message.is_empty()) {
                    push_line(&mut n.case.message, body);
                }
            }
        }
    }
    // Leaves only: a node followed by a deeper one is a parent.
    let keep: Vec<bool> = (0..nodes.len())
        .map(|i| {
            nodes
                .get(i + 1)
                .is_none_or(|next| next.indent <= nodes[i].indent)
        })
        .collect();
    let cases = nodes
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(n, _)| n.case)
        .collect();
    Junit { cases }
}

fn push_line(buf: &mut String, line: &str) {
    if !buf.is_empty() {
        buf.push('\n');
    }
    buf.push_str(line);
}

/// `results.yaml`'s verdicts: `apis:` and `data:` are flat maps of name → status
/// (`Pass`, `FAIL`, `Error`, `Skip`, `Disabled`). Only these two sections are read, with a
/// minimal line parser (the file is the suite's own, indented by two).
#[derive(Debug, Default)]
pub struct Verdicts {
    pub apis: Vec<(String, String)>,
    pub data: Vec<(String, String)>,
}

impl Verdicts {
    /// Entries whose status is a failure (`FAIL`/`Error`/anything unknown), as "section: name: status".
    pub fn bad(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (section, entries) in [("API", &self.apis), ("data", &self.data)] {
            for (name, status) in entries {
                if !matches!(
                    status.to_ascii_lowercase().as_str(),
                    "pass" | "skip" | "disabled"
                ) {
                    out.push(format!("{section} {name}: {status}"));
                }
            }
        }
        out
    }
}

pub fn parse_results_yaml(yaml: &str) -> Verdicts {
    let mut v = Verdicts::default();
    let mut section: Option<&str> = None;
    for line in yaml.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') {
            section = match line.trim_end() {
                "apis:" => Some("apis"),
                "data:" => Some("data"),
                _ => None,
            };
            continue;
        }
        let Some(sec) = section else { continue };
        // Direct children only: exactly two spaces of indent.
        let Some(rest) = line.strip_prefix("  ") else {
            continue;
        };
        if rest.starts_with(' ') {
            continue;
        }
        let Some((k, val)) = split_key(rest) else {
            continue;
        };
        let entry = (unquote(k), unquote(val));
        match sec {
            "apis" => v.apis.push(entry),
            _ => v.data.push(entry),
        }
    }
    v
}

/// Split `key: value`, where key may be quoted and contain ": ".
fn split_key(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_end();
    if let Some(q @ ('"' | '\'')) = s.chars().next() {
        let end = s[1..].find(q)? + 2;
        let rest = s[end..].strip_prefix(':')?;
        return Some((&s[..end], rest.trim()));
    }
    let i = s.find(": ")?;
    Some((&s[..i], s[i + 2..].trim()))
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_status_attribute_and_system_out() {
        let xml = r#"<testsuites tests="4"><testsuite name="OCI Conformance Test" tests="4">
<properties><property name="Config" value="x"></property></properties>
<testcase name="OCI Conformance Test/ping" classname="" status="passed"><system-err>req&#xA;</system-err></testcase>
<testcase name="OCI Conformance Test/a/b" classname="" status="failure"><system-out>unexpected status 404&#xA;more</system-out></testcase>
<testcase name="c" status="skipped"></testcase>
<testcase name="d" status="error"><system-out>boom</system-out></testcase>
</testsuite></testsuites>"#;
        let j = parse_junit(xml).unwrap();
        assert_eq!(j.cases.len(), 4);
        assert_eq!(j.count(Outcome::Pass), 1);
        assert_eq!(j.count(Outcome::Fail), 1);
        assert_eq!(j.count(Outcome::Skip), 1);
        assert_eq!(j.count(Outcome::Error), 1);
        let f: Vec<_> = j.failing().collect();
        assert_eq!(f[0].name, "OCI Conformance Test/a/b");
        assert_eq!(f[0].message, "unexpected status 404\nmore");
        assert_eq!(f[1].message, "boom");
    }

    #[test]
    fn junit_standard_children() {
        let xml = r#"<testsuite><testcase name="x"><failure message="m">details</failure></testcase>
<testcase name="y"><error message="e"/></testcase><testcase name="z"><skipped/></testcase>
<testcase name="w"/></testsuite>"#;
        let j = parse_junit(xml).unwrap();
        let o: Vec<_> = j.cases.iter().map(|c| c.outcome).collect();
        assert_eq!(
            o,
            [Outcome::Fail, Outcome::Error, Outcome::Skip, Outcome::Pass]
        );
        assert_eq!(j.cases[0].message, "m\ndetails");
        assert_eq!(j.cases[1].message, "e");
    }

    #[test]
    fn console_tree() {
        let out = "noise\nTest results\nOCI Conformance Test: FAIL\n  OCI Conformance Test/ping: Pass\n  OCI Conformance Test/x: FAIL\n    OCI Conformance Test/x/a: FAIL\n     - first\nsecond line\n    OCI Conformance Test/x/b: Skip\n     - unsupported\n\nConfiguration:\n  a: FAIL\n";
        let j = parse_console(out);
        let names: Vec<_> = j.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "OCI Conformance Test/ping",
                "OCI Conformance Test/x/a",
                "OCI Conformance Test/x/b"
            ]
        );
        assert_eq!(j.cases[1].outcome, Outcome::Fail);
        assert_eq!(j.cases[1].message, "first\nsecond line");
        assert_eq!(j.count(Outcome::Skip), 1);
    }

    #[test]
    fn results_yaml_sections() {
        let y = "config:\n  registry: x\n  apis:\n    ping: true\napis:\n  Blob mount: Pass\n  Referrers: FAIL\n  \"Odd: name\": Error\ndata:\n  Image: Pass\n  Sparse Manifests: Disabled\n";
        let v = parse_results_yaml(y);
        assert_eq!(v.apis.len(), 3);
        assert_eq!(v.data.len(), 2);
        assert_eq!(v.bad(), ["API Referrers: FAIL", "API Odd: name: Error"]);
    }
}
