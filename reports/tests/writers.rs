//! The JSON reader/writer, the HTML page and `write_all`, checked on structure: JSON
//! round-trips and refuses other schemas naming the file, HTML escapes everything (client
//! output included) and loads nothing external, `write_all` leaves exactly five files.
//! (The JUnit and Markdown writers have their unit tests beside them.)

mod common;

use common::{CRANE, DOCKER, sample};
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
    assert_eq!(html.matches("<summary>fail</summary>").count(), 1);
    assert_eq!(html.matches("<summary>not-run</summary>").count(), 3);
    // the failing cell's evidence: repro, stderr tail, failed check, journal table row
    let after = html
        .split_once("<td class=\"fail\" id=\"cell-0-1\">")
        .unwrap()
        .1;
    let failing = &after[..after.find("</details>").unwrap()];
    assert!(
        failing
            .contains("<pre>HOME=/tmp/h crane pull myregistry.azurecr.io/login:v1 out.tar</pre>")
    );
    assert!(failing.contains("<pre>Error: UNAUTHORIZED for login</pre>"));
    assert!(failing.contains("exit 1 in 1200 ms"));
    assert!(failing.contains("FAILED: the pull succeeded"));
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
        let opening = if class == "missing" {
            format!("<td class=\"{class}\">")
        } else {
            format!("<td class=\"{class}\" id=\"cell-")
        };
        assert_eq!(
            html.matches(&opening).count(),
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
fn html_lists_the_cells_needing_attention_first_with_links_to_them() {
    let mut report = sample();
    report.cells[0].verdict = reports::Verdict::KnownFailure;
    report.cells[0].known = Some(reports::KnownIssue {
        reason: "crane sends Basic to the realm".into(),
        link: "https://github.com/google/go-containerregistry/issues/1".into(),
        versions: "*".into(),
    });
    for cell in report.cells.iter_mut().filter(|c| c.client == DOCKER) {
        cell.reason = "docker needs a daemon and root".into();
    }
    let html = reports::html::render(&report);
    let attention = html
        .find("<h2>Needs attention (5 cells)</h2>")
        .expect(&html);
    let grid = html.find("<table class=\"grid\">").unwrap();
    assert!(attention < grid);
    let list = &html[attention..html[attention..].find("</ul>").unwrap() + attention];
    // fail, error, then docker's three not-run cells as one item linking to its column
    let fail = list
        .find("<li><span class=\"v fail\">fail</span> <a href=\"#cell-0-1\">")
        .expect(list);
    let error = list
        .find("<li><span class=\"v error\">error</span> <a href=\"#cell-2-0\">")
        .expect(list);
    let not_run = list
        .find(
            "<li><span class=\"v not-run\">not-run</span> <a href=\"#client-2\">\
             <span class=\"id\">docker@28.0.1</span></a> × 3 scenarios: ",
        )
        .expect(list);
    assert!(fail < error && error < not_run, "{list}");
    // every link has its target
    for target in ["cell-0-1", "cell-2-0", "client-2", "cell-0-0"] {
        assert_eq!(
            html.matches(&format!("id=\"{target}\"")).count(),
            1,
            "{target}"
        );
    }
    let known = html
        .find("<h2>Recorded known failures (1)</h2>")
        .expect(&html);
    assert!(known < grid);
    assert!(html.contains("<a href=\"https://github.com/google/go-containerregistry/issues/1\">"));
}

#[test]
fn html_keeps_the_scenario_column_wide_when_a_cell_opens() {
    let html = reports::html::render(&sample());
    let style = &html[html.find("<style>").unwrap()..html.find("</style>").unwrap()];
    let rule = style
        .lines()
        .skip_while(|l| !l.starts_with("table.grid > tbody > tr > th {"))
        .take(2)
        .collect::<String>();
    assert!(rule.contains("min-width: 14rem"), "{style}");
    assert!(rule.contains("position: sticky"), "{style}");
    assert!(
        style.contains("table.grid > tbody > tr > th .id { white-space: nowrap; }"),
        "{style}"
    );
}

#[test]
fn html_uses_no_emoji() {
    let html = reports::html::render(&hostile_report());
    let emoji: Vec<char> = html
        .chars()
        .filter(|c| {
            let c = u32::from(*c);
            (0x2300..=0x23ff).contains(&c)
                || (0x2600..=0x27bf).contains(&c)
                || (0x2b00..=0x2bff).contains(&c)
                || c >= 0x1f000
                || c == 0xfe0f
        })
        .collect();
    assert!(emoji.is_empty(), "{emoji:?}");
}

/// Client output and reasons carry terminal colours; no file a person opens may hold a raw
/// ESC.
#[test]
fn no_escape_sequence_reaches_any_file() {
    let mut report = sample();
    let red = "\u{1b}[31mred\u{1b}[0m";
    for cell in &mut report.cells {
        cell.reason = format!("reason {red}");
        for step in &mut cell.steps {
            step.stdout_tail = format!("out {red}\n\u{1b}]8;;x\u{7}link\u{1b}]8;;\u{1b}\\");
            step.stderr_tail = format!("err {red}");
            step.repro = format!("{red} crane pull");
            step.argv.push(red.into());
        }
        for check in &mut cell.checks {
            check.detail = red.into();
        }
    }
    report.scenarios[0].title = red.into();
    let dir = tempfile::tempdir().unwrap();
    reports::write_all(&report, dir.path()).unwrap();
    for name in ["index.html", "matrix.md", "matrix-full.md", "junit.xml"] {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(!text.contains('\u{1b}'), "{name} holds an ESC");
        assert!(!text.contains("[31m"), "{name} holds a CSI's remains");
        assert!(text.contains("red"), "{name} lost the text");
    }
    let html = reports::html::render(&report);
    assert!(html.contains("<pre>out red\nlink</pre>"), "{html}");
    assert!(reports::summary::render_text(&report).contains("reason red"));
    assert!(!reports::summary::render_text(&report).contains('\u{1b}'));
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
fn write_all_writes_the_five_files_and_they_read_back() {
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
    assert_eq!(written.markdown_full, out.join("matrix-full.md"));
    let summary = std::fs::read_to_string(&written.markdown).unwrap();
    assert!(summary.contains("### Needs attention"), "{summary}");
    assert!(!summary.contains("HOME=/tmp/h"), "no repro line: {summary}");
    let full = std::fs::read_to_string(&written.markdown_full).unwrap();
    assert!(full.contains("| scenario |"), "{full}");
    assert!(full.contains("`HOME=/tmp/h crane pull"), "{full}");
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
        [
            "index.html",
            "junit.xml",
            "matrix-full.md",
            "matrix.md",
            "report.json"
        ],
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

/// A cell that ran a variant of its row's scenario says which, in the HTML evidence and in
/// `matrix-full.md` (grid and the list of cells that did not pass).
#[test]
fn a_cell_that_ran_a_variant_says_so() {
    let mut report = common::report(
        "r",
        &[
            ("fault-503-blob", CRANE, reports::Verdict::Pass),
            ("fault-503-blob", "pack@0.40.9", reports::Verdict::Fail),
        ],
    );
    report.cells[1].variant = Some("fault-503-blob-builder-create".into());
    let html = reports::html::render(&report);
    assert!(
        html.contains("ran variant <span class=\"id\">fault-503-blob-builder-create</span>"),
        "{html}"
    );
    assert_eq!(html.matches("ran variant").count(), 1, "crane ran the base");
    let md = reports::markdown::render_full(&report);
    assert!(
        md.contains(
            "| fault-503-blob | ✅ pass | ❌ fail (ran variant `fault-503-blob-builder-create`) |"
        ),
        "{md}"
    );
    assert!(
        md.contains("  - ran variant `fault-503-blob-builder-create`\n"),
        "{md}"
    );
    // The field is optional in the JSON: absent for cells that ran their row's scenario.
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["cells"][0].get("variant").is_none());
    assert_eq!(json["cells"][1]["variant"], "fault-503-blob-builder-create");
}
