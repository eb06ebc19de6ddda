//! The four writers and `write_all`, checked on structure: JSON round-trips and refuses other
//! schemas, JUnit parses back with the right failures/errors/skips, Markdown cells hold the
//! right verdicts, HTML escapes everything and loads nothing external.

mod common;

use common::{CRANE, DOCKER, SKOPEO, sample};
use reports::{RunReport, SCHEMA_VERSION, Verdict};
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
        text.starts_with("{\n  \"schema\": \"regcompat.report/v1\""),
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
    r#"{"schema":"regcompat.report/v2","cells":"whatever"}"#,
    "unknown report schema `regcompat.report/v2`"
)]
#[case::missing_schema(r#"{"run_id":"x"}"#, "unknown report schema `<missing>`")]
#[case::not_an_object("[1,2]", "report.json:1:")]
#[case::syntax_error("{\n  \"schema\": ", "report.json:2:")]
#[case::right_schema_wrong_shape(
    r#"{"schema":"regcompat.report/v1","run_id":3}"#,
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
fn json_read_of_a_missing_file_names_it() {
    let message = reports::json::read(std::path::Path::new("/nonexistent/r.json"))
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("/nonexistent/r.json: cannot read"),
        "{message}"
    );
}

// ---------------------------------------------------------------- JUnit

fn junit_case<'a>(
    doc: &'a roxmltree::Document<'a>,
    client: &str,
    scenario: &str,
) -> roxmltree::Node<'a, 'a> {
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite") && n.attribute("name") == Some(client))
        .unwrap_or_else(|| panic!("no testsuite {client}"));
    suite
        .children()
        .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(scenario))
        .unwrap_or_else(|| panic!("no testcase {scenario} in {client}"))
}

fn outcome_of(case: roxmltree::Node) -> &'static str {
    let kinds: Vec<&str> = ["failure", "error", "skipped"]
        .into_iter()
        .filter(|k| case.children().any(|n| n.has_tag_name(*k)))
        .collect();
    match kinds.as_slice() {
        [] => "success",
        [one] => one,
        more => panic!("several outcomes {more:?}"),
    }
}

#[test]
fn junit_has_one_suite_per_client_and_one_case_per_scenario() {
    let xml = reports::junit::render(&sample()).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    let names: Vec<_> = suites
        .iter()
        .map(|s| s.attribute("name").unwrap())
        .collect();
    assert_eq!(names, [CRANE, SKOPEO, DOCKER]);
    for suite in &suites {
        let cases: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 3);
        for case in cases {
            assert_eq!(case.attribute("classname"), suite.attribute("name"));
        }
    }
    let count = |tag: &str| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
    assert_eq!(count("failure"), 1);
    assert_eq!(count("error"), 1);
    // skopeo not-applicable, skopeo missing push, three docker not-run
    assert_eq!(count("skipped"), 5);
    let root = doc.root_element();
    assert_eq!(root.attribute("tests"), Some("9"));
    assert_eq!(root.attribute("failures"), Some("1"));
    assert_eq!(root.attribute("errors"), Some("1"));
}

#[rstest]
#[case::pass(CRANE, "login", "success", None)]
#[case::fail(
    SKOPEO,
    "login",
    "failure",
    Some("fail because of login on skopeo@1.18.0")
)]
#[case::error(CRANE, "push", "error", Some("error because of push on crane@0.22.1"))]
#[case::not_applicable(
    SKOPEO,
    "pull",
    "skipped",
    Some("not-applicable because of pull on skopeo@1.18.0")
)]
#[case::not_run(
    DOCKER,
    "pull",
    "skipped",
    Some("not-run because of pull on docker@28.0.1")
)]
#[case::missing(
    SKOPEO,
    "push",
    "skipped",
    Some("no result was recorded for this scenario and client")
)]
fn junit_maps_each_verdict(
    #[case] client: &str,
    #[case] scenario: &str,
    #[case] outcome: &str,
    #[case] message: Option<&str>,
) {
    let xml = reports::junit::render(&sample()).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let case = junit_case(&doc, client, scenario);
    assert_eq!(outcome_of(case), outcome);
    if let Some(message) = message {
        let element = case.children().find(|n| n.has_tag_name(outcome)).unwrap();
        assert_eq!(element.attribute("message"), Some(message));
    }
}

#[test]
fn junit_failure_body_holds_repro_tails_and_checks() {
    let xml = reports::junit::render(&sample()).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let case = junit_case(&doc, SKOPEO, "login");
    let failure = case.children().find(|n| n.has_tag_name("failure")).unwrap();
    let body = failure.text().unwrap();
    assert!(
        body.contains("  $ HOME=/tmp/h crane pull myregistry.azurecr.io/login:v1 out.tar"),
        "{body}"
    );
    assert!(
        body.contains("step 1 `pull` (expected success): exit 1 in 1200 ms"),
        "{body}"
    );
    assert!(body.contains("    Error: UNAUTHORIZED for login"), "{body}");
    assert!(
        body.contains("  [FAILED] the pull succeeded — exit 1"),
        "{body}"
    );
    assert!(
        body.contains("  [ok] the client asked for a token — #2"),
        "{body}"
    );
}

#[test]
fn junit_system_out_summarises_the_journal_one_line_per_entry() {
    let xml = reports::junit::render(&sample()).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let case = junit_case(&doc, CRANE, "login");
    let out = case
        .children()
        .find(|n| n.has_tag_name("system-out"))
        .and_then(|n| n.text())
        .unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "#1 myregistry.azurecr.io GET /v2/ → 401 auth=none/-",
            "#2 myregistry.azurecr.io GET /oauth2/token?scope=repository:a:pull → 200 \
             auth=basic/sp-pull leak=token of ecr",
        ]
    );
}

#[test]
fn junit_escapes_markup_in_reasons() {
    let mut report = sample();
    report.cells[1].reason = "expected <401> & got \"200\"".into();
    let xml = reports::junit::render(&report).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failure = junit_case(&doc, SKOPEO, "login")
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert_eq!(
        failure.attribute("message"),
        Some("expected <401> & got \"200\"")
    );
}

// ---------------------------------------------------------------- Markdown

/// Splits a Markdown table row into its cells, honouring `\|`.
fn row_cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cells.last_mut().unwrap().push('|');
            }
            '|' => cells.push(String::new()),
            _ => cells.last_mut().unwrap().push(c),
        }
    }
    cells.into_iter().map(|c| c.trim().to_owned()).collect()
}

fn markdown_table(md: &str) -> Vec<Vec<String>> {
    md.lines()
        .skip_while(|l| !l.starts_with("| Scenario |"))
        .take_while(|l| l.starts_with('|'))
        .map(row_cells)
        .collect()
}

#[rstest]
#[case::pass("login", CRANE, "✅ pass")]
#[case::fail("login", SKOPEO, "❌ fail")]
#[case::not_run("login", DOCKER, "⚠ not-run")]
#[case::not_applicable("pull", SKOPEO, "⏭ not-applicable")]
#[case::error("push", CRANE, "💥 error")]
#[case::missing("push", SKOPEO, "❔ missing")]
fn markdown_table_cells_show_symbol_and_word(
    #[case] scenario: &str,
    #[case] client: &str,
    #[case] shown: &str,
) {
    let table = markdown_table(&reports::markdown::render(&sample()));
    let header = &table[0];
    assert_eq!(header, &["Scenario", CRANE, SKOPEO, DOCKER]);
    assert_eq!(table[1], ["---", "---", "---", "---"]);
    let column = header.iter().position(|h| h == client).unwrap();
    let row = table
        .iter()
        .find(|r| r[0] == format!("{scenario} — Title of {scenario}"))
        .unwrap();
    assert_eq!(row[column], shown);
}

#[test]
fn markdown_totals_list_every_verdict() {
    let md = reports::markdown::render(&sample());
    assert!(
        md.contains(
            "**Totals:** 8 cells: 2 ✅ pass, 1 ❌ fail, 1 ⏭ not-applicable, 3 ⚠ not-run, \
             1 💥 error, 1 ❔ missing"
        ),
        "{md}"
    );
}

#[test]
fn markdown_escapes_pipes_newlines_and_html_in_cells() {
    let mut report = sample();
    report.scenarios[0].title = "a | b\nc <b>".into();
    let md = reports::markdown::render(&report);
    let table = markdown_table(&md);
    assert!(table.iter().all(|row| row.len() == 4), "{table:?}");
    assert_eq!(table[2][0], "login — a | b<br>c &lt;b&gt;");
}

#[test]
fn markdown_lists_failures_and_not_run_with_reason_and_repro_only() {
    let md = reports::markdown::render(&sample());
    let section = md.split("## Failures and not-run").nth(1).unwrap();
    let headings: Vec<&str> = section.lines().filter(|l| l.starts_with("### ")).collect();
    assert_eq!(
        headings,
        [
            "### ❌ fail — `login` × `skopeo@1.18.0`",
            "### ⚠ not-run — `login` × `docker@28.0.1`",
            "### ⚠ not-run — `pull` × `docker@28.0.1`",
            "### 💥 error — `push` × `crane@0.22.1`",
            "### ⚠ not-run — `push` × `docker@28.0.1`",
        ]
    );
    assert!(section.contains("fail because of login on skopeo@1.18.0"));
    assert!(
        section
            .contains("```sh\nHOME=/tmp/h crane pull myregistry.azurecr.io/login:v1 out.tar\n```")
    );
    assert!(section.contains("- failed check: the pull succeeded — exit 1"));
    assert!(
        md.contains("## Unavailable clients\n\n- `docker@28.0.1`: docker needs a daemon and root")
    );
}

#[test]
fn markdown_says_so_when_nothing_failed() {
    let report = common::report(
        "r",
        &[
            ("s", CRANE, Verdict::Pass),
            ("t", CRANE, Verdict::NotApplicable),
        ],
    );
    let md = reports::markdown::render(&report);
    assert!(
        md.contains("None: every cell passed or was not applicable."),
        "{md}"
    );
}

#[test]
fn markdown_repro_fence_outgrows_backticks_in_the_command() {
    let mut report = sample();
    report.cells[1].steps[0].repro = "echo ```oops```".into();
    let md = reports::markdown::render(&report);
    assert!(md.contains("````sh\necho ```oops```\n````"), "{md}");
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
    failing.steps[0].stderr_tail = "<b>bold</b> & 'quoted'".into();
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
         <td>refresh token used; LEAK: token of ecr</td></tr>"
    ));
    assert!(html.contains("unavailable: docker needs a daemon and root"));
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
            .contains("| Scenario |")
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
