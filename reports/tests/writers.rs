//! The JSON reader/writer, the HTML page and `write_all`, checked on structure: JSON
//! round-trips and refuses other schemas naming the file, HTML escapes everything (client
//! output included) and loads nothing external, `write_all` leaves exactly four files.
//! (The JUnit and Markdown writers have their unit tests beside them.)

mod common;

use common::{CRANE, sample};
use reports::{RunReport, SCHEMA_VERSION};
use rstest::rstest;

// ---------------------------------------------------------------- JSON

#[test]
fn json_round_trips_and_is_pretty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let report = sample();
    reports::json::write(&report, &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("{\n  \"schema\": \"regcompat.report/v2\""),
        "{text}"
    );
    assert_eq!(reports::json::read(&path).unwrap(), report);
}

#[test]
fn json_write_always_stamps_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let mut report = sample();
    report.schema = "something-else".into();
    reports::json::write(&report, &path).unwrap();
    assert_eq!(reports::json::read(&path).unwrap().schema, SCHEMA_VERSION);
}

#[rstest]
#[case::newer_schema(
    r#"{"schema":"regcompat.report/v3","cells":"whatever"}"#,
    "unknown report schema `regcompat.report/v3`"
)]
#[case::missing_schema(r#"{"run_id":"x"}"#, "unknown report schema `<missing>`")]
#[case::not_an_object("[1,2]", "report.json:1:")]
#[case::syntax_error("{\n  \"schema\": ", "report.json:2:")]
#[case::right_schema_wrong_shape(
    r#"{"schema":"regcompat.report/v2","run_id":3}"#,
    "report.json:1:"
)]
fn json_read_rejects_bad_reports_naming_the_file(#[case] text: &str, #[case] expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    std::fs::write(&path, text).unwrap();
    let message = reports::json::read(&path).unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(expected), "{message}");
}

#[test]
fn run_report_read_is_json_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    sample().write(&path).unwrap();
    assert_eq!(RunReport::read(&path).unwrap(), sample());
    std::fs::write(&path, r#"{"schema":"regcompat.report/v0"}"#).unwrap();
    let message = RunReport::read(&path).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!(
            "{}: unknown report schema `regcompat.report/v0`",
            path.display()
        )),
        "{message}"
    );
}

#[test]
fn json_read_of_a_missing_file_names_it() {
    let message = reports::json::read(std::path::Path::new("/nonexistent/r.json"))
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("/nonexistent/r.json: cannot read"),
        "{message}"
    );
}

// ---------------------------------------------------------------- HTML

fn hostile_report() -> RunReport {
    let mut report = sample();
    report.run_id = "run<1>".into();
    report.scenarios[0].title = "<script>alert('title')</script>".into();
    report.clients[0].id = "crane\"><img src=x onerror=alert(1)>".into();
    for cell in report.cells.iter_mut().filter(|c| c.client == CRANE) {
        cell.client = report.clients[0].id.clone();
    }
    let failing = &mut report.cells[1];
    failing.reason = "</details><script>alert('reason')</script>".into();
    failing.steps[0].stdout_tail = "<script>alert('stdout')</script>".into();
    failing.steps[0].stderr_tail = "<b>bold</b> & 'quoted'".into();
    failing.steps[0]
        .argv
        .push("--label=<script>x</script>".into());
    failing.checks[1].detail = "<script>check</script>".into();
    failing.journal[1]["request_headers"] =
        serde_json::json!({"authorization": "Basic <redacted secret of sp-pull>"});
    failing.journal[1]["response_headers"] =
        serde_json::json!({"www-authenticate": "Bearer realm=\"<script>\""});
    failing.journal[0]["path"] = "/v2/<script>".into();
    failing.artifacts = vec!["logs/login.txt".into(), "javascript:alert(1)".into()];
    report
}

#[test]
fn html_escapes_every_piece_of_report_text() {
    let html = reports::html::render(&hostile_report());
    assert!(!html.contains("<script"), "a <script> element leaked");
    assert!(!html.contains("<img"), "an <img> element leaked");
    assert!(!html.contains("<b>"), "a <b> element leaked");
    assert!(html.contains("&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;"));
    assert!(html.contains("&lt;/details&gt;&lt;script&gt;alert(&#39;reason&#39;)"));
    assert!(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; &#39;quoted&#39;"));
    assert!(html.contains("<pre>&lt;script&gt;alert(&#39;stdout&#39;)&lt;/script&gt;</pre>"));
    assert!(html.contains("--label=&lt;script&gt;x&lt;/script&gt;"));
    assert!(html.contains("&lt;script&gt;check&lt;/script&gt;"));
    assert!(html.contains("  www-authenticate: Bearer realm=&quot;&lt;script&gt;&quot;"));
    assert!(html.contains("<td>/v2/&lt;script&gt;</td>"));
    assert!(html.contains("crane&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("<title>regcompat run run&lt;1&gt;</title>"));
}

#[test]
fn html_links_only_relative_artifacts() {
    let html = reports::html::render(&hostile_report());
    assert!(html.contains("<li><a href=\"logs/login.txt\">logs/login.txt</a></li>"));
    assert!(html.contains("<li>javascript:alert(1)</li>"));
    assert!(!html.contains("href=\"javascript"));
}

#[test]
fn html_is_self_contained() {
    let html = reports::html::render(&sample());
    assert!(html.starts_with("<!DOCTYPE html>"));
    for forbidden in [
        "<script", "<link", "src=", "http://", "https://", "@import", "url(",
    ] {
        assert!(!html.contains(forbidden), "found {forbidden}");
    }
    assert!(html.contains("<style>"));
}

#[test]
fn html_has_one_details_element_per_cell_with_its_evidence() {
    let report = sample();
    let html = reports::html::render(&report);
    assert_eq!(html.matches("<details>").count(), report.cells.len());
    assert_eq!(html.matches("</details>").count(), report.cells.len());
    assert_eq!(html.matches("<td class=\"missing\">").count(), 1);
    assert_eq!(html.matches("<summary>❌ fail</summary>").count(), 1);
    assert_eq!(html.matches("<summary>⚠ not-run</summary>").count(), 3);
    // the failing cell's evidence: repro, stderr tail, failed check, journal table row
    let after = html.split_once("<td class=\"fail\">").unwrap().1;
    let failing = &after[..after.find("</details>").unwrap()];
    assert!(
        failing
            .contains("<pre>HOME=/tmp/h crane pull myregistry.azurecr.io/login:v1 out.tar</pre>")
    );
    assert!(failing.contains("<pre>Error: UNAUTHORIZED for login</pre>"));
    assert!(failing.contains("exit 1 in 1200 ms"));
    assert!(failing.contains("❌ failed: the pull succeeded"));
    assert!(failing.contains(
        "<tr><td>2</td><td>myregistry.azurecr.io</td><td>GET</td>\
         <td>/oauth2/token?scope=repository:a:pull</td><td>200</td><td>basic/sp-pull</td>\
         <td>refresh token used; LEAK: token of ecr</td><td></td></tr>"
    ));
    assert!(html.contains("unavailable: docker needs a daemon and root"));
}

#[test]
fn html_colours_each_verdict_cell_by_class() {
    let html = reports::html::render(&sample());
    for (class, count) in [
        ("pass", 2),
        ("fail", 1),
        ("error", 1),
        ("not-run", 3),
        ("not-applicable", 1),
        ("missing", 1),
    ] {
        assert_eq!(
            html.matches(&format!("<td class=\"{class}\">")).count(),
            count,
            "cells of class {class}"
        );
        assert!(
            html.contains(&format!("td.{class} {{ background:")),
            "no colour for {class}"
        );
    }
}

#[test]
fn html_journal_exchange_shows_the_recorded_headers() {
    let mut report = sample();
    report.cells[0].journal[1]["request_headers"] =
        serde_json::json!({"authorization": "Basic <redacted secret of sp-pull>"});
    report.cells[0].journal[1]["form"] = serde_json::json!({"grant_type": "refresh_token"});
    let html = reports::html::render(&report);
    let exchange = html
        .split_once("<details class=\"exchange\">")
        .expect("an exchange block")
        .1;
    let exchange = &exchange[..exchange.find("</details>").unwrap()];
    assert!(
        exchange.contains(
            "<pre>request headers:\n  authorization: Basic &lt;redacted secret of sp-pull&gt;\n\
             form:\n  grant_type=refresh_token\nresponse headers:</pre>"
        ),
        "{exchange}"
    );
    assert_eq!(html.matches("<details class=\"exchange\">").count(), 1);
}

// ---------------------------------------------------------------- write_all

#[test]
fn write_all_writes_the_four_files_and_they_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/out");
    let report = sample();
    let written = reports::write_all(&report, &out).unwrap();
    assert_eq!(written.json, out.join("report.json"));
    assert_eq!(written.junit, out.join("junit.xml"));
    assert_eq!(written.markdown, out.join("matrix.md"));
    assert_eq!(written.html, out.join("index.html"));
    assert_eq!(reports::json::read(&written.json).unwrap(), report);
    let junit = std::fs::read_to_string(&written.junit).unwrap();
    assert_eq!(
        roxmltree::Document::parse(&junit)
            .unwrap()
            .root_element()
            .attribute("failures"),
        Some("1")
    );
    assert!(
        std::fs::read_to_string(&written.markdown)
            .unwrap()
            .contains("| scenario |")
    );
    assert!(
        std::fs::read_to_string(&written.html)
            .unwrap()
            .contains("<details>")
    );
    let mut names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["index.html", "junit.xml", "matrix.md", "report.json"],
        "no temporaries left"
    );
}

#[test]
fn write_all_into_a_file_path_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let message = reports::write_all(&sample(), &blocker)
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(&format!("{}: cannot create directory", blocker.display())),
        "{message}"
    );
}

/// A v1 report (before `known-failure`/`fixed`) is still read, as v2: history and baselines
/// written by older regcompat stay usable.
#[test]
fn a_v1_report_reads_as_v2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let mut report = sample();
    reports::json::write(&report, &path).unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("regcompat.report/v2", "regcompat.report/v1");
    std::fs::write(&path, text).unwrap();
    report.schema = SCHEMA_VERSION.into();
    assert_eq!(reports::json::read(&path).unwrap(), report);
}
